"""recovery.report.readback: a written report read back: records line by line (blank lines and fields
of a newer writer tolerated), the first rows of failures.csv, and the claimed checkpoints' states
from a records part."""

import json

import fsspec
from report_helpers import HOSTILE, META, sample_records

from recovery.records import HEALTHY, REBUILT, Record
from recovery.report.files import write_reports
from recovery.report.latest import CheckpointState
from recovery.report.parts import lines_for, write_part
from recovery.report.readback import claimed_states, first_failures, iter_records, read_records, read_summary
from recovery.report.schema import RECORDS, record_dict


def test_records_come_back_as_written_from_a_newer_writer_too(tmp_path):
    report = tmp_path / "rep"
    write_reports(str(report), sample_records(), META, 1_700_000_001.0)
    assert read_records(str(report)) == sorted(sample_records(), key=lambda r: (r.root, r.prefix))
    newer = {**record_dict(sample_records()[0]), "a_later_field": {"tensors": 3}}
    with open(report / RECORDS, "a") as f:
        f.write("\n" + json.dumps(newer) + "\n\n")
    back = list(iter_records(str(report)))
    assert len(back) == len(sample_records()) + 1 and back[-1] == sample_records()[0]
    assert read_summary(str(report))["run_id"] == META["run_id"]


def test_first_failures_are_the_first_rows_without_the_header(tmp_path):
    report = str(tmp_path / "rep")
    write_reports(report, sample_records(), META, 1_700_000_001.0)
    rows = first_failures(report, 2)
    assert rows == [("/r/a/<img src=x onerror=\"document.title=1\">ckpt-1", "unrecoverable",
                     "no source fits: <b>bold</b> & more"), ("gs://b/run/ckpt-8", "corrupt",
                                                           "index unreadable: bad magic; staged")]
    assert rows[0][0] == HOSTILE and len(first_failures(report, 10)) == 3 and first_failures(report, 0) == []


def test_claimed_states_are_read_for_the_claimed_checkpoints_only():
    fs = fsspec.filesystem("memory")
    records = [Record("/r/a/ckpt-1", HEALTHY, "", "/r"), Record("/r/a/ckpt-2", REBUILT, "", "/r", staged=True),
               Record("/r/a/ckpt-3", REBUILT, "", "/r"),
               Record("/r/a/checkpoint", HEALTHY, "", "/r", kind="state-file", source="ckpt-2")]
    lines = [keyed for record in records for output, keyed in lines_for(record) if output == RECORDS]
    part = write_part(fs, "/claims-test", RECORDS, lines)
    states = claimed_states(fs, part, {"/r/a/ckpt-2", "/r/a/ckpt-3", "/r/a/checkpoint", "/r/a/ckpt-9"})
    assert sorted(states) == [("/r/a/ckpt-2", CheckpointState(REBUILT, True)),
                              ("/r/a/ckpt-3", CheckpointState(REBUILT, False))]    # a state file is no checkpoint
    assert claimed_states(fs, part, set()) == []
    fs.rm("/claims-test", recursive=True)
