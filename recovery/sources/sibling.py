"""Source 2: a healthy checkpoint of the same run in the same directory (or --template).

Same model, same layout; only the bytes differ. Siblings nearest in step come first, and only
those whose keys match the orphan's object graph are offered.
"""

from tfbundle import OBJECT_GRAPH_KEY, FormatError, index_filename, step_of

from .. import storage
from ..context import OrphanContext
from ..healthy import indexed_siblings, read_index_cached
from ..layout import Layout, Refusal, describe_key_mismatch, keys_mismatch, layout_from_index
from .protocol import Source

MAX_SIBLINGS_READ = 8     # indexes read per orphan before giving up; they are small but not free
MAX_OFFERED = 2


def _sibling_prefixes(ctx: OrphanContext) -> list[tuple[str, int]]:
    """(prefix, index size) of every other checkpoint in the directory, nearest step first."""
    return sorted(indexed_siblings(ctx), key=lambda found: nearness(ctx.prefix, found[0]))


def nearness(own_prefix: str, prefix: str) -> tuple:
    """Sort key of a sibling: nearest step first; on a tie, the later step; unnumbered names last."""
    own_step, step = step_of(own_prefix), step_of(prefix)
    if own_step is None or step is None:
        return (1, 0, prefix)
    return (0, abs(step - own_step), -step)


def layout_from_prefix(ctx: OrphanContext, fs, prefix: str, kind: str, label: str,
                       index_size: int | None = None) -> "Layout | Refusal":
    try:
        index = read_index_cached(fs, index_filename(prefix), index_size)
    except (FormatError, OSError) as exc:
        return Refusal(label, f"its index is unreadable: {exc}")
    layout = layout_for_orphan(ctx, index, label, kind)
    if isinstance(layout, Layout):
        layout.origin = (fs, prefix)
    return layout


def layout_for_orphan(ctx: OrphanContext, index, label: str, kind: str) -> "Layout | Refusal":
    """Another checkpoint's index as a layout for this orphan, in its data order; refused, naming the
    keys, unless its keys are the orphan's object graph's."""
    graph_order = None
    if ctx.object_graph is not None:
        graph_order = ctx.object_graph.checkpoint_keys() + [OBJECT_GRAPH_KEY]
    layout = layout_from_index(index, label, kind, graph_order)
    if ctx.object_graph is not None:
        missing, extra = keys_mismatch(layout, ctx.object_graph)
        if missing or extra:
            return Refusal(label, describe_key_mismatch(label, missing, extra), missing, extra)
    return layout


def _sibling_layouts(ctx: OrphanContext):
    """Layouts of the nearest healthy siblings, nearest first; at most MAX_OFFERED whose keys match."""
    if ctx.template:
        fs, path = storage.split_prefix(ctx.template)
        yield layout_from_prefix(ctx, fs, path, "template", f"template {ctx.template}")
        return
    offered = 0
    for prefix, size in _sibling_prefixes(ctx)[:MAX_SIBLINGS_READ]:
        label = f"sibling {storage.prefix_name(prefix)}"
        if prefix in ctx.not_independent:
            yield Refusal(label, ctx.not_independent[prefix])
            continue
        found = layout_from_prefix(ctx, ctx.fs, prefix, "sibling", label, size)
        yield found
        if isinstance(found, Layout):
            offered += 1
            if offered >= MAX_OFFERED:
                return


class SiblingSource(Source):
    name = "sibling"
    chosen_by = "template"

    def layouts(self, ctx: OrphanContext):
        return _sibling_layouts(ctx)

    def choice(self, layout: Layout) -> str:
        if not layout.origin:
            return ""
        fs, prefix = layout.origin
        return f"--template {storage.display(fs, prefix)}"


sibling_layouts = SiblingSource()
