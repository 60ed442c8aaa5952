"""--verify-data and --rehearse on healthy checkpoints: small ones whole on one worker, one whose
largest data file exceeds --split-bytes read in byte ranges on many workers and joined by prefix."""

import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.prefix_steps import (
    REHEARSE,
    VERIFY,
    AuditSettings,
    HealthyCheck,
    check_ranges,
    check_whole,
    finish_check,
    needs_splitting,
    plan_check,
    read_check_range,
)
from recovery.records import Record

from .errors import failures_become_records
from .metrics import counter, distribution
from .ranges import PLANS, RANGES, ByteRange, Joined, SpreadRanges
from .registry import RegistryLayouts


class SplitCheck(NamedTuple):
    """A planned check of one big healthy checkpoint, shipped once to the workers reading its ranges."""

    check: HealthyCheck
    planning_seconds: float


def _record_timing(record: Record) -> Record:
    distribution("check_ms").update(int(record.seconds * 1000))
    return record


class PlanCheck(RegistryLayouts):
    """Healthy Record -> checked Record when small; PLANS: (prefix, SplitCheck); RANGES: ByteRange."""

    def __init__(self, settings: AuditSettings):
        super().__init__(settings)
        self.settings = settings

    @failures_become_records("verification")
    def process(self, record: Record):
        started = time.monotonic()
        check = plan_check(record, self.settings, self.registry)
        if not needs_splitting(check, self.settings):
            yield _record_timing(check_whole(check, started))
            return
        counter("split_checks").inc()
        yield pvalue.TaggedOutput(PLANS, (record.prefix, SplitCheck(check, time.monotonic() - started)))
        for part, shard, start, end in check_ranges(check, self.settings.split_bytes):
            yield pvalue.TaggedOutput(RANGES, ByteRange(record.prefix, shard, start, end, part))


def read_range(split: SplitCheck, byte_range: ByteRange):
    fs, _ = storage.split_prefix(split.check.record.prefix)
    return read_check_range(fs, split.check, byte_range.part, byte_range.shard, byte_range.start, byte_range.end)


class FinishCheck(beam.DoFn):
    """Joined(prefix, SplitCheck, [RangeResult]) -> Record."""

    @failures_become_records("verification", subject=lambda self, joined: joined.plan.check.record)
    def process(self, joined: Joined):
        check, planning_seconds = joined.plan
        failure = joined.failure()
        if failure:
            raise failure.as_exception()
        yield _record_timing(finish_check(check, joined.values(VERIFY), joined.values(REHEARSE),
                                          planning_seconds + joined.seconds()))


class CheckHealthy(beam.PTransform):
    """Healthy Records -> the same Records, verified and/or rehearsed."""

    def __init__(self, settings: AuditSettings):
        super().__init__()
        self.settings = settings

    def expand(self, records):
        planned = (records
                   | "Spread checks" >> beam.Reshuffle()
                   | "Plan or check" >> beam.ParDo(PlanCheck(self.settings)).with_outputs(PLANS, RANGES,
                                                                                          main="records"))
        joined = ({PLANS: planned[PLANS], RANGES: planned[RANGES]}
                  | "Read ranges" >> SpreadRanges(read_range, "reading", "ranges_checked")
                  | "Finish split checks" >> beam.ParDo(FinishCheck()))
        return (planned.records, joined) | "Checked records" >> beam.Flatten()
