"""Source 2: a healthy checkpoint of the same run in the same directory (or --template).

Same model, same layout; only the bytes differ. Siblings of the same checkpoint name come first
(`ckpt-3` takes `ckpt-best` before `ema-4`), then the nearest in step. Up to MAX_SIBLINGS_READ
indexes are read, and every one whose keys match the orphan's object graph is offered: the engine
fits and cross-checks them all, and their CRCs tell a tensor that changes between the run's saves
from one that does not (other_saves.py).
"""

from tfbundle import FormatError, index_filename, name_stem, step_of

from .. import storage
from ..context import OrphanContext
from ..healthy import indexed_siblings, read_index_cached
from ..layout import Layout, Refusal, describe_key_mismatch, keys_mismatch, layout_from_index
from .protocol import Source

MAX_SIBLINGS_READ = 8     # indexes read per orphan (README: "Sources of a layout"); small, but not free


def _sibling_prefixes(ctx: OrphanContext) -> list[tuple[str, int]]:
    """(prefix, index size) of every other checkpoint in the directory, nearest first (see `nearness`)."""
    return sorted(indexed_siblings(ctx), key=lambda found: nearness(ctx.prefix, found[0]))


def nearness(own_prefix: str, prefix: str) -> tuple:
    """Sort key of a sibling: the same checkpoint name first, then the nearest step; on a tie, the later
    step; unnumbered names after numbered ones."""
    other_name = name_stem(own_prefix) != name_stem(prefix)
    own_step, step = step_of(own_prefix), step_of(prefix)
    if own_step is None or step is None:
        return (other_name, 1, 0, prefix)
    return (other_name, 0, abs(step - own_step), -step)


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
    layout = layout_from_index(index, label, kind, ctx.data_order_keys())
    if ctx.object_graph is not None:
        missing, extra = keys_mismatch(layout, ctx.object_graph)
        if missing or extra:
            return Refusal(label, describe_key_mismatch(label, missing, extra), missing, extra)
    return layout


def _sibling_layouts(ctx: OrphanContext):
    """Layouts of the nearest MAX_SIBLINGS_READ healthy siblings, nearest first (refusals where keys differ)."""
    if ctx.template:
        fs, path = storage.split_prefix(ctx.template)
        yield layout_from_prefix(ctx, fs, path, "template", f"template {ctx.template}")
        return
    for prefix, size in _sibling_prefixes(ctx)[:MAX_SIBLINGS_READ]:
        label = f"sibling {storage.prefix_name(prefix)}"
        if prefix in ctx.not_independent:
            yield Refusal(label, ctx.not_independent[prefix])
            continue
        yield layout_from_prefix(ctx, ctx.fs, prefix, "sibling", label, size)


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
