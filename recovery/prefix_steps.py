"""The steps of one prefix after classification, from task to record: rebuild an orphan (whole, or
planned for ranges), put the index where the run allows, check a healthy checkpoint when asked.
Every outcome becomes a new Record (a failure too, by recovery/failures.py's rule). The Beam layer
only moves these calls between workers.
"""

import dataclasses
import time
from dataclasses import asdict, dataclass

from tfbundle import index_filename

from . import storage
from .context import NotRebuildable, open_orphan
from .memory.nightly import Nightly
from .rebuild import (
    NO_SOURCE,
    RebuildOutcome,
    RebuildPlan,
    checksum_range,
    checksum_whole,
    finalize,
    no_source_hint,
    portable,
    prepare,
    split_ranges,
)
from .records import CORRUPT, REBUILT, STALE, UNRECOVERABLE, Record, inspect_command, promote_command, replace_command
from .registry import ResolvedRegistry
from .salvage import assess_salvage
from .salvage.scan import streamed
from .tasks import OrphanTask
from .vault import vault_for
from .verify import (
    Rehearsal,
    VerifyPlan,
    judge_rehearsal,
    plan_rehearsal,
    plan_verification,
    verification_problems,
    verify_range,
)
from .writeout import IndexAppeared, stage_index, write_in_place

DEFAULT_SPLIT_BYTES = 256 << 20


@dataclass(frozen=True)
class AuditSettings:
    """What every worker needs to know about the run: plain data, shipped with the DoFns."""

    report_dir: str
    in_place: bool = False
    split_bytes: int = DEFAULT_SPLIT_BYTES
    verify_data: bool = False
    rehearse: bool = False
    registry: ResolvedRegistry | None = None   # load with registry.load_resolved, once per worker
    allow_zeros: bool = False      # accept zero-filled blocks and data files (recovery/zeros.py)
    min_age: float = 0.0         # seconds: findings on younger files are deferred (the CLI's default is 10 min)
    now: float | None = None     # the time ages are measured at (epoch seconds); None: each worker's clock
    vault: str | None = None     # --vault: a source for rebuilds (recovery/sources/vault.py)
    nightly: "Nightly | None" = None   # what the run remembers and compares with (recovery/memory/)
    command_options: tuple = ()  # records.carried_options: what the commands a record offers must carry


def offer_salvage(fs, prefix: str, listing: list | None, record: Record, settings: AuditSettings,
                  registry: dict | None = None, already_read=None) -> Record:
    """A prefix refused for damage (cut short, zero-filled, a shard missing, bytes that contradict a
    reference): what `ckpt-rescue salvage` would keep of it, in its reason ("salvageable: 212 of 230
    tensors, 93% of bytes") and its `salvage` field with the command. Nothing is read where no damage is
    seen (recovery/salvage/plan.py: damaged_only); `already_read`: what the rebuild streamed (scan.Streamed).
    `prefix`: a filesystem path; `listing`: its directory's, or None to list it here."""
    found = assess_salvage(fs, prefix, listing, registry, _registry_file(settings), vault=_vault(settings),
                           streamed=already_read, damaged_only=True)
    record = dataclasses.replace(record, bytes_scanned=record.bytes_scanned + found.bytes_read)
    if not found.salvageable:
        return record
    return dataclasses.replace(record, reason=f"{record.reason}; {found.summary}", salvage=found.record_field())


def _registry_file(settings: AuditSettings) -> str:
    return getattr(settings.registry, "source", "") if settings.registry is not None else ""


def _vault(settings: AuditSettings):
    """The run's index vault (--vault), or None."""
    return vault_for(settings.vault) if settings.vault else None


def plan_orphan(fs, task: OrphanTask, settings: AuditSettings, registry: dict | None = None) -> "RebuildPlan | Record":
    """Choose and fit a layout (cheap reads only), or the record saying why nothing fits (and, refused for
    damage, what a salvage would keep).

    `registry`: name -> Layout, as registry.load_resolved(settings.registry) gives them."""
    try:
        ctx = open_orphan(fs, task.prefix, task.listing, registry, vault=_vault(settings))
    except NotRebuildable as exc:
        return offer_salvage(fs, task.prefix, task.listing, _not_rebuilt(task, str(exc)), settings, registry)
    planned = prepare(ctx, allow_zeros=settings.allow_zeros)
    if isinstance(planned, RebuildOutcome):
        record = _not_rebuilt(task, planned.reason, planned.refusals, evidence=_evidence(planned))
        return record if planned.reason == NO_SOURCE else offer_salvage(fs, task.prefix, task.listing, record, settings,
                                                                       registry)
    return planned


def record_outcome(fs, task: OrphanTask, plan: RebuildPlan, outcome: RebuildOutcome, settings: AuditSettings,
                   seconds: float, registry: dict | None = None, ranges: list = ()) -> Record:
    """Write the rebuilt index where this run may (staged by default) and say what was done; refused, what a
    salvage would keep (from the `ranges` just read: rebuild.RangeChecksums)."""
    if outcome.status != REBUILT:
        record = offer_salvage(fs, task.prefix, task.listing, _not_rebuilt(task, outcome.reason, outcome.refusals),
                               settings, registry, streamed(plan, list(ranges)))
    else:
        record = dataclasses.replace(_write(fs, task, plan, outcome, settings), source=outcome.source,
                                     checks=outcome.checks, refusals=[str(r) for r in outcome.refusals])
    return dataclasses.replace(record, evidence=_evidence(outcome),
                               bytes_scanned=outcome.bytes_scanned + record.bytes_scanned, seconds=round(seconds, 3))


def _evidence(outcome: RebuildOutcome) -> dict:
    return asdict(outcome.evidence) if outcome.evidence else {}


def _write(fs, task: OrphanTask, plan: RebuildPlan, outcome: RebuildOutcome, settings: AuditSettings) -> Record:
    if settings.in_place and not task.stage_only:
        try:
            sizes = dict(zip(plan.shard_paths, plan.shard_sizes))
            written = write_in_place(fs, task.prefix, outcome.index_bytes, sizes)
        except IndexAppeared as exc:
            return _index_appeared(fs, task, outcome, settings, str(exc))
        except OSError as exc:
            return task.record(UNRECOVERABLE, f"rebuilt from {outcome.source} but not written: {exc}",
                               command=inspect_command(task.display_prefix))
        return task.record(REBUILT, f"rebuilt from {outcome.source} and written in place",
                           index_path=storage.display(fs, written))
    staged = _stage(task, outcome, settings)
    if task.stage_only:
        what = "stale" if task.status_if_staged == STALE else "unreadable"
        reason = (f"{task.finding}; an index rebuilt from {outcome.source} is staged: check it, then replace the "
                  f"{what} one")
        return task.record(task.status_if_staged, reason, index_path=staged, staged=True,
                           command=replace_command(_report_dir(settings), task.display_prefix))
    return task.record(REBUILT, f"rebuilt from {outcome.source}; staged, not written beside the data (promote it "
                                "with the command, or re-run with --in-place)",
                       index_path=staged, staged=True,
                       command=promote_command(_report_dir(settings), task.display_prefix))


def _index_appeared(fs, task: OrphanTask, outcome: RebuildOutcome, settings: AuditSettings, detail: str) -> Record:
    """Another run (or the trainer itself) wrote the index first: fine if the bytes agree, a finding if not."""
    path = index_filename(task.prefix)
    try:
        same = storage.read_bytes(fs, path) == outcome.index_bytes
    except OSError:
        same = False
    if same:
        return task.record(REBUILT, f"rebuilt from {outcome.source}; {detail}", index_path=storage.display(fs, path))
    staged = _stage(task, outcome, settings)
    return task.record(UNRECOVERABLE, f"{detail}; ours (from {outcome.source}) is staged for comparison",
                       index_path=staged, staged=True, command=inspect_command(task.display_prefix))


def _report_dir(settings: AuditSettings) -> str:
    """The report directory as the user would type it (where `ckpt-rescue promote` finds the staged index)."""
    report_fs, report_path = storage.url_to_fs(settings.report_dir)
    return storage.display(report_fs, report_path)


def _stage(task: OrphanTask, outcome: RebuildOutcome, settings: AuditSettings) -> str:
    report_fs, report_path = storage.url_to_fs(settings.report_dir)
    return storage.display(report_fs, stage_index(report_fs, report_path, task.display_prefix, outcome.index_bytes))


def _not_rebuilt(task: OrphanTask, reason: str, refusals=(), **fields) -> Record:
    status = task.status_if_staged if task.stage_only else UNRECOVERABLE
    lead = f"{task.finding}; " if task.stage_only else ""
    if reason == NO_SOURCE:
        reason = f"{reason}; {no_source_hint(task.display_prefix, 'audit')}"
    return task.record(status, f"{lead}{reason}", command=inspect_command(task.display_prefix),
                       refusals=[str(r) for r in refusals], **fields)


@dataclass
class HealthyCheck:
    """What --verify-data and --rehearse will read of one healthy checkpoint, planned before any data is:
    small enough to ship once to the workers that read its byte ranges."""

    record: Record
    verify: VerifyPlan | None = None
    own_index: bytes = b""                                   # --rehearse: the index to reproduce
    rehearsal: "RebuildPlan | Rehearsal | None" = None       # a plan to read, or a verdict already

    @property
    def shard_sizes(self) -> list:
        plans = [p for p in (self.verify, self.rehearsal) if isinstance(p, (VerifyPlan, RebuildPlan))]
        return [size for p in plans for size in p.shard_sizes]


VERIFY, REHEARSE = "verify", "rehearse"


def plan_check(record: Record, settings: AuditSettings, registry: dict | None = None) -> HealthyCheck:
    """Read the index (and prepare the rehearsal's rebuild) of a healthy checkpoint: cheap reads only."""
    fs, prefix = storage.split_prefix(record.prefix)
    check = HealthyCheck(record)
    if settings.verify_data:
        check.verify = plan_verification(fs, prefix)
    if settings.rehearse:
        check.own_index, rehearsal = plan_rehearsal(fs, prefix, registry_layouts=registry)
        check.rehearsal = portable(rehearsal) if isinstance(rehearsal, RebuildPlan) else rehearsal
    return check


def check_ranges(check: HealthyCheck, split_bytes: int) -> list:
    """(part, shard, start, end) of every byte range the check reads, none longer than about split_bytes."""
    ranges = []
    if check.verify is not None:
        ranges += [(VERIFY, *r) for r in split_ranges(check.verify, split_bytes) if r[2] > r[1]]
    if isinstance(check.rehearsal, RebuildPlan):
        ranges += [(REHEARSE, *r) for r in split_ranges(check.rehearsal, split_bytes)]
    return ranges


def read_check_range(fs, check: HealthyCheck, part: str, shard: int, start: int, end: int):
    """VerifiedRange or RangeChecksums of one byte range."""
    if part == VERIFY:
        return verify_range(fs, check.verify, shard, start, end)
    return checksum_range(fs, check.rehearsal, shard, start, end)


def finish_check(check: HealthyCheck, verified: list, rehearsed: list, seconds: float) -> Record:
    """--verify-data: every tensor against its CRC (bit rot); --rehearse: could we rebuild it tomorrow?"""
    record = check.record
    if check.verify is not None:
        problems = verification_problems(check.verify, verified)
        scanned = record.bytes_scanned + sum(r.scanned for r in verified)
        if problems:
            record = dataclasses.replace(record, status=CORRUPT, bytes_scanned=scanned,
                                         reason=f"{len(problems)} problem(s) streaming the data: "
                                                + "; ".join(problems[:3]),
                                         command=inspect_command(record.prefix))
        else:
            record = dataclasses.replace(record, bytes_scanned=scanned, checks=(
                *record.checks, "every tensor's bytes match the CRC in its index (--verify-data)"))
    if check.rehearsal is not None:
        rehearsal = check.rehearsal
        if isinstance(rehearsal, RebuildPlan):
            rehearsal = judge_rehearsal(check.own_index, finalize(rehearsal, rehearsed))
        scanned = record.bytes_scanned + (rehearsal.outcome.bytes_scanned if rehearsal.outcome is not None else 0)
        record = dataclasses.replace(record, rehearsal=rehearsal.verdict, bytes_scanned=scanned, checks=(
            *record.checks, f"rehearsal: {rehearsal.verdict}: {rehearsal.detail}"))
    return dataclasses.replace(record, seconds=round(seconds, 3))


def check_whole(check: HealthyCheck, started: float) -> Record:
    """Read every range of every data file here: for checkpoints too small to spread."""
    fs, _ = storage.split_prefix(check.record.prefix)
    read = {VERIFY: [], REHEARSE: []}
    for part, shard, start, end in check_ranges(check, max(check.shard_sizes, default=0)):
        read[part].append(read_check_range(fs, check, part, shard, start, end))
    return finish_check(check, read[VERIFY], read[REHEARSE], time.monotonic() - started)


def needs_splitting(plan: "RebuildPlan | HealthyCheck", settings: AuditSettings) -> bool:
    return max(plan.shard_sizes, default=0) > settings.split_bytes


def rebuild_in_one(fs, task: OrphanTask, plan: RebuildPlan, settings: AuditSettings, started: float,
                   registry: dict | None = None) -> Record:
    ranges = checksum_whole(fs, plan)
    outcome = finalize(plan, ranges)
    return record_outcome(fs, task, plan, outcome, settings, time.monotonic() - started, registry, ranges)
