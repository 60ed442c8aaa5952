"""Source 3: a SavedModel's `saved_model.pb` sizes the variables of its `variables/variables` checkpoint.

The checkpoint's object graph gives the keys in data order but no shapes; `saved_model.pb` records
the dtype and shape of every variable (SavedVariable), and node i of its SavedObjectGraph is node
i of the checkpoint's TrackableObjectGraph (both come from the same traversal).
`fingerprint.pb` then checks a rebuilt index exactly (recovery/fingerprint.py), whatever source
gave its layout.
"""

import posixpath

from tfbundle import FormatError

from .. import storage
from ..context import OrphanContext
from ..fingerprint import expected_checkpoint_hash as expected_checkpoint_hash  # re-exported for callers
from ..fingerprint import fingerprint64 as fingerprint64
from ..fingerprint import savedmodel_dir_of
from ..layout import Layout, Refusal, layout_from_specs
from ..protos import is_fully_defined, saved_objects
from .protocol import Source

SAVED_MODEL_FILE = "saved_model.pb"
SOURCE = "saved_model.pb"


def _savedmodel_layouts(ctx: OrphanContext) -> list:
    export_dir = savedmodel_dir_of(ctx.prefix)
    if export_dir is None:
        return []
    pb_path = posixpath.join(export_dir, SAVED_MODEL_FILE)
    if not storage.fresh_exists(ctx.fs, pb_path):
        return []
    label = f"{SOURCE} in {storage.display(ctx.fs, export_dir)}"
    if ctx.object_graph is None:
        return [Refusal(label, "the variables data ends without an object graph, so there are no keys to size")]
    if ctx.num_shards != 1:
        return [Refusal(label, f"the variables are in {ctx.num_shards} shards; saved_model.pb records whole "
                               "variables, not how a sharding policy sliced them")]
    try:
        objects = saved_objects(storage.read_bytes(ctx.fs, pb_path))
    except (FormatError, OSError) as exc:
        return [Refusal(label, f"unreadable: {exc}")]
    return [layout_from_saved_objects(ctx.object_graph, objects, label)]


def layout_from_saved_objects(graph, objects: list, label: str):
    """Size every checkpoint attribute from the SavedObject with the same node id, or say what does not match."""
    if len(objects) < len(graph.nodes):
        return Refusal(label, f"describes {len(objects)} objects but the checkpoint's object graph has "
                              f"{len(graph.nodes)}: it belongs to another model")
    specs, unsized = {}, []
    for node_id, node in enumerate(graph.nodes):
        saved = objects[node_id]
        saved_children = set(saved.children)
        strangers = [(child_id, name) for child_id, name in node.children if (child_id, name) not in saved_children]
        if strangers:
            child_id, name = strangers[0]
            return Refusal(label, f"does not describe this checkpoint: object {node_id} has a child `{name}` "
                                  f"(object {child_id}) in the checkpoint but not in saved_model.pb; "
                                  "it belongs to another model")
        for attr in node.attributes:
            if saved.kind != "variable" or attr.name != "VARIABLE_VALUE":
                unsized.append(f"{attr.checkpoint_key} (a {saved.kind or 'plain'} object)")
            elif not is_fully_defined(saved.shape):
                shown = "unknown rank" if saved.shape is None else list(saved.shape)
                unsized.append(f"{attr.checkpoint_key} (variable of shape {shown})")
            else:
                specs[attr.checkpoint_key] = (saved.dtype, saved.shape)
    if unsized:
        return Refusal(label, f"cannot size {len(unsized)} tensor(s) that are not fixed-shape variables: "
                              f"{', '.join(unsized[:4])}" + (" ..." if len(unsized) > 4 else ""))
    return layout_from_specs(graph, specs, label, "savedmodel")


class SavedModelSource(Source):
    name = SOURCE
    own_declaration = True

    def layouts(self, ctx: OrphanContext) -> list:
        return _savedmodel_layouts(ctx)

    def declares_shapes(self, layout: Layout) -> bool:
        return True


savedmodel_layouts = SavedModelSource()
