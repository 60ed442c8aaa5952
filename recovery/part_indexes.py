"""An index beside the part indexes of a merge into the same prefix: do they describe the same data?

TensorFlow's merge renames the part data into place before it writes P.index, so a crash in between
leaves the new data beside the old index (a reused prefix) and the part index that describes the new
data. Agreement: the merge finished and only its clean-up was cut short. Disagreement: a few tensors
whose CRCs differ are read to see which index the data follows.
"""

from dataclasses import dataclass
from typing import NamedTuple

from tfbundle import BundleEntry, FormatError, data_filename, naming

from . import storage
from .discovery import Leftover, PrefixFiles
from .sizes import read_sized_index
from .spot_check import SPOT_CHECK_BYTES, SPOT_CHECK_TENSORS, read_ranges, tensor_crc


class StoredEntry(NamedTuple):
    """A tensor (or one slice of it) whose bytes lie in a data file, as two indexes are compared."""

    dtype: int
    shape: tuple
    shard: int
    offset: int
    size: int
    crc32c: int


class PartitionedEntry(NamedTuple):
    """The full entry of a partitioned tensor: no bytes of its own, they are in its slices' entries."""

    dtype: int
    shape: tuple
    slices: tuple


@dataclass
class PartVerdict:
    finding: str
    stale: bool = False
    corrupt: bool = False
    bytes_read: int = 0


def compare_with_part_indexes(fs, found: PrefixFiles, index, index_bytes: bytes, parts: list) -> PartVerdict:
    """The index of `found` against the part indexes `parts` left beside it (see the module's docstring)."""
    where = storage.display(fs, storage.parent(parts[0].name))
    merged, num_parts, problem = _merged_part_entries(fs, parts)
    if problem:
        return PartVerdict(f"note: the part index in {where} was not compared: {problem}")
    if num_parts == 1 and _part_index_bytes(fs, parts[0]) == index_bytes:
        return PartVerdict(f"the part index left in {where} is byte-identical to the index (a merge whose "
                           "clean-up was interrupted)")
    own = _comparable(index.entries)
    if own == merged and (index.header.num_shards or 1) == num_parts:
        return PartVerdict(f"the part indexes left in {where} describe the same tensors as the index (a merge whose "
                           "clean-up was interrupted)")
    listed = dict(found.data)
    sizes_fit = all(listed.get(data_filename(found.prefix, s, num_parts)) == n
                    for s, n in _shard_ends(merged, num_parts).items())
    differing = sorted((key for key in set(own) | set(merged) if own.get(key) != merged.get(key)),
                       key=lambda k: (_size_of(merged.get(k) or own.get(k)), k))
    probes = [k for k in differing if _size_of(merged.get(k)) and _size_of(merged[k]) <= SPOT_CHECK_BYTES]
    probes = probes[:SPOT_CHECK_TENSORS]
    part_ok = own_ok = None
    bytes_read = 0
    if sizes_fit and probes:
        part_ok, read = _entries_match(fs, found.prefix, num_parts, [merged[k] for k in probes])
        bytes_read += read
        own_probes = [own[k] for k in probes if isinstance(own.get(k), StoredEntry)]
        own_ok, read = (_entries_match(fs, found.prefix, index.header.num_shards or 1, own_probes) if own_probes
                        else (False, 0))
        bytes_read += read
    shown = ", ".join(k.decode("utf-8", "backslashreplace") for k in differing[:3])
    if part_ok and not own_ok:
        return PartVerdict(f"stale index: the part index left in {where} by a later save describes the data "
                           f"({len(probes)} tensor(s) whose CRCs differ read as the part index says: {shown}) and the "
                           "index does not. TensorFlow's merge renamed the new data into place and stopped before it "
                           "wrote the index", stale=True, bytes_read=bytes_read)
    if own_ok and not part_ok:
        return PartVerdict(f"note: the part index left in {where} is from an earlier interrupted save; the data "
                           f"follows the index ({len(probes)} tensor(s) checked: {shown})", bytes_read=bytes_read)
    if part_ok is None:
        detail = ("the part index does not account for the data files' sizes" if not sizes_fit
                  else "they differ only in layout, which the data cannot decide")
        if sizes_fit:
            return PartVerdict(f"the index and the part index left in {where} disagree on {shown}; {detail}",
                               corrupt=True)
        return PartVerdict(f"note: the part index left in {where} differs from the index and {detail}")
    return PartVerdict(f"neither the index nor the part index left in {where} matches the data at {shown}: the data "
                       "is from another save, or damaged", corrupt=True, bytes_read=bytes_read)


def _part_index_path(part: Leftover) -> str:
    return next(p for p, _ in part.files if p.endswith(naming.INDEX_SUFFIX))


def _part_index_bytes(fs, part: Leftover) -> bytes:
    return storage.read_bytes(fs, _part_index_path(part))


def _merged_part_entries(fs, parts: list):
    """Entries as MergeBundles would write them from these part indexes (shard = part number), the part
    count, or a problem that keeps them from being compared."""
    numbered = [(naming.part_of(part.name), part) for part in parts]
    count = numbered[0][0][2]
    if sorted(n[1] for n, _ in numbered) != list(range(count)) or any(n[2] != count for n, _ in numbered):
        return None, count, f"found {len(parts)} of {count} part indexes"
    merged = {}
    for (_, number, _), part in sorted(numbered, key=lambda item: item[0][1]):
        try:
            part_index = read_sized_index(_part_index_bytes(fs, part))
        except (FormatError, OSError) as exc:
            return None, count, f"{storage.display(fs, _part_index_path(part))} is unreadable: {exc}"
        for key, value in _comparable(part_index.entries, shard=number).items():
            if isinstance(value, PartitionedEntry) and key in merged:
                merged[key] = value._replace(slices=merged[key].slices + value.slices)
            else:
                merged.setdefault(key, value)
    return merged, count, ""


def _comparable(entries: dict, shard: int | None = None) -> dict:
    """key -> StoredEntry or PartitionedEntry; `shard` replaces the entries' own (a part index's is 0)."""
    out = {}
    for key, entry in entries.items():
        if entry.slices:
            out[key] = PartitionedEntry(entry.dtype, tuple(entry.shape), tuple(entry.slices))
        else:
            out[key] = StoredEntry(entry.dtype, tuple(entry.shape), entry.shard_id if shard is None else shard,
                                   entry.offset, entry.size, entry.crc32c)
    return out


def _size_of(entry: "StoredEntry | PartitionedEntry | None") -> int:
    return entry.size if isinstance(entry, StoredEntry) else 0


def _shard_ends(comparable: dict, num_shards: int) -> dict:
    ends = dict.fromkeys(range(num_shards), 0)
    for value in comparable.values():
        if isinstance(value, StoredEntry):
            ends[value.shard] = max(ends.get(value.shard, 0), value.offset + value.size)
    return ends


def _entries_match(fs, prefix: str, num_shards: int, probes: list) -> tuple:
    """(every probed StoredEntry's bytes match its CRC, bytes read)."""
    paths = [data_filename(prefix, e.shard, num_shards) for e in probes]
    blobs = read_ranges(fs, paths, [e.offset for e in probes], [e.offset + e.size for e in probes])
    ok = True
    for probe, blob in zip(probes, blobs):
        entry = BundleEntry(probe.dtype, probe.shape, probe.shard, probe.offset, probe.size, probe.crc32c)
        ok = ok and tensor_crc(entry, blob) == entry.crc32c
    return ok, sum(len(b) for b in blobs)
