"""Rebuild a lost index: choose a layout, fit it to the orphan's bytes, checksum, build, verify.

Three phases so a pipeline can spread one huge orphan over several workers:
  prepare(ctx)                       -> RebuildPlan (cheap reads) or an unrecoverable RebuildOutcome
                                        (fitting.py offers and fits layouts; agreement.py and
                                        counters.py cross-check them)
  checksum_range(fs, plan, shard, start, end) -> RangeChecksums (the heavy streaming part)
  finalize(plan, [RangeChecksums])   -> RebuildOutcome with the index bytes, or a refusal
                                        (final_checks.py: one function per kind of damage)
`rebuild(ctx)` runs all three in one process.
"""

import dataclasses
import shlex
from dataclasses import dataclass, field

from tfbundle import (
    DT_STRING,
    DT_VARIANT,
    BundleEntry,
    BundleHeader,
    FormatError,
    crc_mask,
    encode_slice_key,
    scan_spans,
    write_index,
)
from tfbundle.scan import DEFAULT_CHUNK
from tfbundle.tensors import checksummer

from . import storage, zeros
from .agreement import check_object_graph, cross_checked, first_disagreement
from .context import OrphanContext
from .counters import check_counter
from .evidence import MAX_MATCHED_KEYS, Evidence
from .final_checks import DATA_CHECKS, INDEX_CHECKS, Finishing, finishing, first_refusal
from .fitting import fit_candidates
from .layout import Layout, Refusal, reference_key
from .plausibility import EdgeSample, compare_with_siblings, samples_edges, unconfirmed_layout
from .records import REBUILT, UNRECOVERABLE


@dataclass
class RebuildPlan:
    prefix: str                      # filesystem path of the prefix
    display_prefix: str
    layout: Layout
    placed: list                     # fitting.PlacedTensor in data order (shard, offset)
    shard_paths: list
    shard_sizes: list
    checks: list = field(default_factory=list)        # checks passed while preparing, in words
    refusals: list = field(default_factory=list)      # sources tried before this one and why they failed
    allow_nonfinite: bool = False
    cannot_confirm: list = field(default_factory=list)  # what the data and the sources cannot tell, in words
    # (key, slice) -> [(size, masked crc, source)]: CRCs the agreeing sources hold for the same tensors
    references: dict = field(default_factory=dict)
    allow_zeros: bool = False
    allow_unchanged: bool = False   # accept trained tensors whose bytes equal another save's (other_saves.py)
    exact: bool = False   # its source answered Source.exact: the index of these very bytes (every CRC must match)
    rests_on: list = field(default_factory=list)   # its sources, when all are other checkpoints (plausibility.py)
    same_run: str = ""   # the sibling whose values showed it to be of the orphan's run (plausibility.py)


@dataclass
class RangeChecksums:
    shard: int
    start: int
    end: int
    pieces: list        # (tensor index in plan.placed, raw crc32c of its bytes within the range, length, nonfinite)
    error: str = ""     # an in-band checksum that failed, a short read
    zero_runs: list = field(default_factory=list)     # (start, end) zero runs, see zeros.ZeroScanner.runs
    zero_tensors: list = field(default_factory=list)  # indexes in plan.placed whose bytes in the range are all zero
    edges: dict = field(default_factory=dict)   # placed index -> (first bytes or None, last bytes or None), see
                                                # plausibility.EdgeSample: a tensor's start or end in this range


@dataclass
class RebuildOutcome:
    prefix: str                      # display prefix
    status: str                      # REBUILT or UNRECOVERABLE
    reason: str
    source: str = ""                 # the layout source used, e.g. "sibling ckpt-56"
    index_bytes: bytes | None = None
    checks: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    bytes_scanned: int = 0
    evidence: Evidence | None = None  # what confirmed the layout and data, what cannot be confirmed


def prepare(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False,
            allow_zeros: bool = False, allow_unchanged: bool = False) -> "RebuildPlan | RebuildOutcome":
    """Fit every source that applies and cross-check them; the first that fits gives the layout.

    `sources`: the `recovery.sources.Source`s to ask, in order; by default SOURCES (or, under
    --template/--arch, the chosen one and the checkpoint's own declarations). An exact source (a
    part index) ends the search. Otherwise every layout that fits must agree on keys, dtypes,
    shapes and order with the others, or nothing is rebuilt: the data holds sizes, not shapes, so
    two fitting sources that disagree cannot be told apart by it.
    """
    fits, refusals = fit_candidates(ctx, sources)
    if not fits:
        return unrecoverable(ctx.display_prefix, refusals)
    best = fits[0]
    plan = RebuildPlan(ctx.prefix, ctx.display_prefix, best.layout, best.placed, [d.path for d in ctx.data_files],
                       [d.size for d in ctx.data_files], best.checks, exact=best.source.exact(best.layout))
    partial = Evidence(confirmed=list(plan.checks), cannot_confirm=[])
    disagreement = first_disagreement(fits, ctx.display_prefix or ctx.prefix)
    if disagreement:
        return unrecoverable(ctx.display_prefix, refusals, disagreement, partial)
    cross_checked(plan, fits)
    checks = (lambda: check_object_graph(ctx, plan, [f.layout for f in fits]), lambda: check_counter(ctx, plan),
              lambda: compare_with_siblings(ctx, plan, fits) if plan.rests_on else None)
    for check in checks:
        reason = check()
        if reason:
            refusals.append(Refusal(plan.layout.source, reason))
            partial = _partial_evidence(plan, plan.checks)
            return unrecoverable(ctx.display_prefix, refusals, f"{plan.layout.source} fits, but {reason}", partial)
    for other in fits:
        for spec_key, (size, crc) in other.layout.reference_crcs.items():
            plan.references.setdefault(spec_key, []).append((size, crc, other.layout.source))
    for note in [*plan.layout.notes, *ctx.notes]:
        if note not in plan.cannot_confirm:
            plan.cannot_confirm.append(note)
    plan.refusals = refusals
    plan.allow_nonfinite = allow_nonfinite
    plan.allow_zeros = allow_zeros
    plan.allow_unchanged = allow_unchanged
    return plan


def _confirmations(checks: list) -> list:
    return [c for c in checks if not c.startswith("note:")]


NO_SOURCE = ("no source of truth found: no part index, no healthy sibling, no SavedModel or .meta graph, and no "
             "registered architecture")


def no_source_hint(display_prefix: str, command: str) -> str:
    """What a person can do when nothing describes the layout; each command offers only its own flags."""
    if command == "audit":
        return (f"to fix: `ckpt-rescue rebuild {shlex.quote(display_prefix)} --template HEALTHY_PREFIX` with a "
                "healthy checkpoint of the same model, or register the model once (`ckpt-rescue register NAME "
                "--from-checkpoint HEALTHY_PREFIX --registry FILE`) and re-run the audit with --registry FILE")
    return ("to fix: pass --template HEALTHY_PREFIX (a healthy checkpoint of the same model), or register the model "
            "once with `ckpt-rescue register NAME --from-checkpoint HEALTHY_PREFIX` and run this rebuild again")


def unrecoverable(display_prefix: str, refusals: list, reason: str = "", evidence: Evidence | None = None
                  ) -> RebuildOutcome:
    if not reason:
        if not refusals:
            reason = NO_SOURCE   # the fix depends on the command that was run: see no_source_hint()
        else:
            reason = "no source fits: " + " | ".join(str(r) for r in refusals[:4])
            if len(refusals) > 4:
                reason += f" | ... ({len(refusals) - 4} more)"
    return RebuildOutcome(display_prefix, UNRECOVERABLE, reason, refusals=refusals, evidence=evidence)


SPLIT_ALIGN = 64  # split points sit a multiple of this past a tensor's start, so no element is cut


def split_ranges(plan: RebuildPlan, max_range_bytes: int) -> list:
    """(shard, start, end) ranges of at most about `max_range_bytes`; never cutting a string or variant."""
    ranges = []
    for shard, size in enumerate(plan.shard_sizes):
        tensors = [p for p in plan.placed if p.spec.shard == shard]
        start = 0
        while size - start > max_range_bytes:
            target = start + max_range_bytes
            cut = _cut_point(tensors, target)
            if cut <= start:
                break
            ranges.append((shard, start, cut))
            start = cut
        ranges.append((shard, start, size))
    return ranges


def _cut_point(tensors: list, target: int) -> int:
    for placed in tensors:
        if placed.offset <= target < placed.offset + placed.size:
            if placed.spec.dtype in (DT_STRING, DT_VARIANT):
                return placed.offset + placed.size
            return placed.offset + (target - placed.offset) // SPLIT_ALIGN * SPLIT_ALIGN
    return target


def checksum_range(fs, plan: RebuildPlan, shard: int, start: int, end: int, chunk_size: int = DEFAULT_CHUNK,
                   on_bytes=None) -> RangeChecksums:
    """Stream one byte range of one shard, checksumming the part of every tensor inside it, and
    noting zero runs and all-zero tensors on the way (recovery/zeros.py says why)."""
    spans, indexes = [], []
    scanner = zeros.ZeroScanner(start, end)
    for i, placed in enumerate(plan.placed):
        if placed.spec.shard == shard and placed.offset < end and placed.offset + placed.size > start:
            summer = checksummer(placed.spec.dtype, placed.spec.stored_shape,
                                 min(end, placed.offset + placed.size) - max(start, placed.offset)
                                 if placed.spec.dtype not in (DT_STRING, DT_VARIANT) else None)
            summer = zeros.ZeroWatch(summer, scanner)
            if plan.rests_on and samples_edges(placed.spec):
                summer = EdgeSample(summer)
            spans.append((placed.offset, placed.size, summer))
            indexes.append(i)
    pieces, error = [], ""
    with storage.open_source(fs, plan.shard_paths[shard], plan.shard_sizes[shard]) as source:
        try:
            scan_spans(source, spans, chunk_size, start, end, on_bytes, scanner.feed)
        except FormatError as exc:
            error = f"shard {shard} bytes {start}-{end}: {exc}"
    for i, (offset, size, summer) in zip(indexes, spans):
        if not summer.done and not error:
            error = f"tensor {plan.placed[i].spec.describe()} ended early at byte {offset + summer.consumed}"
        length = min(end, offset + size) - max(start, offset)
        pieces.append((i, summer.crc, length, getattr(summer, "nonfinite", 0)))
    zero_tensors = [i for i, (_, _, summer) in zip(indexes, spans) if summer.all_zero]
    edges = {i: (summer.head if offset >= start else None, summer.tail if offset + size <= end else None)
             for i, (offset, size, summer) in zip(indexes, spans) if isinstance(summer, EdgeSample)}
    return RangeChecksums(shard, start, end, pieces, error, scanner.runs(), zero_tensors, edges)


def checksum_whole(fs, plan: RebuildPlan, on_bytes=None) -> list:
    """Every data file as one range, in this process."""
    return [checksum_range(fs, plan, shard, 0, size, on_bytes=on_bytes) for shard, size in enumerate(plan.shard_sizes)]


def portable(plan: RebuildPlan) -> RebuildPlan:
    """The plan as it travels to other workers: without the source's filesystem object (each worker
    opens its own from the URL it was given) and without what only prepare() reads (the source's
    object graph; its CRCs are in plan.references)."""
    layout = dataclasses.replace(plan.layout, origin=None, reference_graph=None, reference_crcs={})
    return dataclasses.replace(plan, layout=layout)


def build_entries(plan: RebuildPlan, crcs: list) -> dict:
    """Index entries exactly as BundleWriter + MergeBundles produce them for this placement."""
    entries = {}
    for placed, raw_crc in zip(plan.placed, crcs):
        spec = placed.spec
        entry = BundleEntry(spec.dtype, tuple(spec.stored_shape), spec.shard, placed.offset, placed.size,
                            crc_mask(raw_crc))
        if spec.slice is None:
            entries[spec.key] = entry
            continue
        entries[encode_slice_key(spec.key, spec.slice)] = entry
        full = entries.get(spec.key)
        if full is None:
            # MergeBundles gives the full entry the shard where the tensor was first seen.
            full = entries[spec.key] = BundleEntry(spec.dtype, tuple(spec.shape), spec.shard, slices=())
        full.slices = full.slices + (spec.slice,)
    return entries


def finalize(plan: RebuildPlan, ranges: list) -> RebuildOutcome:
    """Join range checksums, build the index, and refuse on the first final check that fails
    (final_checks.py: DATA_CHECKS on the streamed bytes, INDEX_CHECKS on the index built)."""
    done, checks = finishing(plan, ranges), list(plan.checks)
    refused = first_refusal(DATA_CHECKS, done, checks)
    if refused:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE, refused, plan.layout.source, checks=checks,
                              refusals=plan.refusals, bytes_scanned=_scanned(ranges),
                              evidence=_partial_evidence(plan, checks, done.cannot_confirm))
    done = built(done)
    refused = first_refusal(INDEX_CHECKS, done, checks)
    evidence = _evidence(plan, checks, done.matched, done.cannot_confirm)
    if refused:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE, refused, plan.layout.source, checks=checks,
                              refusals=plan.refusals, bytes_scanned=_scanned(ranges), evidence=evidence)
    return RebuildOutcome(plan.display_prefix, REBUILT, f"rebuilt from {plan.layout.source}", plan.layout.source,
                          done.index_bytes, checks, plan.refusals, _scanned(ranges), evidence)


def built(done: Finishing) -> Finishing:
    """`done` with the index built from its CRCs, and which tensors a source's own CRC confirms or contradicts."""
    entries = build_entries(done.plan, done.crcs)
    matched, mismatched = reference_matches(done.plan, done.crcs)
    return dataclasses.replace(done, entries=entries, matched=matched, mismatched=mismatched,
                               index_bytes=write_index(BundleHeader(num_shards=done.plan.layout.num_shards), entries))


def reference_matches(plan: RebuildPlan, crcs: list) -> tuple[list, list]:
    """Indexes of placed tensors whose CRC equals one a source holds for the same tensor, and of those
    whose CRC differs from every such reference."""
    matched, mismatched = [], []
    for i, (placed, raw) in enumerate(zip(plan.placed, crcs)):
        references = plan.references.get(reference_key(placed.spec))
        if not references:
            continue
        if any((size, crc) == (placed.size, crc_mask(raw)) for size, crc, _ in references):
            matched.append(i)
        else:
            mismatched.append(i)
    return matched, mismatched


def _evidence(plan: RebuildPlan, checks: list, matched: list, cannot_confirm: tuple = ()) -> Evidence:
    total = len(plan.placed)
    evidence = Evidence(confirmed=_confirmations(checks), cannot_confirm=[*plan.cannot_confirm, *cannot_confirm],
                        reference_matched=len(matched), reference_total=total,
                        matched_keys=[plan.placed[i].spec.key for i in matched[:MAX_MATCHED_KEYS]],
                        unconfirmed_layout=unconfirmed_layout(plan))
    by = sorted({source for i in matched for *_, source in plan.references.get(reference_key(plan.placed[i].spec), ())})
    if plan.layout.expected_fingerprint is not None and len(matched) == total:
        by = ["fingerprint.pb"]
    evidence.confirmed.append(evidence.summary() + (f" ({', '.join(by)})" if by else ""))
    if len(matched) < total:
        evidence.cannot_confirm.append(
            f"the bytes of {total - len(matched)} tensor(s) no reference CRC covers: their CRCs were computed from "
            "the bytes present, so they prove only that those bytes are well-formed (and finite), not that they "
            "are the ones TensorFlow saved")
    return evidence


def _partial_evidence(plan: RebuildPlan, checks: list, cannot_confirm: list = ()) -> Evidence:
    """What a refused rebuild had confirmed before the refusal, and what rests on other checkpoints alone."""
    return Evidence(confirmed=_confirmations(checks), cannot_confirm=[*plan.cannot_confirm, *cannot_confirm],
                    unconfirmed_layout=unconfirmed_layout(plan))


def _scanned(ranges: list) -> int:
    return sum(r.end - r.start for r in ranges)


def rebuild(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False, on_bytes=None,
            allow_zeros: bool = False, allow_unchanged: bool = False) -> RebuildOutcome:
    """All three phases in this process, one sequential pass per data file."""
    plan = prepare(ctx, sources, allow_nonfinite, allow_zeros, allow_unchanged)
    if isinstance(plan, RebuildOutcome):
        return plan
    return finalize(plan, checksum_whole(ctx.fs, plan, on_bytes))
