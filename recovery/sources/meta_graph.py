"""Source 4: a TF1 `.meta` graph beside the orphan says what its Saver wrote, in order.

A TF1 checkpoint has no object graph, so the keys must come from the graph. The Saver's SaveV2
op names every tensor it writes, in data order (sorted by name), with the slice
spec of each partitioned piece and each dtype; the variable ops it reads give the shapes. With
`sharded=True` there is one SaveV2 per device, each feeding the shard its ShardedFilename names.
A `.meta` without a saver_def falls back to what a default `Saver()` saves: the `variables`
collection, sorted by name. Every save of a run writes the same graph, so the `.meta` of another
step of the same run serves as well.
"""

import posixpath

from tfbundle import FormatError, TensorSlice, split_step

from .. import storage
from ..context import OrphanContext
from ..layout import Layout, Refusal, TensorSpec
from ..protos import SAVER_V2, MetaGraph, is_fully_defined, read_meta_graph
from .protocol import Source

META_SUFFIX = ".meta"
VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")
# Ops between a Saver's SaveV2 and the variable it saves: reads and identities.
PASS_THROUGH_OPS = ("Identity", "ReadVariableOp")
MAX_METAS_READ = 4   # one run writes one graph: if the nearest few do not serve, the rest will not either


class Unsizable(Exception):
    """The graph does not say what one saved tensor is: the message names it."""


def _meta_graph_layouts(ctx: OrphanContext) -> list:
    if ctx.object_graph is not None:
        return []   # TF2 data names its own keys; a .meta cannot improve on them
    refusals = []
    for path in candidate_meta_paths(ctx)[:MAX_METAS_READ]:
        label = f"TF1 graph {storage.prefix_name(path[: -len(META_SUFFIX)])}{META_SUFFIX}"   # model_dir/.meta
        try:
            meta = read_meta_graph(storage.read_bytes(ctx.fs, path))
        except (FormatError, OSError) as exc:
            refusals.append(Refusal(label, f"unreadable: {exc}"))
            continue
        found = layout_from_meta_graph(meta, label)
        if isinstance(found, Layout) and found.num_shards != ctx.num_shards:
            found = Refusal(label, f"its Saver writes {found.num_shards} shard(s); this checkpoint has "
                                   f"{ctx.num_shards}")
        if isinstance(found, Layout):
            if path != ctx.prefix + META_SUFFIX:
                # Another step's graph: the same run's, presumably, but no declaration of this checkpoint.
                found.origin = (ctx.fs, path[: -len(META_SUFFIX)])
            return [found]
        refusals.append(found)
    return refusals


class MetaGraphSource(Source):
    name = "TF1 graph"
    own_declaration = True

    def layouts(self, ctx: OrphanContext) -> list:
        return _meta_graph_layouts(ctx)

    def declares_shapes(self, layout: Layout) -> bool:
        return layout.origin is None   # another step's .meta: the same run's, presumably, not this one's


meta_graph_layouts = MetaGraphSource()


def candidate_meta_paths(ctx: OrphanContext) -> list[str]:
    """`P.meta`, else the `.meta` of other steps of the same run (`model.ckpt-100.meta`), nearest step first."""
    names = {item["name"] for item in ctx.directory_listing if item.get("type", "file") == "file"}
    own = ctx.prefix + META_SUFFIX
    if own in names:
        return [own]
    directory, base = posixpath.split(ctx.prefix)
    numbered = split_step(base)
    if numbered is None:
        return []
    stem, step = numbered
    others = []
    for name in names:
        other_dir, other_base = posixpath.split(name)
        if other_dir != directory or not other_base.endswith(META_SUFFIX):
            continue
        other = split_step(other_base[: -len(META_SUFFIX)])
        if other and other[0] == stem:
            other_step = other[1]
            others.append(((abs(other_step - step), -other_step), name))  # on a tie, the later step
    return [name for _, name in sorted(others)]


def layout_from_meta_graph(meta: MetaGraph, label: str) -> "Layout | Refusal":
    try:
        if meta.saver is None:
            shards = [_default_saver_tensors(meta)]
        elif meta.saver.version != SAVER_V2:
            return Refusal(label, f"its Saver writes checkpoint format version {meta.saver.version} (V1/legacy), "
                                  "which has no .data files; this data was written by another saver")
        else:
            shards = _saver_tensors(meta)
    except Unsizable as exc:
        return Refusal(label, str(exc))
    tensors = [TensorSpec(key, dt, shape, shard, piece)
               for shard, specs in enumerate(shards) for key, dt, shape, piece in specs]
    return Layout(tensors, len(shards), label, "meta-graph")


def _saver_tensors(meta: MetaGraph) -> list[list]:
    """Per shard, (key, dtype, full shape, slice) in the order the saver's SaveV2 ops write them."""
    scope = meta.saver.filename_tensor_name.split(":")[0].rpartition("/")[0]
    saves = [node for node in meta.nodes.values()
             if node.op == "SaveV2" and node.name.rpartition("/")[0] == scope]
    if not saves:
        raise Unsizable(f"the graph has no SaveV2 op under the saver's scope `{scope}`")
    by_shard = {}
    for node in saves:
        shard = _shard_of(meta, node) if meta.saver.sharded else 0
        if shard in by_shard:
            raise Unsizable(f"two SaveV2 ops of saver `{scope}` write shard {shard}")
        by_shard[shard] = _save_op_tensors(meta, node)
    if sorted(by_shard) != list(range(len(by_shard))):
        raise Unsizable(f"saver `{scope}` writes shards {sorted(by_shard)}, not 0..{len(by_shard) - 1}")
    return [by_shard[i] for i in range(len(by_shard))]


def _shard_of(meta: MetaGraph, save_op) -> int:
    """A sharded saver's SaveV2 writes to ShardedFilename(prefix, shard, num_shards)."""
    filename = meta.nodes.get(save_op.data_inputs()[0])
    shard_const = None
    if filename is not None and filename.op == "ShardedFilename" and len(filename.data_inputs()) == 3:
        shard_const = meta.nodes.get(filename.data_inputs()[1])
    values = shard_const.const_ints() if shard_const is not None and shard_const.op == "Const" else []
    if len(values) != 1:
        raise Unsizable(f"cannot tell which shard {save_op.name} writes")
    return values[0]


def _save_op_tensors(meta: MetaGraph, save_op) -> list:
    inputs = save_op.data_inputs()
    if len(inputs) < 3:
        raise Unsizable(f"{save_op.name} has {len(inputs)} inputs; SaveV2 takes at least 3")
    names_node, slices_node = meta.nodes.get(inputs[1]), meta.nodes.get(inputs[2])
    if names_node is None or slices_node is None or names_node.op != "Const" or slices_node.op != "Const":
        raise Unsizable(f"{save_op.name} takes its tensor names from computed values, not constants")
    names, slice_specs, dtypes = names_node.const_strings(), slices_node.const_strings(), save_op.attr_types("dtypes")
    tensor_inputs = inputs[3:]
    if not len(names) == len(slice_specs) == len(dtypes) == len(tensor_inputs):
        raise Unsizable(f"{save_op.name} has {len(names)} names, {len(slice_specs)} slice specs, "
                        f"{len(dtypes)} dtypes and {len(tensor_inputs)} tensors")
    tensors = []
    for name, spec, dt, tensor_input in zip(names, slice_specs, dtypes, tensor_inputs):
        if spec:
            shape, piece = parse_slice_spec(spec, name)
        else:
            shape, piece = _variable_shape(meta, tensor_input, name), None
        tensors.append((name, dt, shape, piece))
    return tensors


def parse_slice_spec(spec: str, name: str) -> tuple[tuple, TensorSlice]:
    """`"10 5 0,4:0,5"` (full shape, then start,length per dimension, `-` for all of it)."""
    *dims, extents = spec.split(" ")
    try:
        shape = tuple(int(d) for d in dims)
        pieces = tuple(None if e == "-" else tuple(int(x) for x in e.split(",")) for e in extents.split(":"))
    except ValueError:
        raise Unsizable(f"cannot parse the slice spec `{spec}` of {name}") from None
    if len(pieces) != len(shape) or any(p is not None and len(p) != 2 for p in pieces):
        raise Unsizable(f"the slice spec `{spec}` of {name} does not match its rank")
    return shape, TensorSlice(pieces)


def _variable_shape(meta: MetaGraph, tensor_input: str, key: str) -> tuple:
    """Follow reads and identities from a SaveV2 input back to the variable; its `shape` attr."""
    node = meta.nodes.get(tensor_input)
    while node is not None and node.op in PASS_THROUGH_OPS and node.data_inputs():
        node = meta.nodes.get(node.data_inputs()[0])
    if node is None or node.op not in VARIABLE_OPS:
        what = f"an op `{node.op}`" if node is not None else "a missing node"
        raise Unsizable(f"cannot size {key}: the saver reads it from {what}, not a variable")
    return _fixed_shape(node, key)


def _fixed_shape(node, key: str) -> tuple:
    shape = node.attr_shape("shape")
    if not is_fully_defined(shape):
        shown = "unknown rank" if shape is None else list(shape)
        raise Unsizable(f"cannot size {key}: variable {node.name} has shape {shown}")
    return shape


def _default_saver_tensors(meta: MetaGraph) -> list:
    """What `Saver()` saves with no var_list: the global variables by name; partitions under their full name."""
    if meta.variable_defs("saveable_objects"):
        raise Unsizable("the graph has no saver_def and registers non-variable saveables, which it does not size")
    tensors = []
    for var in meta.variable_defs("variables"):
        node = meta.nodes.get(var.op_name)
        if node is None or node.op not in VARIABLE_OPS:
            raise Unsizable(f"variable {var.variable_name} of the `variables` collection has no variable op")
        dt = node.attr_type("dtype")
        info = var.slice_info
        if info is None:
            tensors.append((var.op_name, dt, _fixed_shape(node, var.op_name), None))
        else:
            piece = TensorSlice(tuple(zip(info.var_offset, info.var_shape)))
            tensors.append((info.full_name, dt, info.full_shape, piece))
    return sorted(tensors, key=lambda t: t[0])   # stable: the parts of one variable keep collection order
