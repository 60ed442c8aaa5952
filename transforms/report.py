"""Count records as they pass (Beam metrics, progress in the log) and write the report files with
no worker holding more than a bounded number of records.

Records travel as batches (lists): a directory's records as classification made them (one element
where there were a hundred), the other stages' records batched where they are made (`Batched`), so
Beam's calls per element through the steps here are paid per batch (BENCHMARKS.md, 2026-12-07).

Workers write the record lines to sorted part files (at most PART_LINES per part) and build the
aggregates of recovery.report.aggregates by key per bundle (the counts, each run, each cause with a
bounded sample, the largest rebuilds); combiners merge them and then make their Overview; then two
workers at once (recovery.report.files.write_half) merge the parts line by line, one into records.jsonl,
the other into failures.csv and promote.sh and render report.html, and a last step writes summary.json.
Only the aggregates' own `add` and `merge` are used, so a report made here is the one write_reports makes
in one process. The parts are written with fsspec (recovery.storage) rather than Beam's file sinks:
Beam's own gs:// and s3:// filesystems take their credentials and endpoints elsewhere and do not know
memory://.
"""

import logging
import time
from collections import Counter
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from recovery import storage
from recovery.memory import runs
from recovery.memory.carry_form import FormBatch
from recovery.memory.nightly import NightCounts
from recovery.report import aggregates, files, fold, latest, parts, readback, schema

from .collection import collect_less
from .metrics import counter

PROGRESS_EVERY_SECONDS = 30
_LOG = logging.getLogger("ckpt_rescue.audit")


class Part(NamedTuple):
    """One part file written: which output it belongs to (recovery.report.schema.RECORDS, ...) and its path."""

    output: str
    path: str


for _element_type in (Part, latest.StateFileClaim, latest.CheckpointState):
    beam.coders.registry.register_coder(_element_type, beam.coders.RowCoder)   # deterministic, compact


class Tally(beam.DoFn):
    """A batch of records -> the same batch; per-status counters, and a progress line in the log every
    PROGRESS_EVERY_SECONDS per worker. `bytes_scanned` is counted here, once per record, as summary.json
    sums it: the console's metric and the report agree by construction (a salvage assessment's reads
    included, a carried record's none). Counts are kept per bundle and go to the counters when it ends
    (metrics are committed per bundle anyway)."""

    def setup(self):
        self._seen = 0
        self._last_log = time.monotonic()

    def start_bundle(self):
        self._counts = Counter()

    def process(self, batch):
        counts = fold.tally(batch, self._counts)
        self._seen += len(batch)
        if isinstance(batch, FormBatch):       # the records its carried form stands for, counted then
            counts.update(batch.form.counts)
            self._seen += batch.form.counts.get("records", 0)
        now = time.monotonic()
        if batch and now - self._last_log >= PROGRESS_EVERY_SECONDS:
            self._last_log = now
            _LOG.info("progress: this worker has audited %d prefixes so far (latest: %s, %s)",
                      self._seen, batch[-1].prefix, batch[-1].status)
        yield batch

    def finish_bundle(self):
        counts, self._counts = self._counts, Counter()
        for name, value in counts.items():
            counter(name).inc(value)


class Batched(beam.PTransform):
    """Records one by one -> batches of them, as the report's steps take records (a stage that makes
    few records, each on its own: rebuilds, salvage assessments, verifications, failures)."""

    def expand(self, records):
        return records | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=parts.PART_LINES)


class WriteParts(beam.DoFn):
    """A batch of records -> lines of records.jsonl, failures.csv and promote.sh, written as sorted part
    files of at most PART_LINES lines; yields a Part for each part written."""

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def setup(self):
        collect_less()
        self._fs, self._path = storage.url_to_fs(self.parts_dir)
        if storage.is_local(self._fs):
            self._fs.makedirs(self._path, exist_ok=True)

    def start_bundle(self):
        self._lines = {}

    def process(self, batch):
        for record in batch:
            yield from self._take(parts.lines_for(record))
        if isinstance(batch, FormBatch):
            yield from self._take(batch.form.part_lines())

    def _take(self, keyed_lines) -> list:
        written = []
        for output, line in keyed_lines:
            lines = self._lines.setdefault(output, [])
            lines.append(line)
            if len(lines) >= parts.PART_LINES:
                written.append(self._flush(output))
        return written

    def finish_bundle(self):
        for output in list(self._lines):
            if self._lines[output]:
                yield WindowedValue(self._flush(output), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self, output) -> Part:
        lines, self._lines[output] = self._lines[output], []
        return Part(output, parts.write_part(self._fs, self._path, output, lines))


class WriteDirectoryParts(WriteParts):
    """A nightly run's directory lines (dicts, one each) -> part files of directories.jsonl."""

    def process(self, line):
        yield from self._take([(schema.DIRECTORIES, parts.directory_line(line))])


class ReadClaimedStates(beam.DoFn):
    """A records Part -> (prefix, CheckpointState) for its checkpoints that a state file names."""

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def setup(self):
        self._fs, _ = storage.url_to_fs(self.parts_dir)

    def process(self, part: Part, claimed: list):
        if claimed:       # no state file names a checkpoint: no part needs reading back
            yield from readback.claimed_states(self._fs, part.path, set(claimed))


class AggregateBundle(beam.DoFn):
    """Batches of records -> (key, aggregate) for every aggregate the records of a bundle count in (recovery.report.
    aggregates), made here rather than one keyed element per record and aggregate for a combiner (two to
    four per record; at 100k records most of what counting cost). At most MAX_KEYS are held: the oldest
    go out early, to be merged with the rest like every stage's."""

    MAX_KEYS = 10_000

    def start_bundle(self):
        self._held = {}

    def process(self, batch):
        for record in batch:
            for key in aggregates.keys_of(record):
                held = self._held.get(key)
                if held is None:
                    yield from self._room()
                    held = self._held[key] = aggregates.KINDS[key[0]]()
                held.add(record)
        if isinstance(batch, FormBatch):     # its carried form's aggregates, made when it was judged
            for key, made in batch.form.aggregates.items():
                held = self._held.get(key)
                if held is None:
                    yield from self._room()
                    held = self._held[key] = aggregates.KINDS[key[0]]()
                held.merge([made])

    def _room(self):
        if len(self._held) >= self.MAX_KEYS:
            oldest = next(iter(self._held))
            yield oldest, self._held.pop(oldest)

    def finish_bundle(self):
        for key, held in self._held.items():
            yield WindowedValue((key, held), MIN_TIMESTAMP, [GlobalWindow()])
        self._held = {}


class _Merge(beam.CombineFn):
    """The report's keyed aggregates merged, one combine for every kind: values are aggregates already
    made (each stage's bundles', and latest_checkpoint()'s per run); the accumulator is the key's
    aggregate (None until a value came)."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, value):
        return (type(value)() if accumulator is None else accumulator).merge([value])

    def merge_accumulators(self, accumulators):
        found = [acc for acc in accumulators if acc is not None]
        return found[0].merge(found[1:]) if found else None

    def extract_output(self, accumulator):
        return accumulator


class _Fold(beam.CombineFn):
    """A CombineFn over one of recovery.report.aggregates' classes (add, merge)."""

    def __init__(self, kind):
        self.kind = kind

    def create_accumulator(self):
        return self.kind()

    def add_input(self, accumulator, value):
        return accumulator.add(value)

    def merge_accumulators(self, accumulators):
        return self.kind().merge(accumulators)

    def extract_output(self, accumulator):
        return accumulator


class WriteReports(beam.PTransform):
    """Batches of records -> the report files in report_dir. Returns a PCollection with the summary.

    Takes one PCollection of batches of records (lists) or a dict of them (the audit's: one per stage that
    makes records; `Batched` makes batches of records that come one by one).
    Each is written and aggregated where it is made, so only part paths and aggregates
    cross into the steps that join them: a Flatten of whole records would make the local runner hold
    every record between stages (BENCHMARKS.md, 2026-12-05, memory at 100k prefixes).
    """

    def __init__(self, report_dir: str, meta: dict, finished: float | None = None, directories=None, night=None,
                 whole_directories: tuple = ()):
        super().__init__()
        self.report_dir = report_dir
        self.meta = meta
        self.finished = finished      # the report's finish time (epoch seconds); None: when its last step runs
        self.directories = directories   # a nightly run's directory lines (PCollections of dicts), or None
        self.night = night               # ... and its NightCounts (PCollections), or None
        self.whole_directories = frozenset(whole_directories)   # record sets whose batches each hold every
        #                                   record of their directories: their state files are answered there

    def expand(self, record_sets):
        if isinstance(record_sets, beam.PCollection):
            record_sets = {"records": record_sets}
        parts_dir = parts.parts_dir(self.report_dir, self.meta.get("run_id", ""))
        written, claim_sets, counted = [], [], []
        for name, records in record_sets.items():
            written.append(records
                           | f"Write parts ({name})" >> beam.ParDo(WriteParts(parts_dir)).with_output_types(Part))
            if name in self.whole_directories:
                claimed = records | f"State file claims ({name})" >> beam.ParDo(ClaimsWithin()).with_outputs(
                    RESOLVED, main="joined")
                claim_sets.append(claimed.joined)
                counted.append(claimed[RESOLVED])
            else:
                claim_sets.append(records | f"State file claims ({name})" >> beam.FlatMap(_claims_of))
            counted.append(records | f"Aggregate ({name})" >> beam.ParDo(AggregateBundle()))
        for n, lines in enumerate(self.directories or ()):      # each written in the stage that made it
            written.append(lines | f"Write parts (directories {n})" >> beam.ParDo(WriteDirectoryParts(parts_dir))
                           .with_output_types(Part))
        for n, counts in enumerate(self.night or ()):           # merged with the aggregates, a stage of its own less
            counted.append(counts | f"Key night counts {n}" >> beam.Map(lambda night: (NIGHT_COUNTS, night)))
        written = tuple(written) | "All parts" >> beam.Flatten()

        claims = tuple(claim_sets) | "All claims" >> beam.Flatten()
        claimed = claims | "Claimed prefixes" >> beam.Keys()
        states = (written
                  | "Records parts" >> beam.Filter(lambda part: part.output == schema.RECORDS)
                  | "Claimed checkpoints" >> beam.ParDo(ReadClaimedStates(parts_dir), beam.pvalue.AsList(claimed)))
        resolutions = ((claims, states)
                       | "Join keys" >> beam.Flatten()
                       | "Join latest" >> beam.GroupByKey()
                       | "latest_checkpoint()" >> beam.FlatMap(lambda kv: latest.resolved_runs([kv[1]]))
                       | "Key latest by run" >> beam.MapTuple(lambda key, run: ((aggregates.RUN, *key), run)))
        merged = ((*counted, resolutions)
                  | "All aggregates" >> beam.Flatten()
                  | "Merge aggregates" >> beam.CombinePerKey(_Merge()))
        overview = merged | "Overview" >> beam.CombineGlobally(_Fold(aggregates.Overview)).without_defaults()

        pipeline = next(iter(record_sets.values())).pipeline
        halves = (pipeline
                  | "Halves" >> beam.Create([(files.RECORDS_HALF, None), (files.OTHERS_HALF, None)], reshuffle=False)
                  | "A worker each" >> beam.GroupByKey()     # two keys: two workers, each its half at once
                  | "Write files" >> beam.Map(_write_half, self.report_dir, self.meta, self.finished,
                                                   self.night is not None,
                                                   overview=beam.pvalue.AsSingleton(
                                                       overview, default_value=aggregates.Overview()),
                                                   parts=beam.pvalue.AsList(written)))
        return (pipeline
                | "Once" >> beam.Create([None])
                | "Write summary" >> beam.Map(_write_summary, self.report_dir, self.meta,
                                              halves=beam.pvalue.AsList(halves)))


NIGHT_COUNTS = ("night",)      # the key a nightly run's NightCounts are merged under with the report's aggregates


def _claims_of(batch) -> list:
    return [claim for record in batch for claim in latest.state_claims(record)]


RESOLVED = "resolved"


class ClaimsWithin(beam.DoFn):
    """A batch of a directory's every record -> the state files' claims that name another directory's
    checkpoint (or one rebuilt or checked elsewhere), for the join; RESOLVED: ((run kind, root, directory),
    Run) for those answered within the batch. The join reads records back from the parts only for the
    claims it gets: on a night of carried directories, none."""

    def setup(self):
        self._answered, self._joined = counter("state_files_answered_in_directory"), counter("state_files_joined")

    def process(self, batch):
        resolved, joined = latest.resolved_within(batch, batch.form.claims if isinstance(batch, FormBatch) else ())
        if resolved:
            self._answered.inc(len(resolved))
        if joined:
            self._joined.inc(len(joined))
        yield from joined
        for key, run in resolved:
            yield pvalue.TaggedOutput(RESOLVED, ((aggregates.RUN, *key), run))


def _write_half(grouped, report_dir, meta, finished, nightly=False, *, overview, parts):
    """(half, the summary it was written with); the others' summary is the one summary.json takes."""
    half = grouped[0]
    if finished is None:     # now, on the run's clock (the launcher's --now moves it)
        finished = time.time() + meta.get("clock_offset", 0.0)
    night = overview.others.get(NIGHT_COUNTS[0], NightCounts()) if nightly else None   # zeros: nothing listed
    return half, files.write_half(half, report_dir, meta, finished, overview, list(parts), night)


def _write_summary(_, report_dir, meta, *, halves):
    summary = files.write_summary(report_dir, meta, dict(halves)[files.OTHERS_HALF])
    if meta.get("vault"):
        try:
            runs.record_finish(meta["vault"], meta, summary)     # the next run compares with this one
        except Exception as exc:  # noqa: BLE001 - the report stands; the next run compares with an older one
            _LOG.warning("the vault did not record this run as finished (%s): the next run will not compare "
                         "with it", exc)
    return summary
