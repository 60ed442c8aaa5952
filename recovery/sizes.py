"""Does each data file have the size its index needs? The one judgement behind the audit's
healthy / incomplete / corrupt verdicts (recovery/classify.py) and inspect's problems."""

from dataclasses import dataclass

from tfbundle import BundleIndex, FormatError, read_index


@dataclass(frozen=True)
class ShardSize:
    shard: int
    size: int | None     # as listed; None: no such data file
    needed: int          # where the index's last tensor in this shard ends

    @property
    def missing(self) -> bool:
        return self.size is None

    @property
    def short(self) -> bool:
        return self.size is not None and self.size < self.needed

    @property
    def long(self) -> bool:
        return self.size is not None and self.size > self.needed


def shard_sizes(index, size_of) -> list[ShardSize]:
    """Every shard the index names (all its header counts, and any an entry points past them), in
    order, with `size_of(shard)` (the listed size, or None) and the size its entries need."""
    num_shards = index.header.num_shards or 1
    needed = dict.fromkeys(range(num_shards), 0)
    for _, entry in index.data_entries():
        needed[entry.shard_id] = max(needed.get(entry.shard_id, 0), entry.offset + entry.size)
    return [ShardSize(shard, size_of(shard), end) for shard, end in sorted(needed.items())]


def read_sized_index(raw: bytes) -> BundleIndex:
    """`read_index`, refusing what TensorFlow never writes and no size can be judged by: a negative
    shard, offset, size, dimension or shard count (protobuf decodes these int32/int64 fields signed)."""
    index = read_index(raw)
    for key, entry in index.entries.items():
        name_of = key.decode("utf-8", "replace")
        for name in ("dtype", "shard_id", "offset", "size"):
            if getattr(entry, name) < 0:
                raise FormatError(f"entry {name_of}: field {name} is {getattr(entry, name)}, not a non-negative number")
        if any(d < 0 for d in entry.shape):
            raise FormatError(f"entry {name_of}: shape {list(entry.shape)} is not a list of non-negative sizes")
    if index.header.num_shards < 0:
        raise FormatError(f"header num_shards is {index.header.num_shards!r}")
    return index
