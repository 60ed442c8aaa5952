"""recovery.report.files: write_reports writes every documented file in one process, locally and on a
filesystem URL, idempotently, with the parts gone afterwards; failures.csv always has its header."""

import csv
import json
import os
import stat

from report_helpers import HOSTILE, META, many_records, sample_records

from recovery import storage
from recovery.records import CORRUPT, HEALTHY, INCOMPLETE, UNRECOVERABLE, Record
from recovery.report.files import write_reports
from recovery.report.readback import read_records, read_summary
from recovery.report.schema import FAILURES, HTML, PROMOTE, RECORDS, SUMMARY


def test_failures_csv_lists_what_needs_a_person_and_always_has_a_header(tmp_path):
    write_reports(str(tmp_path / "rep"), sample_records(), META, 1_700_000_001.0)
    rows = list(csv.reader(open(tmp_path / "rep" / "failures.csv", newline="")))
    assert rows[0] == ["prefix", "status", "reason"]
    assert sorted(r[1] for r in rows[1:]) == [CORRUPT, INCOMPLETE, UNRECOVERABLE]
    assert [HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more"] in rows
    write_reports(str(tmp_path / "ok"), [Record("/x", HEALTHY, "", "/")], META, 1_700_000_001.0)
    assert (tmp_path / "ok" / "failures.csv").read_text() == "prefix,status,reason\n"


def test_write_and_read_back_on_a_filesystem_url_is_idempotent():
    url = "memory://reports/run"
    records = sample_records()
    first = write_reports(url, records, META, 1_700_000_001.0)
    records_text = storage.url_to_fs(url)[0].cat_file("/reports/run/records.jsonl")
    again = write_reports(url, list(reversed(records)), META, 1_700_000_001.0)
    assert first == again == read_summary(url)
    assert storage.url_to_fs(url)[0].cat_file("/reports/run/records.jsonl") == records_text
    back = read_records(url)
    assert [r.prefix for r in back] == sorted(r.prefix for r in records)
    assert {r.prefix: r for r in back}[HOSTILE] == {r.prefix: r for r in records}[HOSTILE]
    assert not storage.url_to_fs(url)[0].exists("/reports/run/parts/r1")   # parts removed


def test_a_local_report_is_every_file_promote_sh_executable_and_no_part_left(tmp_path):
    report = tmp_path / "rep"
    records = many_records(600)
    summary = write_reports(str(report), records, {**META, "run_id": "local"}, 1_700_000_001.0)
    assert sorted(os.listdir(report)) == sorted([FAILURES, HTML, PROMOTE, RECORDS, SUMMARY])     # no parts/, no temps
    assert os.stat(report / PROMOTE).st_mode & stat.S_IXUSR
    assert summary == read_summary(str(report)) and summary["records"] == len(records)
    assert sum(1 for _ in open(report / RECORDS)) == len(records)
    assert [r.prefix for r in read_records(str(report))] == [r.prefix for r in sorted(records, key=lambda r: r.prefix)]


def test_dict_records_read_back_from_another_report_are_written_as_records(tmp_path):
    first, second = str(tmp_path / "one"), str(tmp_path / "two")
    write_reports(first, sample_records(), META, 1_700_000_001.0)
    lines = [line for line in open(os.path.join(first, RECORDS))]
    write_reports(second, [json.loads(line) for line in lines], META, 1_700_000_001.0)
    for name in (RECORDS, FAILURES, PROMOTE, HTML, SUMMARY):
        assert open(os.path.join(first, name)).read() == open(os.path.join(second, name)).read(), name


def test_a_reason_quoting_a_name_that_is_not_utf8_is_written_with_the_byte_escaped(tmp_path):
    """A damaged object graph's child name (bytes that are not UTF-8, read as a lone surrogate) quoted in a
    reason: every file is still written, as UTF-8, the byte shown as its escape (the audit crashed on it)."""
    reason = "object 0 has a child `bia\udcf3` (object 3) in the checkpoint but not in saved_model.pb"
    record = Record("/runs/a/ckpt-1", UNRECOVERABLE, reason, "/runs")
    write_reports(str(tmp_path / "rep"), [record], META, 1_700_000_001.0)
    for name in (RECORDS, FAILURES, PROMOTE, HTML, SUMMARY):
        (tmp_path / "rep" / name).read_bytes().decode("utf-8")
    rows = list(csv.reader(open(tmp_path / "rep" / FAILURES, newline="")))
    assert rows[1][2] == reason.replace("\udcf3", "\\xf3")
    assert "bia\\xf3" in (tmp_path / "rep" / HTML).read_text()
    assert read_records(str(tmp_path / "rep"))[0].reason == reason     # records.jsonl keeps it exactly
