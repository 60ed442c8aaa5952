"""What a rebuilt index is worth next to the prefix's own vaulted index, once every tensor's CRC is known.

The vault's own index of these very files (same sizes, same identity) is the lost index: every
tensor must verify against it, and the rebuilt bytes must equal it, or nothing is written. An own
index of an earlier save (same sizes, other or unknown identity) is a reference like a sibling's:
what verifies is confirmed, what differs is said. finalize() in recovery/rebuild.py asks here.
"""

import hashlib
from dataclasses import dataclass, field

from tfbundle import crc_mask

from ..layout import reference_key
from .entry import ORIGIN_REBUILT, SAME_FILES

MAX_NAMED = 3     # changed tensors named in a reason; the evidence lists every one


@dataclass(frozen=True)
class VaultedIndex:
    """The vaulted own index a layout came from, as far as finalize needs it (small: it travels with the plan)."""

    seen_on: str        # when it was first kept, for people
    sha256: str
    size: int
    origin: str         # entry.ORIGIN_SEEN_HEALTHY or ORIGIN_REBUILT
    relation: str       # entry.SAME_FILES or EARLIER_SAVE
    location: str       # the vaulted .index, as a URL or path a person can copy


@dataclass
class VaultVerdict:
    refusal: str = ""                                   # why nothing may be written; "" when all is well
    checks: list = field(default_factory=list)          # what the vaulted index confirmed
    cannot_confirm: list = field(default_factory=list)  # what differs from it, one line per tensor when refused


def judge_against_vault(plan, crcs: list, index_bytes: bytes) -> VaultVerdict:
    """Compare the rebuilt index (`crcs`: raw CRC32C per placed tensor) with the vaulted own index the
    plan's layout came from; an empty verdict for any other layout."""
    vaulted = getattr(plan.layout, "vaulted", None)
    if vaulted is None:
        return VaultVerdict()
    identical = hashlib.sha256(index_bytes).hexdigest() == vaulted.sha256
    if vaulted.origin == ORIGIN_REBUILT:
        return _against_our_own(vaulted, identical)
    total = len(plan.placed)
    covered, changed = _compare(plan, crcs)
    exact = vaulted.relation == SAME_FILES
    then = f"the index as it was on {vaulted.seen_on}" if exact else \
        f"the index this prefix had on {vaulted.seen_on} (an earlier save with the same data file sizes)"
    if not changed and identical:
        return VaultVerdict(checks=[f"{total} of {total} tensors confirmed by {then}: the rebuilt index is "
                                    f"byte-identical to it (sha256 {vaulted.sha256[:16]}…, {vaulted.size} bytes)"])
    if not changed and (covered == total or exact):
        line = (f"every tensor's CRC verifies against {then}, but the rebuilt index's bytes differ from it: "
                f"ckpt-rescue cannot reproduce it exactly; the vaulted copy is {vaulted.location}")
        return VaultVerdict(refusal=line) if exact else VaultVerdict(cannot_confirm=[line])
    if not exact:
        differ = (f"; {len(changed)} tensor(s) differ from it (their bytes are new since that save): {_named(changed)}"
                  if changed else "")
        return VaultVerdict(checks=[f"{covered - len(changed)} of {total} tensors confirmed by {then}"],
                            cannot_confirm=[f"the index this prefix had on {vaulted.seen_on} is of an earlier save"
                                            + differ])
    lines = [f"changed after the index of {vaulted.seen_on} was vaulted: {_where(p)}: CRC {expected:#010x} then, "
             f"{crc_mask(raw):#010x} now" for p, raw, expected in changed]
    return VaultVerdict(
        refusal=(f"{len(changed)} of {total} tensor(s) do not match the index as it was on {vaulted.seen_on}, although "
                 f"the data files have the sizes and the store's identity it was vaulted with: the data changed after "
                 f"the index of {vaulted.seen_on} was vaulted (damaged in place): {_named(changed)}"),
        cannot_confirm=lines)


def _compare(plan, crcs: list) -> tuple[int, list]:
    """(tensors the vaulted index holds a CRC for, [(placed tensor, raw crc, vaulted masked crc)] of those
    whose bytes differ from it)."""
    covered, changed = 0, []
    for placed, raw in zip(plan.placed, crcs):
        for size, crc, source in plan.references.get(reference_key(placed.spec), ()):
            if source != plan.layout.source:
                continue
            covered += 1
            if (size, crc) != (placed.size, crc_mask(raw)):
                changed.append((placed, raw, crc))
    return covered, changed


def _where(placed) -> str:
    return (f"{placed.spec.describe()} (shard {placed.spec.shard}, bytes {placed.offset}-"
            f"{placed.offset + placed.size})")


def _named(changed: list) -> str:
    shown = "; ".join(_where(p) for p, _, _ in changed[:MAX_NAMED])
    return shown + (f"; and {len(changed) - MAX_NAMED} more (all in the evidence)" if len(changed) > MAX_NAMED else "")


def _against_our_own(vaulted: VaultedIndex, identical: bool) -> VaultVerdict:
    """An index ckpt-rescue rebuilt earlier: its CRCs came from the bytes then present, so it is no evidence."""
    said = f"the index ckpt-rescue rebuilt for this prefix on {vaulted.seen_on}"
    if identical:
        return VaultVerdict(checks=[f"identical to {said} (not independent evidence: its CRCs were computed from the "
                                    "bytes then present)"])
    return VaultVerdict(cannot_confirm=[f"differs from {said} ({vaulted.location}): the data, or what the sources "
                                        "say, changed since"])
