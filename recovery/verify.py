"""Checks on healthy checkpoints: bit rot (every tensor against its CRC) and rehearsal (could we
rebuild this index from the other sources if it were lost tomorrow? `git index-pack --verify`)."""

from dataclasses import dataclass, field

from tfbundle import (
    BundleIndex,
    FormatError,
    crc_combine,
    crc_mask,
    data_filename,
    decode_slice_key,
    dtype,
    index_filename,
    is_slice_key,
    read_index,
    scan_spans,
)
from tfbundle.tensors import checksummer

from . import storage
from .context import NotRebuildable, open_orphan
from .fitting import PlacedTensor
from .layout import TensorSpec
from .rebuild import RebuildOutcome, RebuildPlan, checksum_whole, finalize, prepare


@dataclass
class VerifyPlan:
    """A healthy checkpoint's tensors as its index places them, and what is wrong before any data is read.

    Shaped like a RebuildPlan where ranges are concerned (shard_sizes, placed), so rebuild.split_ranges
    splits both alike."""

    prefix: str                     # filesystem path
    shard_paths: list
    shard_sizes: list               # 0 for a shard with no tensors or a problem
    placed: list                    # PlacedTensor, key as a person reads it, by (shard, offset)
    crcs: list                      # the masked crc32c the index holds for each placed tensor
    problems: dict = field(default_factory=dict)   # shard -> what is wrong with its file (missing, too short)

    def ranges(self) -> list:
        """(shard, 0, size) of every shard to stream."""
        return [(shard, 0, size) for shard, size in enumerate(self.shard_sizes) if size]


@dataclass
class VerifiedRange:
    shard: int
    start: int
    end: int
    pieces: list          # (index in plan.placed, raw crc32c of its bytes in the range, bytes fed, complete)
    error: str = ""       # the data does not parse as its dtype (a string or variant's in-band checksum)
    scanned: int = 0      # bytes read


def plan_verification(fs, prefix: str, index: BundleIndex | None = None) -> VerifyPlan:
    """Read the index and look at every data file it needs (size only)."""
    if index is None:
        index = read_index(storage.read_bytes(fs, index_filename(prefix)))
    num_shards = index.header.num_shards
    entries = sorted(index.data_entries(), key=lambda kv: (kv[1].shard_id, kv[1].offset))
    placed = [PlacedTensor(TensorSpec(_readable(key), e.dtype, tuple(e.shape), e.shard_id), e.offset, e.size)
              for key, e in entries]
    shards = sorted({e.shard_id for _, e in entries})
    paths = [data_filename(prefix, shard, num_shards) for shard in range(max(shards, default=-1) + 1)]
    sizes, problems = [0] * len(paths), {}
    for shard in shards:
        path = paths[shard]
        try:
            with storage.open_source(fs, path) as source:
                size = source.size
        except FileNotFoundError:
            problems[shard] = f"{storage.display(fs, path)} is missing"
            continue
        if size < max(p.offset + p.size for p in placed if p.spec.shard == shard):
            problems[shard] = f"{storage.display(fs, path)} is {size} bytes, shorter than its index says"
            continue
        sizes[shard] = size
    return VerifyPlan(prefix, paths, sizes, placed, [e.crc32c for _, e in entries], problems)


def verify_range(fs, plan: VerifyPlan, shard: int, start: int, end: int, on_bytes=None) -> VerifiedRange:
    """CRC the part of every tensor inside one byte range of one shard."""
    indexes = [i for i, p in enumerate(plan.placed)
               if p.spec.shard == shard and p.offset < end and p.offset + p.size > start]
    spans = [(p.offset, p.size, checksummer(p.spec.dtype, p.spec.shape,
                                            min(end, p.offset + p.size) - max(start, p.offset),
                                            count_nonfinite=False))
             for p in (plan.placed[i] for i in indexes)]
    scanned = [0]

    def count(n):
        scanned[0] += n
        if on_bytes is not None:
            on_bytes(n)

    error = ""
    with storage.open_source(fs, plan.shard_paths[shard], plan.shard_sizes[shard]) as source:
        try:
            scan_spans(source, spans, start=start, end=end, on_bytes=count)
        except FormatError as exc:
            error = str(exc)
    pieces = [(i, summer.crc, summer.consumed, summer.done) for i, (_, _, summer) in zip(indexes, spans)]
    return VerifiedRange(shard, start, end, pieces, error, scanned[0])


def verification_problems(plan: VerifyPlan, ranges: list) -> list[str]:
    """Join the ranges' CRCs per tensor and compare them with the index; [] when every tensor verifies."""
    pieces: dict[int, list] = {}
    errors: dict[int, str] = {}
    for rng in sorted(ranges, key=lambda r: (r.shard, r.start)):
        if rng.error and rng.shard not in errors:
            errors[rng.shard] = rng.error
        for i, raw, length, complete in rng.pieces:
            pieces.setdefault(i, []).append((raw, length, complete))
    problems = []
    for shard in sorted({p.spec.shard for p in plan.placed}):
        if shard in plan.problems:
            problems.append(plan.problems[shard])
            continue
        if shard in errors:
            problems.append(f"shard {shard}: {errors[shard]}")
            continue
        for i, placed in enumerate(plan.placed):
            if placed.spec.shard != shard:
                continue
            parts = pieces.get(i) or [(0, 0, not placed.size)]
            raw = parts[0][0]
            for more, length, _ in parts[1:]:
                raw = crc_combine(raw, more, length)
            actual, expected = crc_mask(raw), plan.crcs[i]
            if actual != expected or not all(complete for *_, complete in parts):
                where = f"shard {shard}, bytes {placed.offset}-{placed.offset + placed.size}"
                problems.append(f"tensor {placed.spec.key} ({where}): checksum does not match "
                                f"(index {expected:#010x}, data {actual:#010x})")
    return problems


def verify_data(fs, prefix: str, index: BundleIndex | None = None, on_bytes=None) -> list[str]:
    """Problems found streaming every data file against the index; [] when every tensor verifies."""
    plan = plan_verification(fs, prefix, index)
    return verification_problems(plan, [verify_range(fs, plan, shard, start, end, on_bytes)
                                        for shard, start, end in plan.ranges()])


def _readable(key: bytes) -> str:
    """A tensor's name as a person reads it: a slice key becomes `name[start:end, ...]`."""
    if not is_slice_key(key):
        return key.decode("utf-8", "surrogateescape")
    name, piece = decode_slice_key(key)
    dims = ", ".join(":" if e is None else f"{e[0]}:{e[0] + e[1]}" for e in piece.extents)
    return f"{name}[{dims}]"


@dataclass
class Rehearsal:
    verdict: str          # "byte-identical" | "differs" | "refused"
    detail: str
    outcome: RebuildOutcome | None = None


def plan_rehearsal(fs, prefix: str, listing=None, registry_layouts=None, sources=None, vault=None
                   ) -> "tuple[bytes, RebuildPlan | Rehearsal]":
    """The existing index, and the plan to rebuild it while ignoring it (or the refusal, already a verdict).

    The vault's entries of this prefix are ignored too: they are copies of the index being rehearsed."""
    own = storage.read_bytes(fs, index_filename(prefix))
    if vault is not None:
        vault = vault.without(storage.display(fs, prefix))
    try:
        ctx = open_orphan(fs, prefix, listing, registry_layouts, vault=vault)
    except NotRebuildable as exc:
        return own, Rehearsal("refused", str(exc))
    ctx.not_independent = rebuilt_by_us(ctx, vault)
    plan = prepare(ctx, sources)
    if isinstance(plan, RebuildOutcome):
        return own, Rehearsal("refused", plan.reason, plan)
    return own, plan


def rebuilt_by_us(ctx, vault) -> dict:
    """Siblings whose index ckpt-rescue itself wrote (the vault holds it with origin `rebuilt`: the audit, or
    `ckpt-rescue promote`, kept it so): such an index may have been rebuilt from this very checkpoint, so a
    rehearsal that used it would prove nothing. prefix path -> why it is left out."""
    if vault is None:
        return {}
    import hashlib

    from .healthy import indexed_siblings
    from .vault import ORIGIN_REBUILT

    found = {}
    for prefix, _ in indexed_siblings(ctx):
        entries = [e for e in vault.entries(storage.display(ctx.fs, prefix)) if e.origin == ORIGIN_REBUILT]
        if not entries:
            continue
        sha = hashlib.sha256(storage.read_bytes(ctx.fs, index_filename(prefix))).hexdigest()
        mine = next((e for e in entries if e.index_sha256 == sha), None)
        if mine is not None:
            found[prefix] = (f"not independent evidence: ckpt-rescue rebuilt this index ({mine.seen_on}, the vault "
                             "says), possibly from the checkpoint being rehearsed")
    return found


def judge_rehearsal(own: bytes, outcome: RebuildOutcome) -> Rehearsal:
    """Compare the rebuilt index with the existing one byte for byte."""
    if outcome.index_bytes is None:
        return Rehearsal("refused", outcome.reason, outcome)
    if outcome.index_bytes == own:
        return Rehearsal("byte-identical", f"rebuilt from {outcome.source}, independent of this checkpoint: "
                                           f"identical to the existing index ({len(own)} bytes)", outcome)
    return Rehearsal("differs", _first_difference(own, outcome.index_bytes, outcome.source), outcome)


def rehearse(fs, prefix: str, listing=None, registry_layouts=None, sources=None, on_bytes=None,
             vault=None) -> Rehearsal:
    """Rebuild a healthy checkpoint's index while ignoring it (and its vaulted copies), and compare byte for byte."""
    own, plan = plan_rehearsal(fs, prefix, listing, registry_layouts, sources, vault)
    if isinstance(plan, Rehearsal):
        return plan
    return judge_rehearsal(own, finalize(plan, checksum_whole(fs, plan, on_bytes)))


def _entry_words(entry) -> str:
    """An index entry as a person reads it (no Python repr)."""
    if entry is None:
        return "no such entry"
    if not hasattr(entry, "dtype"):
        return f"a header of {getattr(entry, 'num_shards', '?')} shard(s)"
    shape = "[" + ", ".join(map(str, entry.shape)) + "]"
    return (f"{dtype(entry.dtype).name}{shape} in shard {entry.shard_id}, bytes {entry.offset}-"
            f"{entry.offset + entry.size}, crc32c {entry.crc32c:08x}"
            + (f", {len(entry.slices)} slice(s)" if entry.slices else ""))


def _first_difference(own: bytes, rebuilt: bytes, source: str) -> str:
    try:
        mine, theirs = read_index(own), read_index(rebuilt)
    except FormatError as exc:
        return f"rebuilt from {source} but the existing index is unreadable: {exc}"
    for key in sorted(set(mine.entries) | set(theirs.entries)):
        a, b = mine.entries.get(key), theirs.entries.get(key)
        if a != b:
            return (f"rebuilt from {source} differs at {_readable(key) or 'the header'}: existing {_entry_words(a)}, "
                    f"rebuilt {_entry_words(b)}")
    return f"rebuilt from {source} has the same entries but different bytes ({len(own)} vs {len(rebuilt)})"
