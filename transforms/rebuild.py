"""Rebuild orphans across workers: small ones whole on one worker, big data files split into byte
ranges whose CRCs are computed on many workers and joined again by prefix (transforms/ranges.py)."""

import dataclasses
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.prefix_steps import AuditSettings, needs_splitting, plan_orphan, rebuild_in_one, record_outcome
from recovery.rebuild import RebuildPlan, checksum_range, finalize, portable, split_ranges
from recovery.records import Record
from recovery.tasks import OrphanTask

from .errors import failures_become_records
from .metrics import counter, distribution
from .ranges import PLANS, RANGES, ByteRange, Joined, SpreadRanges
from .registry import RegistryLayouts


class SplitRebuild(NamedTuple):
    """What finalizing a split orphan needs besides its ranges' CRCs, shipped once per orphan."""

    task: OrphanTask
    plan: RebuildPlan
    planning_seconds: float


def _record_timing(record: Record) -> Record:
    distribution("rebuild_ms").update(int(record.seconds * 1000))
    return record


class PlanRebuild(RegistryLayouts):
    """OrphanTask -> Record when done here; PLANS: (prefix, SplitRebuild); RANGES: ByteRange."""

    def __init__(self, settings: AuditSettings):
        super().__init__(settings)
        self.settings = settings

    @failures_become_records("rebuild")
    def process(self, task: OrphanTask):
        started = time.monotonic()
        fs, _ = storage.url_to_fs(task.root)
        plan = plan_orphan(fs, task, self.settings, self.registry)
        if isinstance(plan, Record):
            yield _record_timing(dataclasses.replace(plan, seconds=round(time.monotonic() - started, 3)))
            return
        if not needs_splitting(plan, self.settings):
            yield _record_timing(rebuild_in_one(fs, task, plan, self.settings, started, self.registry))
            return
        counter("split_orphans").inc()
        split = SplitRebuild(task, portable(plan), time.monotonic() - started)
        yield pvalue.TaggedOutput(PLANS, (task.display_prefix, split))
        for shard, start, end in split_ranges(plan, self.settings.split_bytes):
            yield pvalue.TaggedOutput(RANGES, ByteRange(task.display_prefix, shard, start, end))


def checksum(split: SplitRebuild, byte_range: ByteRange):
    fs, _ = storage.url_to_fs(split.task.root)
    return checksum_range(fs, split.plan, byte_range.shard, byte_range.start, byte_range.end)


class FinalizeRebuild(RegistryLayouts):
    """Joined(prefix, SplitRebuild, [RangeResult of RangeChecksums]) -> Record (refused for damage: with what a
    salvage would keep, from the ranges' checksums and the registry)."""

    def __init__(self, settings: AuditSettings):
        super().__init__(settings)
        self.settings = settings

    @failures_become_records("rebuild", subject=lambda self, joined: joined.plan.task)
    def process(self, joined: Joined):
        task, plan, planning_seconds = joined.plan
        failure = joined.failure()
        if failure:
            raise failure.as_exception()
        ranges = joined.values()
        outcome = finalize(plan, ranges)
        fs, _ = storage.url_to_fs(task.root)
        yield _record_timing(record_outcome(fs, task, plan, outcome, self.settings,
                                            planning_seconds + joined.seconds(), self.registry, ranges))


class RebuildOrphans(beam.PTransform):
    """OrphanTasks -> one Record each."""

    def __init__(self, settings: AuditSettings):
        super().__init__()
        self.settings = settings

    def expand(self, orphans):
        planned = (orphans
                   | "Spread orphans" >> beam.Reshuffle()
                   | "Plan or rebuild" >> beam.ParDo(PlanRebuild(self.settings)).with_outputs(PLANS, RANGES,
                                                                                              main="records"))
        joined = ({PLANS: planned[PLANS], RANGES: planned[RANGES]}
                  | "Checksum ranges" >> SpreadRanges(checksum, "checksumming", "ranges_checksummed")
                  | "Finalize split rebuilds" >> beam.ParDo(FinalizeRebuild(self.settings)))
        return (planned.records, joined) | "Rebuild records" >> beam.Flatten()
