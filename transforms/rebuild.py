"""Rebuild orphans across workers: small ones whole on one worker, big data files split into byte
ranges whose CRCs are computed on many workers and joined again by prefix."""

import time

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.audit import AuditSettings, failure_record, needs_splitting, plan_orphan, rebuild_in_one, record_outcome
from recovery.rebuild import checksum_range, finalize, split_ranges
from recovery.records import Record

from .metrics import counter, distribution

PLANS, RANGES = "plans", "ranges"


def _record_timing(record: Record) -> Record:
    counter("bytes_scanned").inc(record.bytes_scanned)
    distribution("rebuild_ms").update(int(record.seconds * 1000))
    return record


class PlanRebuild(beam.DoFn):
    """OrphanTask -> Record when done here; PLANS: (prefix, (task, plan)), RANGES: (prefix, (task, plan, range))."""

    def __init__(self, settings: AuditSettings):
        self.settings = settings

    def process(self, task):
        started = time.monotonic()
        try:
            fs, _ = storage.url_to_fs(task.root)
            plan = plan_orphan(fs, task, self.settings)
            if isinstance(plan, Record):
                plan.seconds = round(time.monotonic() - started, 3)
                yield _record_timing(plan)
                return
            if not needs_splitting(plan, self.settings):
                yield _record_timing(rebuild_in_one(fs, task, plan, self.settings, started))
                return
            ranges = split_ranges(plan, self.settings.split_bytes)
        except Exception as exc:  # noqa: BLE001 - becomes this orphan's record
            yield failure_record(task, "rebuild", exc)
            return
        counter("split_orphans").inc()
        yield pvalue.TaggedOutput(PLANS, (task.display_prefix, (task, plan, time.monotonic() - started)))
        for byte_range in ranges:
            yield pvalue.TaggedOutput(RANGES, (task.display_prefix, (task, plan, byte_range)))


class ChecksumRange(beam.DoFn):
    """(prefix, (task, plan, (shard, start, end))) -> (prefix, (RangeChecksums | error text
    | StorageUnavailable, seconds))."""

    def process(self, element):
        prefix, (task, plan, (shard, start, end)) = element
        started = time.monotonic()
        try:
            fs, _ = storage.url_to_fs(task.root)
            result = checksum_range(fs, plan, shard, start, end)
        except Exception as exc:  # noqa: BLE001 - reported when the ranges are joined
            result = f"checksumming shard {shard} bytes {start}-{end} failed: {type(exc).__name__}: {exc}"
            if storage.is_transient(exc):
                result = storage.StorageUnavailable(result)   # joined as `error`, not a verdict
        counter("ranges_checksummed").inc()
        yield prefix, (result, time.monotonic() - started)


class FinalizeRebuild(beam.DoFn):
    """(prefix, {plans: [(task, plan, seconds)], ranges: [(RangeChecksums, seconds)]}) -> Record."""

    def __init__(self, settings: AuditSettings):
        self.settings = settings

    def process(self, element):
        _, joined = element
        (task, plan, planning_seconds), = joined[PLANS]
        try:
            unavailable = [r for r, _ in joined[RANGES] if isinstance(r, storage.StorageUnavailable)]
            if unavailable:
                raise unavailable[0]
            failed = [r for r, _ in joined[RANGES] if isinstance(r, str)]
            if failed:
                raise RuntimeError(failed[0])
            outcome = finalize(plan, [r for r, _ in joined[RANGES]])
            seconds = planning_seconds + sum(s for _, s in joined[RANGES])
            fs, _ = storage.url_to_fs(task.root)
            record = record_outcome(fs, task, plan, outcome, self.settings, seconds)
        except Exception as exc:  # noqa: BLE001
            record = failure_record(task, "rebuild", exc)
        yield _record_timing(record)


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
        checksummed = (planned[RANGES]
                       | "Spread ranges" >> beam.Reshuffle()
                       | "Checksum ranges" >> beam.ParDo(ChecksumRange()))
        joined = ({PLANS: planned[PLANS], RANGES: checksummed}
                  | "Join ranges by prefix" >> beam.CoGroupByKey()
                  | "Finalize split rebuilds" >> beam.ParDo(FinalizeRebuild(self.settings)))
        return (planned.records, joined) | "Rebuild records" >> beam.Flatten()
