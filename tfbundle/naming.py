"""File names of a checkpoint bundle, as tensor_bundle/naming.cc forms them."""

import re
from dataclasses import dataclass

INDEX_SUFFIX = ".index"
# Object names may hold any character, a line break too (`ck\npt-1` is a valid prefix for TensorFlow and
# for every store): each pattern matches the whole name (fullmatch, DOTALL), never up to a line break.
_DATA_RE = re.compile(r"(?P<prefix>.+)\.data-(?P<shard>\d{5,})-of-(?P<num_shards>\d{5,})", re.DOTALL)
_PART_RE = re.compile(r"(?P<base>.+)(?:_temp(?:_[0-9a-f]{32})?/part|\.part)-(?P<part>\d{5,})-of-(?P<parts>\d{5,})",
                      re.DOTALL)
_STEP_RE = re.compile(r"(?P<stem>.+)-(?P<step>\d+)", re.DOTALL)


def split_step(prefix: str) -> tuple[str, int] | None:
    """(stem, step) of a checkpoint name that ends in `-N`, as Saver and CheckpointManager number
    them: ("model.ckpt", 2000) for `runs/a/model.ckpt-2000`; None for an unnumbered name."""
    match = _STEP_RE.fullmatch(prefix.rsplit("/", 1)[-1])
    return (match["stem"], int(match["step"])) if match else None


def step_of(prefix: str) -> int | None:
    """The number a checkpoint name carries: 57 for `ckpt-57`, None for `model`."""
    split = split_step(prefix)
    return split[1] if split else None


def name_stem(prefix: str) -> str:
    """The name a run gives its checkpoints, without what tells them apart: "ckpt" for `ckpt-57` and
    `ckpt-best`, "ema" for `ema-4`, "model.ckpt" for `model.ckpt-2000`, "weights" for `weights`."""
    leaf = prefix.rstrip("/").rsplit("/", 1)[-1]
    split = split_step(leaf)
    return split[0] if split else leaf.rsplit("-", 1)[0]


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
    match = _DATA_RE.fullmatch(path)
    if not match:
        return None
    return DataFileName(match["prefix"], int(match["shard"]), int(match["num_shards"]))


@dataclass(frozen=True)
class ShardCoverage:
    """Which shards the data files of one prefix cover."""

    counts: tuple      # the distinct shard counts their names declare, sorted
    missing: tuple     # shard numbers absent under that count; empty unless exactly one count
    beyond: tuple = ()  # shard numbers at or past that count (`data-00003-of-00002`)

    @property
    def complete(self) -> bool:
        return len(self.counts) == 1 and not self.missing and not self.beyond


def shard_coverage(files) -> ShardCoverage:
    """Coverage of data files (anything with `.shard` and `.num_shards`, e.g. parsed names) of one prefix."""
    counts = tuple(sorted({f.num_shards for f in files}))
    if len(counts) != 1:
        return ShardCoverage(counts, ())
    present = {f.shard for f in files}
    return ShardCoverage(counts, tuple(s for s in range(counts[0]) if s not in present),
                         tuple(sorted(s for s in present if s >= counts[0])))


def part_of(prefix: str) -> tuple[str, int, int] | None:
    """For a merge-input prefix (`P_temp/part-00000-of-00002`, `P.part-…` on S3) return (P, part, parts)."""
    match = _PART_RE.fullmatch(prefix)
    if not match:
        return None
    return match["base"], int(match["part"]), int(match["parts"])
