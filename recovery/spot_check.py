"""The cheap check every healthy-looking index gets: do a few small tensors' bytes match their CRCs in
the index? Step counters first (they change with every save, so an index from another save shows
there), then the object graph, then the smallest other tensors, all in one batch of ranged reads.
"""

from dataclasses import dataclass, field

from tfbundle import OBJECT_GRAPH_KEY, FormatError, checksummer, crc_mask, data_filename

from . import storage
from .counters import COUNTER_KEYS
from .healthy import graph_payload

SPOT_CHECK_TENSORS = 3
SPOT_CHECK_BYTES = 1 << 20
COUNTER_SUFFIXES = (*COUNTER_KEYS, "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")


@dataclass
class SpotCheck:
    checked: list = field(default_factory=list)      # tensor names whose CRC matched
    mismatches: list = field(default_factory=list)   # what did not match, in words
    bytes_read: int = 0
    counter_differs: bool = False
    graph: bytes | None = None                       # the object graph's payload, when read and it matched

    @property
    def looks_stale(self) -> bool:
        """An index from another save: its step counter differs, or more than one tensor does, or nothing
        checked matches. One tensor alone that differs beside others that match is damaged data."""
        return bool(self.mismatches) and (self.counter_differs or len(self.mismatches) > 1 or not self.checked)


def spot_check(fs, prefix: str, index, limit: int = SPOT_CHECK_TENSORS, budget: int = SPOT_CHECK_BYTES) -> SpotCheck:
    """The CRCs of a few small tensors against the data: step counters first (they change with every
    save), then the object graph, then the smallest other tensors; at most `limit` tensors and `budget`
    bytes, read in one batch of ranged reads."""
    entries = [(k, e) for k, e in index.data_entries() if e.size]
    chosen, spent = [], 0
    counters = [(k, e) for k, e in entries if k.decode("utf-8", "replace").endswith(COUNTER_SUFFIXES)]
    graph = [(k, e) for k, e in entries if k == OBJECT_GRAPH_KEY.encode()]
    others = sorted((item for item in entries if item not in counters and item not in graph), key=lambda kv: kv[1].size)
    for key, entry in counters + graph + others:
        if len(chosen) < limit and spent + entry.size <= budget and (key, entry) not in chosen:
            chosen.append((key, entry))
            spent += entry.size
    result = SpotCheck()
    if not chosen:
        return result
    num_shards = index.header.num_shards or 1
    paths = [data_filename(prefix, e.shard_id, num_shards) for _, e in chosen]
    blobs = read_ranges(fs, paths, [e.offset for _, e in chosen], [e.offset + e.size for _, e in chosen])
    for (key, entry), blob in zip(chosen, blobs):
        name = key.decode("utf-8", "replace")
        result.bytes_read += len(blob)
        actual = tensor_crc(entry, blob)
        if actual == entry.crc32c:
            result.checked.append(name)
            if key == OBJECT_GRAPH_KEY.encode():
                result.graph = graph_payload(blob)
            continue
        shown = f"data {actual:#010x}" if actual is not None else "the data is not such a tensor"
        result.mismatches.append(f"tensor {name} (shard {entry.shard_id}, bytes {entry.offset}-"
                                 f"{entry.offset + entry.size}): checksum does not match (index {entry.crc32c:#010x}, "
                                 f"{shown})")
        result.counter_differs |= name.endswith(COUNTER_SUFFIXES)
    return result


def read_ranges(fs, paths: list, starts: list, ends: list) -> list:
    """One batch of ranged reads; a store that keeps failing raises StorageUnavailable naming the file."""
    with storage.unavailable_if_transient(fs, paths[0] if len(set(paths)) == 1 else storage.parent(paths[0])):
        return fs.cat_ranges(paths, starts, ends, on_error="raise")


def tensor_crc(entry, blob: bytes) -> int | None:
    """The masked CRC BundleWriter would store for these bytes; None when they are not such a tensor."""
    if len(blob) != entry.size:
        return None
    try:
        summer = checksummer(entry.dtype, entry.shape, entry.size, count_nonfinite=False)
        summer.feed(blob)
    except (FormatError, ValueError):
        return None
    return crc_mask(summer.crc) if summer.done else None
