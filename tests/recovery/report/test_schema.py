"""recovery.report.schema: the documented fields of records.jsonl and summary.json (docs/running.md
repeats them), and one record as its line, whatever version of Record wrote or reads it."""

import json
import os
import re

from repo_paths import REPO
from report_helpers import META, check_record_line, sample_records, summarize

from recovery.records import HEALTHY, Record
from recovery.report.schema import (
    RECORD_FIELDS,
    RECORD_SCHEMA,
    SUMMARY_FIELDS,
    SUMMARY_SCHEMA,
    one_line,
    record_dict,
    record_from_dict,
    record_line,
    sort_key,
)

DOCS = os.path.join(REPO, "docs", "running.md")


def documented_fields(section: str) -> list:
    """Field names of the schema table under `section` in docs/running.md, in order."""
    text = open(DOCS).read()
    body = text.split(section, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", body, re.MULTILINE)


def test_docs_document_exactly_the_schema():
    assert documented_fields("### records.jsonl fields") == list(RECORD_FIELDS)
    assert documented_fields("### summary.json fields") == list(SUMMARY_FIELDS)
    text = open(DOCS).read()
    for name, kind, _ in RECORD_SCHEMA + SUMMARY_SCHEMA:
        assert f"| `{name}` | {kind} |" in text, name


def test_statuses_other_parts_add_are_counted_and_new_record_fields_are_tolerated():
    newer = {**record_dict(sample_records()[0]), "status": "stale", "mtime": 1_699_999_000.0,
             "evidence": {"confirmed": ["a"], "cannot_confirm": ["b"], "reference_matched": 1,
                          "reference_total": 2, "matched_keys": ["k"]}, "field_from_the_future": 1}
    record = record_from_dict(newer)
    summary = summarize([record], META, 1_700_000_001.0)
    assert summary["counts"]["stale"] == 1 and summary["records"] == 1
    assert set(record_dict(record)) == set(RECORD_FIELDS)


def test_a_line_has_every_documented_field_even_from_an_older_record():
    """A record read back from an older report (no evidence, no mtime) gets the documented defaults; a
    line break in a field stays inside its JSON string, so the line is one line."""
    older = {k: v for k, v in record_dict(sample_records()[2]).items() if k not in ("evidence", "mtime")}
    older["reason"] = "no source fits:\nsee below"
    line = record_line(older)
    assert line.endswith("\n") and line.count("\n") == 1
    fields = json.loads(line)
    check_record_line(fields)
    assert fields["evidence"] == {} and fields["mtime"] is None and fields["reason"] == older["reason"]
    assert record_from_dict(fields) == Record(**{**older, "evidence": {}, "mtime": None})


def test_records_sort_by_root_then_prefix_then_kind_and_one_line_takes_out_every_line_break():
    records = [Record("/b/x", HEALTHY, "", "/b"), Record("/a/y", HEALTHY, "", "/a"),
               Record("/a/x", HEALTHY, "", "/a", kind="state-file"), Record("/a/x", HEALTHY, "", "/a")]
    ordered = sorted(records, key=sort_key)
    assert [(r.root, r.prefix, r.kind) for r in ordered] == [
        ("/a", "/a/x", "checkpoint"), ("/a", "/a/x", "state-file"), ("/a", "/a/y", "checkpoint"),
        ("/b", "/b/x", "checkpoint")]
    assert sort_key(record_dict(records[0])) == sort_key(records[0])      # a line read back sorts the same
    assert one_line("a\r\nb\nc\rd") == "a b c d"


def test_a_line_this_version_wrote_reads_back_as_the_record_init_makes_and_amending_is_replace():
    """record_from_dict's fast path (every field present: no __init__ call) and records.amended
    (replace without __init__) give exactly what Record(...) and dataclasses.replace give: equal
    records, tuples where __init__ makes them, nothing shared with the dict read."""
    import dataclasses

    from recovery.records import amended

    for record in sample_records():
        fields = json.loads(record_line(record))
        back = record_from_dict(fields)
        assert back == Record(**fields) == record
        assert type(back.checks) is tuple and type(back.refusals) is tuple
        fields["checks"].append("changed after reading")
        assert "changed after reading" not in back.checks
        changes = {"root": "/elsewhere", "checks": (*back.checks, "one more"), "bytes_scanned": 0, "since": "x"}
        assert amended(back, **changes) == dataclasses.replace(back, **changes)
        assert back.root == record.root and amended(back, **changes).root == "/elsewhere"


def test_a_line_is_one_line_to_any_reader_whatever_the_names_hold():
    """Names with a lone surrogate (not UTF-8), another script, and Unicode's own line breaks (NEL, LINE
    and PARAGRAPH SEPARATOR, which str.splitlines breaks at and JSON allows raw): each line reads back
    as its record and stays one line when split as text."""
    for name in ("/r/\udcf3/ckpt-1", "/r/模型/ckpt-1", "/r/a\u2028b/ckpt-1", "/r/a\u2029b/ckpt-1", "/r/a\x85b/ckpt-1",
                 "/r/plain/ckpt-1"):
        record = Record(name, HEALTHY, f"fine: {name}", "/r", checks=(name,))
        line = record_line(record)
        assert line.endswith("\n") and len(line.splitlines()) == 1, repr(line)
        assert record_from_dict(json.loads(line)) == record
        line.encode("utf-8")          # written as UTF-8 without error
