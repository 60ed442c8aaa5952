"""transforms.report alone: Tally, WriteParts and WriteReports in a TestPipeline on a few records:
one healthy, one that needs a person (its reason spans lines), one rebuilt and staged."""

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

from recovery import report
from recovery.records import CORRUPT, HEALTHY, REBUILT, Record
from transforms.metrics import NAMESPACE
from transforms.report import Part, Tally, WriteParts, WriteReports


@pytest.fixture
def records(tmp_path) -> list:
    root = str(tmp_path / "runs")
    run = f"{root}/run"
    staged = str(tmp_path / "report" / "rebuilt" / "ckpt-3.index")
    return [Record(f"{run}/ckpt-1", HEALTHY, "", root, directory=run, index_path=f"{run}/ckpt-1.index"),
            Record(f"{run}/ckpt-2", CORRUPT, "index unreadable:\nbad magic", root, directory=run,
                   command=f"ckpt-rescue inspect {run}/ckpt-2"),
            Record(f"{run}/ckpt-3", REBUILT, "rebuilt from sibling ckpt-1", root, directory=run,
                   index_path=staged, staged=True, data_bytes=10)]


def _run(pipeline) -> dict:
    result = pipeline.run()
    result.wait_until_finish()
    counters = defaultdict(int)
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[counter.key.metric.name] += counter.committed
    return counters


def test_tally_counts_each_status_and_passes_every_record_on_unchanged(records):
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    tallied = pipeline | beam.Create(records) | beam.ParDo(Tally())
    assert_that(tallied, equal_to(records))
    counters = _run(pipeline)
    assert (counters["records"], counters["status_healthy"], counters["status_corrupt"],
            counters["status_rebuilt"]) == (3, 1, 1, 1)


def test_write_parts_lists_only_what_needs_a_person_as_failures_each_on_one_line(records, tmp_path):
    parts_dir = str(tmp_path / "parts")
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        parts = pipeline | beam.Create(records) | beam.ParDo(WriteParts(parts_dir))
        assert_that(parts | beam.Map(lambda p: isinstance(p, Part) and p.output),
                    equal_to([report.RECORDS, report.FAILURES, report.PROMOTE]))
    written = {name.split("-")[0]: open(os.path.join(parts_dir, name)).read() for name in os.listdir(parts_dir)}
    assert len(written["records"].splitlines()) == 3
    failures = list(csv.reader(written["failures"].splitlines()))
    assert failures == [[records[1].prefix, CORRUPT, "index unreadable: bad magic"]]   # the healthy one is not there
    assert written["promote"].split() == ["promote", records[2].index_path, records[2].prefix + ".index"]


def test_write_reports_writes_every_report_file_from_the_records(records, tmp_path):
    report_dir = str(tmp_path / "report")
    meta = {"run_id": uuid.uuid4().hex, "started": 0.0, "roots": [records[0].root], "report_dir": report_dir}
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        summary = pipeline | beam.Create(records) | WriteReports(report_dir, meta)
        assert_that(summary | beam.Map(lambda s: (s["records"], s["exit_code"])), equal_to([(3, 1)]))
    assert sorted(r.prefix for r in report.read_records(report_dir)) == [r.prefix for r in records]
    with open(os.path.join(report_dir, report.FAILURES)) as f:
        assert [row[0] for row in csv.reader(f)] == ["prefix", records[1].prefix]
    assert not os.path.exists(report.parts_dir(report_dir, meta["run_id"]))
    with open(os.path.join(report_dir, report.HTML)) as f:
        assert records[1].prefix in f.read()
