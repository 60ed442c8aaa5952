"""Find zero-filled storage in an orphan's data files during the rebuild's one streaming pass.

Why: space that was allocated but never written (a preallocated file, a copy or upload that stopped,
a filesystem that lost blocks) reads as zeros and keeps the file's size, so a layout still fits and
the index's CRCs would bless the zeros. What it looks like: a zero run that covers whole aligned
4 KiB pages and whose edges sit at block alignment inside tensors, or a file that is zeros through.

The rule (`judge`): a maximal run of zero bytes is *suspicious* when
  1. it covers at least one whole 4 KiB page aligned in the file, and
  2. at least one of its edges lies strictly inside a tensor at a multiple of 4 KiB ("block edge"),
  3. and neither edge is "data-like": strictly inside a tensor, off block alignment, and not on a row
     boundary of that tensor (a row is shape[1:] elements of a rank >= 2 numeric tensor).
Edges on tensor boundaries (and the file's start and end) and on row boundaries are explained by
the data's own structure. A data file that is zeros from first byte to last is refused whatever its
tensors. Everything else passes: whole tensors of zeros (biases at initialisation, Adam slots before
the first step, a save before training) are counted, not refused; sparse or pruned weights, embedding
rows never updated and their optimizer slots give runs that end at row boundaries or where a value's
first non-zero byte happens to be, which is off block alignment (1 in 4096 by chance per edge).

Runs accepted because an edge falls on a row boundary are still named in the evidence
(`on_row_boundaries`): pruned rows or a lost page, the data cannot tell which.

Limits: zeroing that starts and ends exactly on tensor or row boundaries is indistinguishable from
data (e.g. a 4 KiB block inside a tensor at file offset 0 whose rows are 4 KiB, or a zeroed tail
that begins where a tensor begins); a zeroed region smaller than one aligned page is not looked
for; zeros that overwrite zeros are invisible. `--allow-zeros` accepts what the rule refuses.

Cost: per chunk, one strided read of the first 8 bytes of every aligned page, a full check only of
pages whose first 8 bytes are zero, and a byte-exact edge search only around zero runs.
"""

import bisect
from dataclasses import dataclass

import numpy as np

PAGE = 4096
_PROBE = 64     # first window of an edge search; it doubles until a non-zero byte is found


def _first_nonzero(a: np.ndarray, lo: int, hi: int) -> int:
    """Index of the first non-zero byte in a[lo:hi], or hi. (`max` is numpy's fastest zero test.)"""
    window = _PROBE
    while lo < hi:
        top = min(hi, lo + window)
        if a[lo:top].max():
            return lo + int(np.flatnonzero(a[lo:top])[0])
        lo, window = top, window * 2
    return hi


def _last_nonzero(a: np.ndarray, lo: int, hi: int) -> int:
    """Index of the last non-zero byte in a[lo:hi], or lo - 1."""
    window = _PROBE
    while hi > lo:
        bottom = max(lo, hi - window)
        if a[bottom:hi].max():
            return bottom + int(np.flatnonzero(a[bottom:hi])[-1])
        hi, window = bottom, window * 2
    return lo - 1


def _merge(intervals: list) -> list:
    """Sorted (start, end) intervals with touching or overlapping ones joined."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covers_page(start: int, end: int) -> bool:
    return (start + PAGE - 1) // PAGE * PAGE + PAGE <= end


class ZeroScanner:
    """Zero runs of one byte range [start, end), fed chunk by chunk in order.

    `runs()` keeps the runs that cover a whole aligned page, and those touching the range's ends
    (they may join a neighbouring range's zeros into a longer run when ranges are combined).
    """

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self._intervals = []
        self.chunk_is_zero = False     # the chunk fed last is zeros throughout (ZeroWatch need not look again)

    def feed(self, position: int, chunk) -> None:
        a = np.frombuffer(chunk, np.uint8)
        n = a.size
        self.chunk_is_zero = False
        if n == 0:
            return
        if not a[0] and not a[-1] and not a.max():
            self.chunk_is_zero = True
            self._intervals.append((position, position + n))
            return
        if not a[0]:
            lead = _first_nonzero(a, 0, n)
            self._intervals.append((position, position + lead))
            if lead == n:
                return
        if not a[-1]:
            self._intervals.append((position + _last_nonzero(a, 0, n) + 1, position + n))
        first = (-position) % PAGE
        pages = (n - first) // PAGE
        if pages <= 0:
            return
        paged = a[first:first + pages * PAGE].reshape(pages, PAGE)
        candidates = np.flatnonzero(paged[:, :8].view(np.uint64)[:, 0] == 0)
        if candidates.size == 0:
            return
        zero_pages = candidates[paged[candidates].max(axis=1) == 0]
        if zero_pages.size == 0:
            return
        breaks = np.flatnonzero(np.diff(zero_pages) != 1)
        starts, lasts = np.r_[zero_pages[0], zero_pages[breaks + 1]], np.r_[zero_pages[breaks], zero_pages[-1]]
        for lo_page, hi_page in zip(starts, lasts):
            lo, hi = first + int(lo_page) * PAGE, first + (int(hi_page) + 1) * PAGE
            self._intervals.append((position + _last_nonzero(a, 0, lo) + 1, position + _first_nonzero(a, hi, n)))

    def runs(self) -> list:
        return [(s, e) for s, e in _merge(self._intervals)
                if covers_page(s, e) or s == self.start or e == self.end]


def combine_runs(range_runs: list, shard_size: int) -> list:
    """The zero runs of one shard from its ranges' runs: joined across range edges, each covering a
    page, or the whole file (a small file of zeros is still a file of zeros)."""
    return [(s, e) for s, e in _merge([run for runs in range_runs for run in runs])
            if covers_page(s, e) or (s, e) == (0, shard_size)]


class ZeroWatch:
    """Wraps a tensor's checksummer and remembers whether every byte fed to it was zero.
    Bytes of a chunk the range's ZeroScanner found zero throughout are not looked at again."""

    def __init__(self, summer, scanner: "ZeroScanner | None" = None):
        self._summer = summer
        self._scanner = scanner
        self.all_zero = True

    def feed(self, chunk) -> int:
        taken = self._summer.feed(chunk)
        if self.all_zero and taken and not (self._scanner is not None and self._scanner.chunk_is_zero):
            head = chunk[:8]
            if any(head[:taken]) or np.frombuffer(chunk, np.uint8)[:taken].max():
                self.all_zero = False
        return taken

    def __getattr__(self, name):
        return getattr(self._summer, name)


@dataclass
class ZeroFinding:
    shard: int
    start: int
    end: int
    inside: list       # names of the tensors whose bytes the run cuts into
    whole_file: bool = False

    def describe(self, shard_path: str) -> str:
        size = self.end - self.start
        if self.whole_file:
            return f"data file {shard_path} is zeros from first to last byte ({size} bytes)"
        return (f"shard {self.shard} bytes {self.start}-{self.end} ({size} bytes) are zeros whose edges fall at 4 KiB "
                f"alignment inside {', '.join(self.inside[:3])}" + (" ..." if len(self.inside) > 3 else "")
                + ", not on tensor boundaries")

    def describe_rows(self) -> str:
        return (f"shard {self.shard} bytes {self.start}-{self.end} ({self.end - self.start} bytes) inside "
                f"{', '.join(self.inside[:2])} are zeros that end on row boundaries: pruned rows or a lost page; the "
                "data cannot tell which")


def _edge_kind(position: int, tensors: list, offsets: list) -> tuple:
    """('boundary'|'row'|'block'|'data', name of the tensor the edge is inside or '')."""
    at = bisect.bisect_right(offsets, position) - 1
    if at < 0 or position == offsets[at]:
        return "boundary", ""
    offset, size, name, row_bytes = tensors[at]
    if position >= offset + size:
        return "boundary", ""
    if row_bytes and (position - offset) % row_bytes == 0:
        return "row", name
    return ("block" if position % PAGE == 0 else "data"), name


def judge(shard: int, shard_size: int, runs: list, tensors: list) -> list:
    """Suspicious runs of one shard as ZeroFindings. `tensors`: (offset, size, name, row_bytes) in offset order."""
    if shard_size and runs == [(0, shard_size)]:
        return [ZeroFinding(shard, 0, shard_size, [t[2] for t in tensors], whole_file=True)]
    tensors = [t for t in tensors if t[1]]
    offsets = [t[0] for t in tensors]
    findings = []
    for start, end in runs:
        kinds = [_edge_kind(start, tensors, offsets), _edge_kind(end, tensors, offsets)]
        if any(k == "data" for k, _ in kinds) or not any(k == "block" for k, _ in kinds):
            continue
        inside = list(dict.fromkeys(name for k, name in kinds if name))
        findings.append(ZeroFinding(shard, start, end, inside))
    return findings


def on_row_boundaries(shard: int, runs: list, tensors: list) -> list:
    """The runs `judge` accepts because an edge ends on a row boundary inside a tensor (and no edge is
    data-like): pruned or never-updated rows look like that, and so does a lost page whose edges happen
    to fall between rows. Accepted, but the data cannot tell which: the evidence names them."""
    tensors = [t for t in tensors if t[1]]
    offsets = [t[0] for t in tensors]
    named = []
    for start, end in runs:
        kinds = [_edge_kind(start, tensors, offsets), _edge_kind(end, tensors, offsets)]
        if any(k == "row" for k, _ in kinds) and all(k in ("row", "boundary") for k, _ in kinds):
            named.append(ZeroFinding(shard, start, end, list(dict.fromkeys(name for _, name in kinds if name))))
    return named
