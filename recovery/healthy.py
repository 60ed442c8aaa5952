"""The healthy checkpoints beside an orphan: which there are, their indexes parsed once per process,
and the bytes of one tensor they hold.

The sibling source takes layouts from them; the cross-checks read their object graphs and step
counters. Both list and read them here, so they see the same checkpoints.
"""

from tfbundle import INDEX_SUFFIX, OBJECT_GRAPH_KEY, FormatError, data_filename, index_filename, read_index
from tfbundle.varint import decode_varint

from . import storage
from .caches import SharedCache
from .context import OrphanContext

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
        if item.get("type") == "directory" or not name.endswith(INDEX_SUFFIX):
            continue
        prefix = name[: -len(INDEX_SUFFIX)]
        if prefix != ctx.prefix:
            found.append((prefix, item.get("size")))
    return found


def locate_tensor(fs, prefix: str, key: str):
    """(data file path, index entry) of `key` in a healthy checkpoint, or None where it has no such key.

    Raises FormatError or OSError when the checkpoint's index cannot be read.
    """
    index = read_index_cached(fs, index_filename(prefix))
    entry = index.entries.get(key.encode())
    if entry is None:
        return None
    return data_filename(prefix, entry.shard_id, index.header.num_shards), entry




def read_object_graph(fs, prefix: str) -> bytes | None:
    """The object-graph payload a healthy checkpoint holds (one small read), or None where it has none
    or it cannot be read."""
    try:
        located = locate_tensor(fs, prefix, OBJECT_GRAPH_KEY)
        if located is None:
            return None
        path, entry = located
        with storage.open_source(fs, path) as source:
            return graph_payload(source.read_at(entry.offset, entry.size))
    except (FormatError, OSError):
        return None


def graph_payload(raw: bytes) -> bytes | None:
    """The object graph's payload from its tensor's bytes as stored (a string scalar: length varint, its
    checksum, the bytes), or None when they are not that."""
    try:
        length, start = decode_varint(raw, 0)
    except FormatError:
        return None
    payload = raw[start + 4:start + 4 + length]
    return payload if len(payload) == length else None
