"""One sequential pass over each shard that arrived: every placed tensor's CRC, in-band checksum,
Inf/NaN count, and the zero-filled blocks that mark storage never written (recovery/zeros.py).

Unlike a rebuild's pass, one tensor whose in-band checksum fails does not end the pass: salvage
judges every tensor on its own, so the failure is kept with that tensor and the pass goes on.

When the audit's rebuild already streamed the shards (its layout fit, and a final check refused the
bytes), `Streamed` holds what that pass found, and a shard whose tensors salvage places exactly where
the rebuild did is judged from it without being read again.
"""

from collections import Counter
from dataclasses import dataclass

from tfbundle import DT_STRING, DT_VARIANT, FormatError, checksummer, crc_mask, scan_spans

from .. import storage, zeros
from ..final_checks import finishing
from ..layout import reference_key


@dataclass
class TensorRead:
    crc: int | None      # masked CRC of its bytes, as an index stores it; None when they did not read as the dtype
    failed: str = ""     # why not: an in-band checksum that fails, lengths that do not fit its size
    nonfinite: int = 0   # Inf/NaN elements of a float tensor


class _Isolated:
    """A tensor's checksummer fed exactly its `size` bytes; a failure is recorded, not raised."""

    def __init__(self, spec, size: int):
        numeric = spec.dtype not in (DT_STRING, DT_VARIANT)
        self.summer = checksummer(spec.dtype, spec.stored_shape, size if numeric else None)
        self.size, self.consumed, self.failed = size, 0, ""

    def feed(self, chunk) -> int:
        want = min(len(chunk), self.size - self.consumed)
        if not self.failed:
            try:
                taken = self.summer.feed(chunk if want == len(chunk) else chunk[:want])
                if taken < want:
                    self.failed = f"its own length fields end it {self.size - self.consumed - taken} bytes early"
            except FormatError as exc:
                self.failed = str(exc)
        self.consumed += want
        return want

    def result(self) -> TensorRead:
        if not self.failed and not self.summer.done:
            self.failed = "its bytes end before its own length fields do"
        if self.failed:
            return TensorRead(None, self.failed)
        return TensorRead(crc_mask(self.summer.crc), nonfinite=getattr(self.summer, "nonfinite", 0))


class _Unread:
    """Bytes after the last placed tensor: fed to the zero scanner only."""

    def __init__(self, size: int):
        self.size, self.consumed = size, 0

    def feed(self, chunk) -> int:
        taken = min(len(chunk), self.size - self.consumed)
        self.consumed += taken
        return taken


@dataclass(frozen=True)
class Streamed:
    """What a rebuild's checksum pass found: per tensor it placed, where, its CRC and Inf/NaN count;
    per shard, the zero runs of the whole file."""

    reads: dict      # (shard, offset, size, key, slice) -> TensorRead
    runs: dict       # shard -> zero runs (zeros.combine_runs)

    def of_shard(self, shard: int, placed: list) -> "list | None":
        """[TensorRead] of `placed` when the rebuild read every one of them at the same place; else None."""
        found = [self.reads.get(_where(p)) for p in placed]
        return None if shard not in self.runs or None in found else found


def streamed(plan, ranges: list) -> "Streamed | None":
    """What a rebuild's ranges (rebuild.RangeChecksums of `plan`) found; None when a range stopped early
    (a string whose in-band checksum failed ends a rebuild's pass, not salvage's: read again)."""
    done = finishing(plan, ranges)
    if done.unread or any(r.error for r in ranges):
        return None
    nonfinite = Counter()
    for rng in ranges:
        for i, _, _, bad in rng.pieces:
            nonfinite[i] += bad
    reads = {_where(p): TensorRead(crc_mask(raw), nonfinite=nonfinite[i])
             for i, (p, raw) in enumerate(zip(plan.placed, done.crcs))}
    runs = {shard: zeros.combine_runs([r.zero_runs for r in ranges if r.shard == shard], size)
            for shard, size in enumerate(plan.shard_sizes)}
    return Streamed(reads, runs)


def _where(placed) -> tuple:
    return (placed.spec.shard, placed.offset, placed.size, *reference_key(placed.spec))


def read_shard(fs, path: str, size: int, shard: int, placed: list, known: "Streamed | None" = None) -> tuple:
    """([TensorRead] in the order of `placed`, [zeros.ZeroFinding], data bytes read) for one shard.

    `placed`: fitting.PlacedTensor of this shard lying wholly inside its `size` bytes, in offset order.
    `known`: what a rebuild already read; the shard is not read again when it covers `placed`.
    """
    reads = known.of_shard(shard, placed) if known is not None else None
    if reads is not None:
        runs, read = known.runs[shard], 0
    else:
        reads, runs = _read(fs, path, size, placed)
        read = size
    tensors = [(p.offset, p.size, p.spec.describe(), _row_bytes(p)) for p in placed]
    return reads, zeros.judge(shard, size, runs, tensors), read


def _read(fs, path: str, size: int, placed: list) -> tuple:
    summers = [_Isolated(p.spec, p.size) for p in placed]
    scanner = zeros.ZeroScanner(0, size)
    spans = [(p.offset, p.size, s) for p, s in zip(placed, summers) if p.size]
    end = max((p.offset + p.size for p in placed), default=0)
    if end < size:   # the bytes no placed tensor covers are still looked at for zeros (a file of zeros)
        spans.append((end, size - end, _Unread(size - end)))
    if size:
        with storage.open_source(fs, path, size) as source:
            scan_spans(source, spans, start=0, end=size, on_chunk=scanner.feed)
    return [s.result() for s in summers], zeros.combine_runs([scanner.runs()], size)


def _row_bytes(placed) -> int:
    """Bytes of one row of a rank >= 2 numeric tensor (zero runs that end on rows are data-like); else 0."""
    shape = placed.spec.stored_shape
    if placed.spec.dtype in (DT_STRING, DT_VARIANT) or len(shape) < 2 or not shape[0]:
        return 0
    return placed.size // shape[0]


def overlapping(findings: list, offset: int, size: int):
    """The first zero finding that overlaps [offset, offset + size), or None."""
    return next((f for f in findings if f.start < offset + size and offset < f.end), None)
