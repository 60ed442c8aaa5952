"""File names of a checkpoint bundle, as tensor_bundle/naming.cc forms them."""

import re
from dataclasses import dataclass

INDEX_SUFFIX = ".index"
_DATA_RE = re.compile(r"^(?P<prefix>.+)\.data-(?P<shard>\d{5,})-of-(?P<num_shards>\d{5,})$")
_PART_RE = re.compile(r"^(?P<base>.+)(?:_temp(?:_[0-9a-f]{32})?/part|\.part)-(?P<part>\d{5,})-of-(?P<parts>\d{5,})$")


def data_filename(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def index_filename(prefix: str) -> str:
    return prefix + INDEX_SUFFIX


@dataclass(frozen=True)
class DataFileName:
    prefix: str
    shard: int
    num_shards: int


def parse_data_filename(path: str) -> DataFileName | None:
    match = _DATA_RE.match(path)
    if not match:
        return None
    return DataFileName(match["prefix"], int(match["shard"]), int(match["num_shards"]))


def part_of(prefix: str) -> tuple[str, int, int] | None:
    """For a merge-input prefix (`P_temp/part-00000-of-00002`, `P.part-…` on S3) return (P, part, parts)."""
    match = _PART_RE.match(prefix)
    if not match:
        return None
    return match["base"], int(match["part"]), int(match["parts"])
