"""Count records as they pass (Beam metrics, progress in the log) and write the report files with
no worker holding more than a bounded number of records.

Workers write the record lines to sorted part files (at most PART_LINES per part); combiners build
the counts, the per-run aggregates, the causes (with a bounded sample each) and the largest
rebuilds; one last step merges the parts into records.jsonl, failures.csv and promote.sh line by
line, renders report.html from the aggregates and writes summary.json. The parts are written with
fsspec (recovery.storage) rather than Beam's file sinks: Beam's own gs:// and s3:// filesystems take
their credentials and endpoints elsewhere and do not know memory://.
"""

import logging
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from recovery import report, storage

from .metrics import counter

PROGRESS_EVERY_SECONDS = 30
_LOG = logging.getLogger("ckpt_rescue.audit")


class Part(NamedTuple):
    """One part file written: which output it belongs to (recovery.report.RECORDS, ...) and its path."""

    output: str
    path: str


for _element_type in (Part, report.StateFileClaim, report.CheckpointState):
    beam.coders.registry.register_coder(_element_type, beam.coders.RowCoder)   # deterministic, compact


class Tally(beam.DoFn):
    """Per-status counters, and a progress line in the log every PROGRESS_EVERY_SECONDS per worker."""

    def setup(self):
        self._seen = 0
        self._last_log = time.monotonic()

    def process(self, record):
        counter(f"status_{record.status}").inc()
        counter(f"kind_{record.kind}").inc()
        counter("records").inc()
        self._seen += 1
        now = time.monotonic()
        if now - self._last_log >= PROGRESS_EVERY_SECONDS:
            self._last_log = now
            _LOG.info("progress: this worker has audited %d prefixes so far (latest: %s, %s)",
                      self._seen, record.prefix, record.status)
        yield record


class WriteParts(beam.DoFn):
    """Record -> lines of records.jsonl, failures.csv and promote.sh, written as sorted part files of
    at most PART_LINES lines; yields a Part for each part written."""

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def setup(self):
        self._fs, self._path = storage.url_to_fs(self.parts_dir)
        if storage.is_local(self._fs):
            self._fs.makedirs(self._path, exist_ok=True)

    def start_bundle(self):
        self._lines = {}

    def process(self, record):
        for output, line in report.lines_for(record):
            lines = self._lines.setdefault(output, [])
            lines.append(line)
            if len(lines) >= report.PART_LINES:
                yield self._flush(output)

    def finish_bundle(self):
        for output in list(self._lines):
            if self._lines[output]:
                yield WindowedValue(self._flush(output), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self, output) -> Part:
        lines, self._lines[output] = self._lines[output], []
        return Part(output, report.write_part(self._fs, self._path, output, lines))


class _Fold(beam.CombineFn):
    """A CombineFn over one of recovery.report's accumulators (new, add, merge)."""

    def __init__(self, new, add, merge):
        self._new, self._add, self._merge = new, add, merge

    def create_accumulator(self):
        return self._new()

    def add_input(self, accumulator, element):
        return self._add(accumulator, element)

    def merge_accumulators(self, accumulators):
        return self._merge(list(accumulators))

    def extract_output(self, accumulator):
        return accumulator


class ReadClaimedStates(beam.DoFn):
    """A records Part -> (prefix, CheckpointState) for its checkpoints that a state file names."""

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def setup(self):
        self._fs, _ = storage.url_to_fs(self.parts_dir)

    def process(self, part: Part, claimed: list):
        if claimed:       # no state file names a checkpoint: no part needs reading back
            yield from report.claimed_states(self._fs, part.path, set(claimed))


TOTALS, RUN, CAUSE, REBUILT = "totals", "run", "cause", "rebuilt"   # kinds of aggregate
_FOLDS = {
    TOTALS: _Fold(report.totals_new, report.totals_add, report.totals_merge),
    RUN: _Fold(report.run_new, report.run_add, report.run_merge),
    CAUSE: _Fold(report.cause_new, report.cause_add, report.cause_merge),
    REBUILT: beam.combiners.TopCombineFn(report.HTML_REBUILT, key=report.rebuilt_rank),
}


def _aggregate_inputs(record) -> list:
    """(key, (kind, input)) for every aggregate the record counts in; the key's first item is the kind."""
    out = [((TOTALS,), (TOTALS, record)), ((RUN, *report.run_key(record)), (RUN, record))]
    if report.needs_a_person(record):
        out.append(((CAUSE, report.cause_of(record)), (CAUSE, record)))
    if record.status == report.REBUILT:
        out.append(((REBUILT,), (REBUILT, report.shown(record))))
    return out


class _Aggregate(beam.CombineFn):
    """The report's aggregates in one combiner, each key's by the CombineFn of its kind (_FOLDS), so one
    combine per stage of records counts them all. Values are (kind, input); with `merging`, inputs
    are accumulators already (those of the stages, and latest_checkpoint()'s per run), and the output
    is the kind's result."""

    def __init__(self, merging: bool = False):
        self.merging = merging

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, element):
        kind, value = element
        fold = _FOLDS[kind]
        inner = fold.create_accumulator() if accumulator is None else accumulator[1]
        return kind, fold.merge_accumulators([inner, value]) if self.merging else fold.add_input(inner, value)

    def merge_accumulators(self, accumulators):
        found = [acc for acc in accumulators if acc is not None]
        if not found:
            return None
        kind = found[0][0]
        return kind, _FOLDS[kind].merge_accumulators([acc[1] for acc in found])

    def extract_output(self, accumulator):
        if accumulator is None or not self.merging:
            return accumulator
        kind, inner = accumulator
        return _FOLDS[kind].extract_output(inner)


def _of_kind(kind: str):
    return lambda keyed: keyed[0][0] == kind


class WriteReports(beam.PTransform):
    """Records -> the report files in report_dir. Returns a PCollection with the summary.

    Takes one PCollection of records or a dict of them (the audit's: one per stage that makes records).
    Each is written and aggregated where it is made, so only part paths and combiner accumulators
    cross into the steps that join them: a Flatten of whole records would make the local runner hold
    every record between stages (BENCHMARKS.md, 2026-12-05, memory at 100k prefixes).
    """

    def __init__(self, report_dir: str, meta: dict):
        super().__init__()
        self.report_dir = report_dir
        self.meta = meta

    def expand(self, record_sets):
        if isinstance(record_sets, beam.PCollection):
            record_sets = {"records": record_sets}
        parts_dir = report.parts_dir(self.report_dir, self.meta.get("run_id", ""))
        parts, claims, aggregates = [], [], []
        for name, records in record_sets.items():
            parts.append(records | f"Write parts ({name})" >> beam.ParDo(WriteParts(parts_dir)).with_output_types(Part))
            claims.append(records | f"State file claims ({name})" >> beam.FlatMap(report.state_claims))
            aggregates.append(records
                              | f"Aggregate inputs ({name})" >> beam.FlatMap(_aggregate_inputs)
                              | f"Aggregate ({name})" >> beam.CombinePerKey(_Aggregate()))
        parts = tuple(parts) | "All parts" >> beam.Flatten()

        claims = tuple(claims) | "All claims" >> beam.Flatten()
        claimed = claims | "Claimed prefixes" >> beam.Keys()
        states = (parts
                  | "Records parts" >> beam.Filter(lambda part: part.output == report.RECORDS)
                  | "Claimed checkpoints" >> beam.ParDo(ReadClaimedStates(parts_dir), beam.pvalue.AsList(claimed)))
        latest = ((claims, states)
                  | "Join keys" >> beam.Flatten()
                  | "Join latest" >> beam.GroupByKey()
                  | "latest_checkpoint()" >> beam.FlatMap(lambda kv: report.resolved_runs([kv[1]]))
                  | "Key latest by run" >> beam.MapTuple(lambda key, acc: ((RUN, *key), (RUN, acc))))
        merged = ((*aggregates, latest)
                  | "All aggregates" >> beam.Flatten()
                  | "Merge aggregates" >> beam.CombinePerKey(_Aggregate(merging=True)))

        totals = merged | "Totals" >> beam.Filter(_of_kind(TOTALS)) | "Totals value" >> beam.Values()
        runs = (merged
                | "Runs" >> beam.Filter(_of_kind(RUN))
                | "Run rows" >> beam.MapTuple(lambda key, acc: report.run_row(key[1:], acc)))
        top_runs = runs | "Runs shown" >> beam.combiners.Top.Of(report.HTML_RUNS, key=report.run_priority)
        run_count = runs | "Count runs" >> beam.combiners.Count.Globally()
        causes = (merged
                  | "Causes" >> beam.Filter(_of_kind(CAUSE))
                  | "Cause rows" >> beam.MapTuple(lambda key, acc: report.cause_row(key[1], acc)))
        top_causes = causes | "Causes shown" >> beam.combiners.Top.Of(
            report.HTML_CAUSES, key=lambda c: (c["count"], c["cause"]))
        cause_count = causes | "Count causes" >> beam.combiners.Count.Globally()
        rebuilt = merged | "Largest rebuilt" >> beam.Filter(_of_kind(REBUILT)) | "Rebuilt rows" >> beam.Values()

        si = beam.pvalue
        return (next(iter(record_sets.values())).pipeline
                | "Once" >> beam.Create([None])
                | "Write report files" >> beam.Map(
                    _finish, self.report_dir, self.meta,
                    totals=si.AsSingleton(totals, default_value=report.totals_new()), parts=si.AsList(parts),
                    runs=si.AsSingleton(top_runs), run_count=si.AsSingleton(run_count),
                    causes=si.AsSingleton(top_causes), cause_count=si.AsSingleton(cause_count),
                    rebuilt=si.AsSingleton(rebuilt, default_value=[])))


def _finish(_, report_dir, meta, totals, parts, runs, run_count, causes, cause_count, rebuilt):
    return report.finish(report_dir, meta, time.time(), totals, list(parts), list(runs), run_count,
                         list(causes), cause_count, list(rebuilt))
