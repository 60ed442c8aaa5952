"""Source 2: a healthy checkpoint of the same run in the same directory (or --template).

Same model, same layout; only the bytes differ. Siblings nearest in step come first, and only
those whose keys match the orphan's object graph are offered.
"""

from tfbundle import OBJECT_GRAPH_KEY, FormatError, index_filename, read_index

from .. import storage
from ..caches import SharedCache
from ..context import step_of
from ..layout import Layout, Refusal, describe_key_mismatch, expand_attribute_key, layout_from_index
from . import OrphanContext

MAX_SIBLINGS_READ = 8     # indexes read per orphan before giving up; they are small but not free
MAX_OFFERED = 2
_CACHE_SIZE = 8            # parsed indexes can be tens of MB; orphans of a directory share a few
_parsed = SharedCache(_CACHE_SIZE)   # (filesystem token, path, size) -> BundleIndex, per worker process


def read_index_cached(fs, path: str, size: int | None = None):
    """A healthy index, parsed once per process: a directory of orphans shares its few siblings.

    Keyed by the size the listing reported, so an index rewritten under the same name and a new
    size is read again; the engine still fits every layout to the orphan's own bytes.
    """
    key = (getattr(fs, "_fs_token", id(fs)), path, size)
    return _parsed.get_or_compute(key, lambda: read_index(storage.read_bytes(fs, path)))


def indexed_siblings(ctx: OrphanContext) -> list[tuple[str, int]]:
    """(prefix, index size) of every other checkpoint in the orphan's directory that has an index."""
    found = []
    for item in ctx.directory_listing:
        name = item["name"]
        if item.get("type") == "directory" or not name.endswith(".index"):
            continue
        prefix = name[: -len(".index")]
        if prefix != ctx.prefix:
            found.append((prefix, item.get("size")))
    return found


def _sibling_prefixes(ctx: OrphanContext) -> list[tuple[str, int]]:
    """(prefix, index size) of every other checkpoint in the directory, nearest step first."""
    own_step = step_of(ctx.prefix)
    prefixes = indexed_siblings(ctx)

    def nearness(found):
        prefix = found[0]
        step = step_of(prefix)
        if own_step is None or step is None:
            return (1, 0, prefix)
        return (0, abs(step - own_step), -step)  # nearest first; on a tie, the later step

    return sorted(prefixes, key=nearness)


def keys_mismatch(layout: Layout, graph) -> tuple[list, list]:
    """(missing, extra) between a layout's keys and an object graph's attributes."""
    have = set(layout.keys())   # a set: membership for each of thousands of attributes
    missing, covered = [], {OBJECT_GRAPH_KEY}
    attribute_keys = frozenset(graph.checkpoint_keys())
    for attr in graph.checkpoint_keys():
        keys = expand_attribute_key(attr, have, attribute_keys)
        covered.update(keys)
        if not keys:
            missing.append(attr)
    return missing, sorted(set(have) - covered)


def layout_from_prefix(ctx: OrphanContext, fs, prefix: str, kind: str, label: str,
                       index_size: int | None = None) -> "Layout | Refusal":
    try:
        index = read_index_cached(fs, index_filename(prefix), index_size)
    except (FormatError, OSError) as exc:
        return Refusal(label, f"its index is unreadable: {exc}")
    graph_order = None
    if ctx.object_graph is not None:
        graph_order = ctx.object_graph.checkpoint_keys() + [OBJECT_GRAPH_KEY]
    layout = layout_from_index(index, label, kind, graph_order)
    layout.origin = (fs, prefix)
    if ctx.object_graph is not None:
        missing, extra = keys_mismatch(layout, ctx.object_graph)
        if missing or extra:
            return Refusal(label, describe_key_mismatch(label, missing, extra), missing, extra)
    return layout


def sibling_layouts(ctx: OrphanContext):
    """Layouts of the nearest healthy siblings, read lazily: the engine usually needs only the first."""
    if ctx.template:
        fs, path = storage.split_prefix(ctx.template)
        yield layout_from_prefix(ctx, fs, path, "template", f"template {ctx.template}")
        return
    offered = 0
    for prefix, size in _sibling_prefixes(ctx)[:MAX_SIBLINGS_READ]:
        label = f"sibling {storage.prefix_name(prefix)}"
        found = layout_from_prefix(ctx, ctx.fs, prefix, "sibling", label, size)
        yield found
        if isinstance(found, Layout):
            offered += 1
            if offered >= MAX_OFFERED:
                return
