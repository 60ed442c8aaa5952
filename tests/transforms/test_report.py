"""transforms.report alone: Tally, WriteParts and WriteReports in a TestPipeline on a few records:
one healthy, one that needs a person (its reason spans lines), one rebuilt and staged; and
WriteReports over many stages and small parts writing the very files write_reports writes in one
process for the same records."""

import csv
import os
import uuid
from collections import defaultdict

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from report_helpers import META, many_records, sample_records

from recovery.records import CORRUPT, HEALTHY, REBUILT, Record
from recovery.report import parts
from recovery.report.files import write_reports
from recovery.report.readback import read_records
from recovery.report.schema import FAILURES, HTML, PROMOTE, RECORDS, SUMMARY
from transforms.metrics import NAMESPACE
from transforms.report import AggregateBundle, Batched, Part, Tally, WriteParts, WriteReports


@pytest.fixture
def records(tmp_path) -> list:
    root = str(tmp_path / "runs")
    run = f"{root}/run"
    staged = str(tmp_path / "report" / "rebuilt" / "ckpt-3.index")
    return [Record(f"{run}/ckpt-1", HEALTHY, "", root, directory=run, index_path=f"{run}/ckpt-1.index"),
            Record(f"{run}/ckpt-2", CORRUPT, "index unreadable:\nbad magic", root, directory=run,
                   command=f"ckpt-rescue inspect {run}/ckpt-2", bytes_scanned=7),
            Record(f"{run}/ckpt-3", REBUILT, "rebuilt from sibling ckpt-1", root, directory=run,
                   index_path=staged, staged=True, data_bytes=10, bytes_scanned=10)]


def _run(pipeline) -> dict:
    result = pipeline.run()
    result.wait_until_finish()
    counters = defaultdict(int)
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[counter.key.metric.name] += counter.committed
    return counters


def test_tally_counts_each_status_and_passes_every_batch_on_unchanged(records):
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    batches = [records[:1], records[1:]]
    tallied = pipeline | beam.Create(batches) | beam.ParDo(Tally())
    assert_that(tallied, equal_to(batches))
    counters = _run(pipeline)
    assert (counters["records"], counters["status_healthy"], counters["status_corrupt"],
            counters["status_rebuilt"]) == (3, 1, 1, 1)
    # the console's bytes_scanned is what summary.json sums: every record once
    assert counters["bytes_scanned"] == sum(r.bytes_scanned for r in records) > 0


def test_write_parts_lists_only_what_needs_a_person_as_failures_each_on_one_line(records, tmp_path):
    parts_dir = str(tmp_path / "parts")
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        parts = pipeline | beam.Create([records]) | beam.ParDo(WriteParts(parts_dir))
        assert_that(parts | beam.Map(lambda p: isinstance(p, Part) and p.output),
                    equal_to([RECORDS, FAILURES, PROMOTE]))
    written = {name.split("-")[0]: open(os.path.join(parts_dir, name)).read() for name in os.listdir(parts_dir)}
    assert len(written["records"].splitlines()) == 3
    failures = list(csv.reader(written["failures"].splitlines()))
    assert failures == [[records[1].prefix, CORRUPT, "index unreadable: bad magic"]]   # the healthy one is not there
    assert written["promote"].split() == ["promote", REBUILT, records[2].index_path, records[2].prefix + ".index",
                                          str(records[2].data_bytes)]


def test_write_reports_writes_every_report_file_from_the_records(records, tmp_path):
    report_dir = str(tmp_path / "report")
    meta = {"run_id": uuid.uuid4().hex, "started": 0.0, "roots": [records[0].root], "report_dir": report_dir}
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        summary = pipeline | beam.Create([records[:2], records[2:]]) | WriteReports(report_dir, meta)
        assert_that(summary | beam.Map(lambda s: (s["records"], s["exit_code"])), equal_to([(3, 1)]))
    assert sorted(r.prefix for r in read_records(report_dir)) == [r.prefix for r in records]
    with open(os.path.join(report_dir, FAILURES)) as f:
        assert [row[0] for row in csv.reader(f)] == ["prefix", records[1].prefix]
    assert not os.path.exists(parts.parts_dir(report_dir, meta["run_id"]))
    with open(os.path.join(report_dir, HTML)) as f:
        assert records[1].prefix in f.read()


@pytest.mark.parametrize("held_keys", [AggregateBundle.MAX_KEYS, 3])
def test_write_reports_on_beam_writes_the_files_one_process_writes(tmp_path, monkeypatch, held_keys):
    """Records in three stages, parts of 7 lines, the aggregates merged across stages and workers (and
    with 3 held per bundle, sent out early and merged again): every file is byte for byte what
    write_reports makes of the same records in one pass (more runs, causes and rebuilds than the page
    shows, so the bounds are crossed on both sides)."""
    monkeypatch.setattr(parts, "PART_LINES", 7)
    monkeypatch.setattr(AggregateBundle, "MAX_KEYS", held_keys)
    records = sample_records() + many_records(1200)
    meta, finished = {**META, "roots": ["/r/a", "gs://b/run", "gs://m/runs"]}, 1_700_000_321.5
    one_process = str(tmp_path / "one")
    write_reports(one_process, records, meta, finished)
    on_beam = str(tmp_path / "beam")
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        stages = {name: (pipeline | name >> beam.Create(records[i::3], reshuffle=False).with_output_types(Record)
                         | f"Batch {name}" >> Batched())
                  for i, name in enumerate(("classified", "rebuilt", "verified"))}
        _ = stages | WriteReports(on_beam, meta, finished=finished)
    for name in (RECORDS, FAILURES, PROMOTE, SUMMARY, HTML):
        with open(os.path.join(one_process, name), "rb") as a, open(os.path.join(on_beam, name), "rb") as b:
            assert a.read() == b.read(), name
    assert sorted(os.listdir(on_beam)) == sorted(os.listdir(one_process))
    assert os.stat(os.path.join(on_beam, PROMOTE)).st_mode == os.stat(os.path.join(one_process, PROMOTE)).st_mode


def test_state_files_answered_within_their_directory_give_the_files_one_process_writes(tmp_path, monkeypatch):
    """Classification's batches hold a directory's every record, so a `checkpoint` state file naming a
    checkpoint among them is answered there (no records part is read back for it): one naming a healthy
    checkpoint, a staged rebuild, an error. A claim on another directory's checkpoint, or on a prefix
    whose record is made by another stage (a rebuild), must still go to the join and be answered alike."""
    monkeypatch.setattr(parts, "PART_LINES", 7)
    records = many_records(900, runs=150)
    other = "gs://m/runs/exp-001"
    records += [
        # across directories: exp-002's state file names exp-001's healthy ckpt-151 by its full name
        Record("gs://m/runs/exp-002/checkpoint", HEALTHY, "ok", "gs://m/runs", kind="state-file",
               directory="gs://m/runs/exp-002", source=f"{other}/ckpt-151"),
        # a prefix rebuilt in another stage: its record is not in the directory's batch
        Record("gs://m/runs/solo/checkpoint", HEALTHY, "ok", "gs://m/runs", kind="state-file",
               directory="gs://m/runs/solo", source="ckpt-7"),
    ]
    rebuilt_elsewhere = Record("gs://m/runs/solo/ckpt-7", REBUILT, "rebuilt from sibling", "gs://m/runs",
                               directory="gs://m/runs/solo", staged=True, index_path="gs://m/rep/rebuilt/7.index")
    meta, finished = {**META, "roots": ["gs://m/runs"]}, 1_700_000_321.5
    one_process = str(tmp_path / "one")
    write_reports(one_process, records + [rebuilt_elsewhere], meta, finished)
    by_directory = defaultdict(list)
    for record in records:
        by_directory[record.directory].append(record)
    whole = [batch for _, batch in sorted(by_directory.items())]
    claims = [r for r in records if r.kind == "state-file"]
    within = [r for r in claims if any(o.prefix == f"{r.directory}/{r.source}" for o in by_directory[r.directory])]
    assert 0 < len(within) < len(claims)
    on_beam = str(tmp_path / "beam")
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    stages = {"classify": pipeline | "Classified" >> beam.Create(whole, reshuffle=False),
              "rebuild": pipeline | "Rebuilt" >> beam.Create([[rebuilt_elsewhere]], reshuffle=False)}
    _ = stages | WriteReports(on_beam, meta, finished=finished, whole_directories=["classify"])
    counters = _run(pipeline)
    for name in (RECORDS, FAILURES, PROMOTE, SUMMARY, HTML):
        with open(os.path.join(one_process, name), "rb") as a, open(os.path.join(on_beam, name), "rb") as b:
            assert a.read() == b.read(), name
    assert counters["state_files_answered_in_directory"] == len(within)
    assert counters["state_files_joined"] == len(claims) - len(within)
