"""Does anything tie a layout to the bytes of a shard that was cut short?

A rebuild accepts a layout only when it tiles every data file to its last byte; a shard cut short
cannot be checked so, and any bytes at all (another file, random noise named like a data file) have
finite float32 values at the offsets a layout gives. So a tensor a layout places in such a shard is
`placed` only when something in that very shard anchors the layout to its bytes:

- a tensor in it whose CRC verifies against a reference recorded before the damage (its bytes are
  that tensor's, at the offset the layout gives, so the offsets up to it are right); not a tensor of
  no bytes, nor of zero bytes only: those verify anywhere (every empty tensor has one CRC, and storage
  never written reads as zeros);
- a step counter in it (save_counter, global_step) whose value is the step in the checkpoint's name;
- a float tensor in it whose values correlate element by element with a healthy sibling's of the same
  run, as a few (or thousands of) steps of training leave them (plausibility.correlated_sibling);
- failing those, a layout the person chose (--template, --arch): their word that the bytes are that
  model's, as a rebuild takes a chosen template without judging its values; said so in the checks.

Otherwise its tensors are `unconfirmed`, kept only with --include-unconfirmed, and say why.
"""

from dataclasses import replace

from tfbundle import crc, step_of

from ..counters import placed_counters
from ..plausibility import COMPARED, correlated_sibling
from .references import sibling_layouts
from .verdicts import PLACED, PROVEN, UNCONFIRMED


def anchored_shards(ctx, placement, verdicts: list) -> dict:
    """shard -> what anchors the layout there, for every shard that has an anchor."""
    anchors = {shard: "the layout tiles it to its last byte" for shard in placement.exact_shards}
    for verdict in sorted((v for v in verdicts if v.state == PROVEN), key=lambda v: -(v.size or 0)):
        if verdict.spec.shard not in anchors and _says_something(verdict):   # the largest says it best
            anchors[verdict.spec.shard] = f"{verdict.spec.describe()} in it verifies against {verdict.reference}"
    step = step_of(ctx.prefix)
    unanchored = [p for p in placement.placed if p.spec.shard not in anchors] if step is not None else []
    paths = [ctx.shard_path(shard) for shard in range(ctx.expected_shards)]
    for counter, value in placed_counters(ctx.fs, unanchored, paths):
        if value == step:
            anchors.setdefault(counter.spec.shard, f"its {counter.spec.key} holds {step}, the step in the name")
    loose = [p for p in placement.placed if p.spec.shard not in anchors and p.spec.shard in placement.stopped]
    siblings = sibling_layouts(ctx) if loose else []
    for shard in sorted({p.spec.shard for p in loose}) if siblings else ():
        largest = sorted((p for p in loose if p.spec.shard == shard), key=lambda p: -p.size)[:COMPARED]
        found = next(filter(None, (correlated_sibling(ctx.fs, ctx.shard_path(shard), p, siblings)
                                   for p in largest)), "")
        if found:
            anchors[shard] = found
    chosen = f"--template {ctx.template}" if ctx.template else f"--arch {ctx.arch}" if ctx.arch else ""
    for shard in placement.stopped if chosen else ():
        anchors.setdefault(shard, f"nothing in it verifies, holds the step or correlates with a sibling, so the "
                                  f"layout rests on your choice ({chosen})")
    return anchors


def without_anchor(verdicts: list, anchors: dict, source: str) -> list:
    """Placed tensors of shards nothing anchors, made unconfirmed (why in words); the rest as they are."""
    out = []
    for verdict in verdicts:
        shard = verdict.spec.shard
        if verdict.state == PLACED and shard not in anchors:
            verdict = replace(verdict, state=UNCONFIRMED, why=(
                f"shard {shard} was cut short and nothing in it ties {source}'s layout to its bytes: no tensor in it "
                "with bytes other than zeros verifies against a reference CRC, no step counter in it holds the step "
                "in the name, no values in it correlate with a sibling's, and bytes of any other file would be placed "
                "the same way"))
        out.append(verdict)
    return out


ZERO_CHUNK = 1 << 20


def _says_something(verdict) -> bool:
    """Its bytes are not empty and not all zero: a CRC match then depends on where the layout put it."""
    if not verdict.size:
        return False
    chunk = bytes(min(verdict.size, ZERO_CHUNK))
    zeros, left = 0, verdict.size
    while left:
        zeros = crc.extend(zeros, chunk[:min(left, len(chunk))])
        left -= min(left, len(chunk))
    return verdict.crc != crc.mask(zeros)
