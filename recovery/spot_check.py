"""The cheap check every healthy-looking index gets: do a few tensors' bytes match their CRCs in the
index? An index from another save shows where the data changed since, so the check always reads the
tensors that change at every save (step counters, the optimizer's iterations), the largest model
tensor up to WEIGHT_BUDGET (weights change when training did, even where no counter is saved, as with
Keras `save_weights` or `Checkpoint.write`), the object graph, then the smallest other tensors; all in
one batch of ranged reads.

A CRC needs the whole tensor, so the weight read is bounded: the largest model tensor of at most
WEIGHT_BUDGET bytes is read, and a larger one is left to --verify-data, which the record says.
BENCHMARKS.md ("Spot check budget") has the measurement behind the number.
"""

from dataclasses import dataclass, field

from tfbundle import OBJECT_GRAPH_KEY, FormatError, checksummer, crc_mask, data_filename

from . import storage
from .healthy import graph_payload
from .tensor_roles import is_counter, is_model_weight

SPOT_CHECK_TENSORS = 3          # the smallest other tensors read
SPOT_CHECK_BYTES = 1 << 20      # ... within this many bytes (with the object graph)
WEIGHT_BUDGET = 16 << 20        # the largest model tensor read, at most this big


@dataclass
class SpotCheck:
    checked: list = field(default_factory=list)      # tensor names whose CRC matched
    mismatches: list = field(default_factory=list)   # what did not match, in words
    bytes_read: int = 0
    counter_differs: bool = False
    weight: str = ""                                 # the model tensor read, if any
    left_to_verify: tuple = ()                       # (name, bytes) of a larger model tensor not read
    graph: bytes | None = None                       # the object graph's payload, when read and it matched

    @property
    def looks_stale(self) -> bool:
        """An index from another save: its step counter differs, or more than one tensor does, or nothing
        checked matches. One tensor alone that differs beside others that match is damaged data."""
        return bool(self.mismatches) and (self.counter_differs or len(self.mismatches) > 1 or not self.checked)


def spot_check(fs, prefix: str, index, limit: int = SPOT_CHECK_TENSORS, budget: int = SPOT_CHECK_BYTES,
               weight_budget: int = WEIGHT_BUDGET) -> SpotCheck:
    """The CRCs of every step counter, of the largest model tensor within `weight_budget`, of the object
    graph and of at most `limit` smallest other tensors (within `budget` bytes), against the data."""
    result = SpotCheck()
    entries = [(k, e) for k, e in index.data_entries() if e.size]
    names = {k: k.decode("utf-8", "replace") for k, _ in entries}
    counters = [(k, e) for k, e in entries if is_counter(names[k])]
    weights = sorted(((k, e) for k, e in entries if is_model_weight(names[k], e.dtype)), key=lambda kv: -kv[1].size)
    weight = next(((k, e) for k, e in weights if e.size <= weight_budget), None)
    if weights and weights[0][1].size > weight_budget:
        result.left_to_verify = (names[weights[0][0]], weights[0][1].size)
    chosen = counters + ([weight] if weight else [])
    graph = [(k, e) for k, e in entries if k == OBJECT_GRAPH_KEY.encode() and e.size <= budget]
    others = sorted((item for item in entries if item not in chosen and item not in graph), key=lambda kv: kv[1].size)
    spent = sum(e.size for _, e in graph)
    chosen += graph
    for key, entry in others[:limit]:
        if spent + entry.size <= budget:
            chosen.append((key, entry))
            spent += entry.size
    if not chosen:
        return result
    result.weight = names[weight[0]] if weight else ""
    _check(fs, prefix, index, chosen, names, result)
    if len(result.mismatches) == 1 and weight and _mismatched(result, names[weight[0]]):
        # The model tensor alone differs, beside counters that match: a second one tells an index of
        # another save (both differ) from damage to one tensor (the second matches).
        second = next(((k, e) for k, e in weights if e.size <= weight_budget and (k, e) not in chosen), None)
        if second:
            _check(fs, prefix, index, [second], names, result)
    return result


def _check(fs, prefix: str, index, chosen: list, names: dict, result: SpotCheck) -> None:
    """Read `chosen` (key, entry) in one batch and add what matched and what did not to `result`."""
    num_shards = index.header.num_shards or 1
    paths = [data_filename(prefix, e.shard_id, num_shards) for _, e in chosen]
    blobs = read_ranges(fs, paths, [e.offset for _, e in chosen], [e.offset + e.size for _, e in chosen])
    for (key, entry), blob in zip(chosen, blobs):
        name = names[key]
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
        result.counter_differs |= is_counter(name)


def _mismatched(result: SpotCheck, name: str) -> bool:
    return any(m.startswith(f"tensor {name} ") for m in result.mismatches)


def read_ranges(fs, paths: list, starts: list, ends: list) -> list:
    """One batch of ranged reads; a store that keeps failing raises StorageUnavailable naming the file.
    A local file is opened once for all its ranges: fsspec's cat_ranges opens it once per range, which
    at 100k checkpoints of seven ranges each was ~17 of the audit's 90 CPU-s (BENCHMARKS.md, 2026-12-07)."""
    with storage.unavailable_if_transient(fs, paths[0] if len(set(paths)) == 1 else storage.parent(paths[0])):
        if storage.is_local(fs):
            return _local_ranges(fs, paths, starts, ends)
        return fs.cat_ranges(paths, starts, ends, on_error="raise")


def _local_ranges(fs, paths: list, starts: list, ends: list) -> list:
    """What cat_ranges gives (bytes start..end, short past the end of a file), each file opened once."""
    opened = {}
    try:
        blobs = []
        for path, start, end in zip(paths, starts, ends):
            if path not in opened:
                opened[path] = fs.open(path, "rb")
            handle = opened[path]
            handle.seek(start)
            blobs.append(handle.read(end - start))
        return blobs
    finally:
        for handle in opened.values():
            handle.close()


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
