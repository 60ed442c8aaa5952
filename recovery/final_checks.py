"""The final checks of a rebuild: on the bytes streamed (DATA_CHECKS) and on the index built from them
(INDEX_CHECKS). Each is one small function that looks for one kind of damage and returns the reason
to refuse, or None after adding what it confirmed to `checks`; `rebuild.finalize` runs them in order
and the first refusal wins. A new damage check is one function here, in its tuple, and one test
(tests/recovery/test_final_checks.py: the damaged input it must catch, the legitimate one it must not).

They see the plan (rebuild.RebuildPlan) through `Finishing` only; checks of the layouts themselves,
before any data is read, are in agreement.py and counters.py.
"""

import shlex
from dataclasses import dataclass, field

from tfbundle import DT_STRING, DT_VARIANT, crc_combine, dtype, read_index

from . import zeros
from .fingerprint import fingerprint64
from .layout import TensorSpec, reference_key
from .other_saves import compare_with_other_saves, describe
from .plausibility import judge_edges, layout_only
from .vault.judgement import judge_against_vault


@dataclass
class Finishing:
    """One rebuild at its end: the plan, its ranges' RangeChecksums, and per placed tensor the raw CRC
    of its bytes and its Inf/NaN count; once the index is built (for INDEX_CHECKS), its bytes and
    entries, and which placed tensors a source's own CRC confirms or contradicts."""

    plan: object                 # rebuild.RebuildPlan
    ranges: list
    crcs: list                   # raw CRC32C of each placed tensor's bytes, joined across ranges
    nonfinite: list              # "key (n Inf/NaN)" of each tensor that holds any
    unread: str = ""             # the first tensor with bytes no range covered (then `crcs` is incomplete)
    edges: dict = field(default_factory=dict)   # placed index -> (first bytes, last bytes) of sampled float tensors
    index_bytes: bytes = b""
    entries: dict = field(default_factory=dict)
    matched: list = field(default_factory=list)       # indexes into plan.placed
    mismatched: list = field(default_factory=list)
    cannot_confirm: list = field(default_factory=list)   # what a check found the data cannot confirm (evidence)


def finishing(plan, ranges: list) -> Finishing:
    """The ranges' pieces of each placed tensor joined into its CRC, in file order."""
    pieces: dict[int, list] = {}
    heads, tails = {}, {}
    for rng in sorted(ranges, key=lambda r: (r.shard, r.start)):
        for i, raw, length, nonfinite in rng.pieces:
            pieces.setdefault(i, []).append((raw, length, nonfinite))
        for i, (head, tail) in rng.edges.items():
            heads.update({i: head} if head is not None else {})
            tails.update({i: tail} if tail is not None else {})
    edges = {i: (heads[i], tails[i]) for i in heads if i in tails}
    crcs, nonfinite = [], []
    for i, placed in enumerate(plan.placed):
        parts = pieces.get(i)
        if parts is None:
            if placed.size:
                return Finishing(plan, ranges, crcs, nonfinite, unread=placed.spec.describe(), edges=edges)
            parts = [(0, 0, 0)]
        raw = parts[0][0]
        for more, length, _ in parts[1:]:
            raw = crc_combine(raw, more, length)
        crcs.append(raw)
        bad = sum(p[2] for p in parts)
        if bad:
            nonfinite.append(f"{placed.spec.key} ({bad} Inf/NaN)")
    return Finishing(plan, ranges, crcs, nonfinite, edges=edges)


def in_band_checksums(done: Finishing, checks: list) -> str | None:
    """String and variant tensors carry their own checksums: one that fails where the layout puts the
    tensor (or a range that ended early) means the layout is misplaced or the data damaged."""
    errors = [r.error for r in done.ranges if r.error]
    if errors:
        return (f"{done.plan.layout.source} placed a string/variant tensor where its in-band checksum fails: "
                f"{errors[0]}")
    strings = sum(1 for p in done.plan.placed if p.spec.dtype in (DT_STRING, DT_VARIANT))
    if strings:
        checks.append(f"in-band checksums of {strings} string/variant tensor(s) verify at their offsets")
    return None


def every_tensor_read(done: Finishing, checks: list) -> str | None:
    """Every tensor with bytes was covered by the ranges read (a range lost between workers is not silence)."""
    return f"no checksum for {done.unread}" if done.unread else None


def plausible_values(done: Finishing, checks: list) -> str | None:
    """A layout that rests on other checkpoints alone, against what the data shows at each float tensor's
    edges (plausibility.judge_edges): an integer tensor read as float, a boundary that splits one
    distribution (named only, where a sibling's values showed it to be of the same run). Only a source
    that declares the shapes can settle those."""
    plan = done.plan
    if not plan.rests_on:
        return None
    integers, boundaries = judge_edges(plan, done.edges, set(layout_only(plan)))
    named = boundaries if plan.same_run else []
    done.cannot_confirm += [f"{found}; {plan.same_run}'s values show it to be of the same run, so this is named, "
                            "not refused" for found in named[:3]]
    findings = integers + [found for found in boundaries if found not in named]
    if not findings:
        checks.append(f"the values at the edges of {len(done.edges)} float tensor(s) look like what "
                      f"{plan.layout.source} says they are (no integers read as floats"
                      f"{'' if named else ', no boundary inside one run of values'})")
        return None
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    return (f"{plan.layout.source} fits the sizes, but the data does not hold what it says: {'; '.join(findings[:3])}"
            f"{more}. The layout rests on {' and '.join(plan.rests_on)} alone (another architecture under the same "
            "keys?): rebuild from a source that declares the shapes (--registry FILE --arch NAME, the run's "
            "SavedModel or .meta)")


def finite_floats(done: Finishing, checks: list) -> str | None:
    """Inf/NaN where a float tensor is expected: what a misplaced layout reads (unless the run diverged)."""
    if done.nonfinite and not done.plan.allow_nonfinite:
        return (f"{done.plan.layout.source} fits the sizes but reads non-finite floats in {len(done.nonfinite)} "
                f"tensor(s): {', '.join(done.nonfinite[:3])}; a misplaced layout looks like this. If the run really "
                "diverged, rebuild with --allow-nonfinite")
    checks.append("every float tensor is finite" if not done.nonfinite
                  else f"non-finite floats allowed: {done.nonfinite[:3]}")
    return None


def no_zero_fill(done: Finishing, checks: list) -> str | None:
    """Space allocated but never written reads as zeros and keeps the file's size (zeros.py says which
    zero runs look like that); whole tensors of zeros are legitimate and counted."""
    plan = done.plan
    partial = {i for r in done.ranges for i in {p[0] for p in r.pieces} - set(r.zero_tensors)}
    whole = [p.spec.describe() for i, p in enumerate(plan.placed) if p.size and i not in partial]
    findings, on_rows = [], []
    for shard, size in enumerate(plan.shard_sizes):
        runs = zeros.combine_runs([r.zero_runs for r in done.ranges if r.shard == shard], size)
        tensors = [(p.offset, p.size, p.spec.describe(), _row_bytes(p.spec)) for p in plan.placed
                   if p.spec.shard == shard]
        findings += zeros.judge(shard, size, runs, tensors)
        on_rows += zeros.on_row_boundaries(shard, runs, tensors)
    done.cannot_confirm += [run.describe_rows() for run in on_rows[:3]]
    if len(on_rows) > 3:
        done.cannot_confirm.append(f"{len(on_rows) - 3} more zero run(s) that end on row boundaries: pruned rows or "
                                   "lost pages")
    if whole:
        checks.append(f"{len(whole)} tensor(s) are entirely zero: {', '.join(whole[:8])}"
                      + (f" and {len(whole) - 8} more" if len(whole) > 8 else "")
                      + " (legitimate: initial biases, optimizer slots before the first step)")
    if not findings:
        checks.append("no zero-filled block inside a tensor, no data file of zeros")
        return None
    described = [f.describe(plan.shard_paths[f.shard]) for f in findings]
    if plan.allow_zeros:
        checks.append(f"zeros allowed (--allow-zeros): {'; '.join(described[:3])}")
        return None
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    return (f"{plan.layout.source} fits the sizes, but {'; '.join(described[:3])}{more}: the signature of space "
            "allocated but never written (a copy or save that did not finish). Restore the data from a good copy; "
            "if these zeros are real, rebuild with --allow-zeros")


def _row_bytes(spec: TensorSpec) -> int:
    """Bytes of one row (shape[1:]) of a rank >= 2 numeric tensor; 0 when rows do not apply."""
    shape = tuple(spec.stored_shape)
    if len(shape) < 2 or spec.dtype in (DT_STRING, DT_VARIANT):
        return 0
    elements = 1
    for dim in shape[1:]:
        elements *= dim
    return elements * (dtype(spec.dtype).itemsize or 0)


DATA_CHECKS = (in_band_checksums, every_tensor_read, plausible_values, finite_floats, no_zero_fill)


def reads_back(done: Finishing, checks: list) -> str | None:
    """The index bytes parse back into exactly the entries they were built from."""
    reread = read_index(done.index_bytes)
    if {k: e.encode() for k, e in reread.entries.items()} != {
            (k.encode() if isinstance(k, str) else k): e.encode() for k, e in done.entries.items()}:
        return "the built index does not read back as written"
    whole = sum(1 for e in reread.entries.values() if e.slices)     # a partitioned tensor's entry: no bytes of its own
    parts = f" ({len(reread.entries) - whole} stored tensors, {whole} partitioned tensor(s))" if whole else ""
    checks.append(f"index reads back: {len(reread.entries)} entries besides the header{parts}, "
                  f"{len(done.index_bytes)} bytes")
    return None


def vault_agreement(done: Finishing, checks: list) -> str | None:
    """The prefix's own vaulted index, when the layout came from it (vault/judgement.py): the lost index
    itself must be reproduced exactly and verify everywhere; an earlier save's confirms what is unchanged."""
    verdict = judge_against_vault(done.plan, done.crcs, done.index_bytes)
    checks += verdict.checks
    done.cannot_confirm += verdict.cannot_confirm
    return verdict.refusal or None


def exact_source_crcs(done: Finishing, checks: list) -> str | None:
    """An exact source (Source.exact: the index of these very bytes, e.g. a part index) holds every
    tensor's CRC: one the data does not match is damage after the write, never a layout question."""
    plan = done.plan
    if not plan.exact or not done.mismatched:
        return None
    placed = plan.placed[done.mismatched[0]]
    return (f"{len(done.mismatched)} tensor(s) do not match the CRC {plan.layout.source} recorded for these very "
            f"bytes, first {placed.spec.describe()} at byte {placed.offset} of shard {placed.spec.shard}: the data "
            "was damaged after it was written")


def fingerprint_matches(done: Finishing, checks: list) -> str | None:
    """A SavedModel's fingerprint.pb hashes the whole true index: equal, and every tensor is confirmed."""
    expected = done.plan.layout.expected_fingerprint
    if expected is None:
        return None
    actual = fingerprint64(done.index_bytes)
    if actual != expected:
        return (f"fingerprint.pb says the true index hashes to {expected:#018x} but the rebuilt one hashes to "
                f"{actual:#018x}")
    checks.append(f"Fingerprint64 equals fingerprint.pb's checkpoint_hash ({actual:#018x}): exact, so every "
                  "tensor's CRC (the object graph's too) is the one TensorFlow wrote")
    done.matched = list(range(len(done.plan.placed)))
    return None


def other_saves_bytes(done: Finishing, checks: list) -> str | None:
    """A CRC equal to another save's proves the bytes are that save's (other_saves.py): trained tensors
    equal to one save while the rest changed, or a whole shard equal to one, are refused, never counted
    as confirmed; tensors only one other save holds are confirmed with that said."""
    plan = done.plan
    if plan.layout.expected_fingerprint is not None and len(done.matched) == len(plan.placed):
        return None     # fingerprint.pb proved the whole index: these are the bytes TensorFlow wrote
    found = compare_with_other_saves(plan, done.crcs)
    flagged = found.flagged(plan)
    done.matched = [i for i in done.matched if i not in flagged]
    single = [i for i in found.single if i in set(done.matched)]
    if single:
        saves = sorted({s for i in single for *_, s in plan.references[reference_key(plan.placed[i].spec)]})
        done.cannot_confirm.append(f"{len(single)} tensor(s) have the CRC the only other save that holds them "
                                   f"holds ({', '.join(saves)}): unchanged since that save, or that save's bytes; "
                                   "no third save tells which")
    if not found.found:
        return None
    what = describe(plan, found)
    if plan.allow_unchanged:
        checks.append(f"allowed (--allow-unchanged-tensors): {what}")
        done.cannot_confirm.append(f"the bytes of {len(flagged)} tensor(s) equal another save's (accepted with "
                                   "--allow-unchanged-tensors): that save's bytes, not confirmed as this one's")
        return None
    return (f"{what}: those bytes are another save's, not this one's (a shard replaced by another step's: a sync "
            "tool, a partial copy). Restore the data from a good copy; if these tensors really did not change "
            f"between the saves, `ckpt-rescue rebuild {shlex.quote(plan.display_prefix)} --allow-unchanged-tensors`")


INDEX_CHECKS = (reads_back, vault_agreement, exact_source_crcs, fingerprint_matches, other_saves_bytes)


def first_refusal(checks_to_run: tuple, done: Finishing, checks: list) -> str | None:
    """Run the checks in order; the first refusal stops them."""
    for check in checks_to_run:
        refused = check(done, checks)
        if refused:
            return refused
    return None
