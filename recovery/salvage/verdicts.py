"""What salvage decides for each tensor: proven intact, placed, unconfirmed, or lost, and why.

- proven: its bytes' CRC equals a reference recorded before any damage (the checkpoint's own index,
  a part index, a sibling's CRC for a tensor that did not change, the old index of a stale prefix);
- placed: no reference covers it, but it lies wholly inside the data that arrived, under a layout
  a rebuild would accept, clear of zero-filled blocks, and its floats are finite;
- unconfirmed: its bytes are there but nothing anchors them (after a zero-filled block in a shard
  whose end did not arrive, in a shard cut short that nothing ties to the layout (anchors.py),
  Inf/NaN where a layout may be misplaced, a counter that contradicts the name); included only on
  request;
- lost: its bytes are gone or damaged (cut off, a missing shard, a CRC that differs from the index
  of these very bytes, an in-band checksum that fails, a zero-filled block no reference vouches for).
"""

from dataclasses import dataclass, replace

from tfbundle import DT_STRING, DT_VARIANT, dtype, numeric_size

from ..layout import TensorSpec, reference_key
from .scan import overlapping

PROVEN, PLACED, UNCONFIRMED, LOST = "proven", "placed", "unconfirmed", "lost"
STATES = (PROVEN, PLACED, UNCONFIRMED, LOST)


@dataclass(frozen=True)
class TensorVerdict:
    spec: TensorSpec             # key, dtype, shape, slice, and its shard in the damaged checkpoint
    state: str                   # one of STATES
    why: str                     # in words; for proven ones, the reference that verified
    offset: int | None = None    # where its bytes are in that shard; None when it could not be placed
    size: int | None = None      # bytes; None where unknown (a string whose bytes did not arrive)
    crc: int | None = None       # masked CRC of its bytes as read: the index entry salvage writes
    reference: str = ""          # for a proven one: where the CRC it verified against is recorded

    @property
    def nbytes(self) -> int:
        """Its size, or for a numeric tensor that could not be placed, what its shape needs; else 0."""
        if self.size is not None:
            return self.size
        if self.spec.dtype in (DT_STRING, DT_VARIANT):
            return 0
        return numeric_size(dtype(self.spec.dtype), self.spec.stored_shape)


def against_index(spec: TensorSpec, entry, read, findings: list, absent: str) -> TensorVerdict:
    """A tensor of a checkpoint whose own index survived: that index's CRC is the reference."""
    where = dict(offset=entry.offset, size=entry.size)
    if read is None:
        return TensorVerdict(spec, LOST, absent, **where)
    if read.crc == entry.crc32c:
        return TensorVerdict(spec, PROVEN, "its CRC in the index verifies", crc=read.crc, reference="its own index",
                             **where)
    if read.failed:
        return TensorVerdict(spec, LOST, f"{read.failed}: its bytes are damaged", **where)
    zeros = overlapping(findings, entry.offset, entry.size)
    because = (f" (bytes {zeros.start}-{zeros.end} of shard {spec.shard} are zero-filled: storage never written)"
               if zeros else "")
    return TensorVerdict(spec, LOST, f"its bytes do not match the CRC in the index{because}: damaged", **where)


def from_placement(placed, read, references: list, findings: list, after_zeros, doubt: str,
                   layout_source: str) -> TensorVerdict:
    """A tensor a layout placed inside the data that arrived, judged on its bytes and the references."""
    spec = placed.spec
    where = dict(offset=placed.offset, size=placed.size)
    if read.failed:
        return TensorVerdict(spec, LOST, f"{read.failed}: its bytes are damaged", **where)
    verified = [r for r in references if (r.size, r.crc) == (placed.size, read.crc)]
    if verified:
        return TensorVerdict(spec, PROVEN, f"its CRC equals the one {verified[0].source} holds", crc=read.crc,
                             reference=verified[0].source, **where)
    exact = [r for r in references if r.exact]
    if exact:
        return TensorVerdict(spec, LOST, f"its CRC differs from the one {exact[0].source} recorded for these very "
                                         "bytes: damaged after they were written", **where)
    zeros = overlapping(findings, placed.offset, placed.size)
    if zeros:
        return TensorVerdict(spec, LOST, f"bytes {zeros.start}-{zeros.end} of shard {spec.shard} inside it are "
                                         "zero-filled (storage never written) and no reference CRC covers it", **where)
    doubts = []
    if read.nonfinite:
        doubts.append(f"it holds {read.nonfinite} Inf/NaN value(s), which a misplaced layout also gives")
    if after_zeros is not None:
        doubts.append(f"it lies after zero-filled bytes {after_zeros.start}-{after_zeros.end} in a shard whose end did "
                      "not arrive, so nothing anchors its placement")
    if doubt:
        doubts.append(doubt)
    if doubts:
        return TensorVerdict(spec, UNCONFIRMED, "; ".join(doubts), crc=read.crc, **where)
    return TensorVerdict(spec, PLACED, f"placed by {layout_source} wholly inside the data that arrived; no reference "
                                       "CRC covers it", crc=read.crc, **where)


def unplaced(spec: TensorSpec, why: str, references: list) -> TensorVerdict:
    sizes = {r.size for r in references}
    return TensorVerdict(spec, LOST, why, size=sizes.pop() if len(sizes) == 1 else None)


def references_for(references: dict, spec: TensorSpec) -> list:
    return references.get(reference_key(spec), [])


def whole_variables_only(verdicts: list) -> list:
    """For object-based checkpoints: TensorFlow restores a sliced variable whole, from all its slices,
    so a kept slice of a variable with a lost one is lost too (its bytes are fine, but unusable)."""
    incomplete = {}
    for v in verdicts:
        if v.spec.slice is not None and v.state in (LOST, UNCONFIRMED) and (
                v.spec.key not in incomplete or v.state == LOST):
            incomplete[v.spec.key] = v
    out = []
    for v in verdicts:
        gone = incomplete.get(v.spec.key)
        if gone is not None and v.spec.slice is not None and v.state in (PROVEN, PLACED):
            v = replace(v, state=gone.state, why=f"intact, but another slice of {v.spec.key} is {gone.state} "
                                                 f"({gone.why}), and TensorFlow restores a variable only whole")
        out.append(v)
    return out
