"""recovery.report.page: report.html is self-contained, escapes every name, allows exactly its own
inline script (the Content-Security-Policy hash is of the script as rendered), and shows evidence,
ages and sizes in words a person reads."""

import dataclasses
import json
import re

from report_helpers import META, check_record_line, sample_records, scripts, table_rows, tags

from recovery.records import REBUILT, UNRECOVERABLE, Record
from recovery.report.files import write_reports
from recovery.report.page import age, human_bytes, relative, script_hash
from recovery.report.schema import record_line


def page_of(records, tmp_path, meta=META, finished=1_700_000_002.0) -> str:
    write_reports(str(tmp_path / "rep"), records, meta, finished)
    return (tmp_path / "rep" / "report.html").read_text()


def csp_script_sources(page: str) -> list:
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)[1]
    return re.findall(r"'(sha256-[^']+)'", policy.split("script-src", 1)[1].split(";", 1)[0])


def test_html_is_self_contained_and_escaped(tmp_path):
    page = page_of(sample_records(), tmp_path)
    assert [a for t, a in tags(page) if t == "script"] == [{}]          # one inline script, no src
    assert not [t for t, a in tags(page) if t in ("img", "link", "iframe")]
    assert "http://" not in page and "https://" not in page
    rows = table_rows(page, "problems")
    assert len(rows) == 3
    assert any("<img" in row and "no source fits: <b>bold</b> & more" in row for row in rows)
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;ckpt-1" in page


def test_the_policy_allows_exactly_the_script_the_page_holds(tmp_path):
    page = page_of(sample_records(), tmp_path)
    (script,) = scripts(page)
    assert "addEventListener" in script and "\\s+" in script       # the script file's text, regex escapes intact
    assert csp_script_sources(page) == [script_hash(script)]
    # a script changed by one character (what an edit of the template without the hash would give) is not allowed
    assert script_hash(script.replace("copied", "copied!")) not in csp_script_sources(page)
    assert script_hash(script + "\n") not in csp_script_sources(page)


@dataclasses.dataclass(frozen=True)
class NewerRecord(Record):
    """Record as the evidence and mtime work shapes it (fields merged in from other branches)."""

    evidence: dict | None = None
    mtime: float | None = None


def test_evidence_and_age_show_when_the_records_carry_them(tmp_path):
    now = 1_700_000_000.0
    evidence = {"confirmed": ["object graph equals sibling ckpt-1's"], "cannot_confirm": ["<values> of 3 tensors"],
                "reference_matched": 9, "reference_total": 12, "matched_keys": ["a"], "unconfirmed_layout": ["a"]}
    records = [NewerRecord("/r/a/ckpt-2", REBUILT, "rebuilt", "/r/a", directory="/r/a", source="sibling ckpt-1",
                           staged=True, index_path="/rep/x.index", data_bytes=3 << 30, seconds=1.5,
                           evidence=evidence, mtime=now - 2 * 86400),
               NewerRecord("/r/a/ckpt-3", UNRECOVERABLE, "no source fits: x", "/r/a", directory="/r/a",
                           mtime=now - 5 * 3600)]
    line = json.loads(record_line(records[0]))
    check_record_line(line)
    assert line["evidence"] == evidence and line["mtime"] == now - 2 * 86400
    page = page_of(records, tmp_path, {**META, "roots": ["/r/a"]}, now)
    rebuilt = table_rows(page, "rebuilt")[0]
    assert ("12 tensors: 9 confirmed by an earlier CRC (sibling ckpt-1), 3 cannot be: their bytes are new since "
            "that save") in rebuilt
    assert "&lt;values&gt; of 3 tensors" in page and " 12 3.0 GiB 1.50 2 d " in f" {rebuilt} "
    assert "(5 h old)" in table_rows(page, "problems")[0]
    assert "3.0 GiB across 1 checkpoint recovered" in page


def test_sizes_ages_and_paths_in_words():
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 << 20, 3 << 40, 5000 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 TiB", "5000.0 TiB"]
    now = 1_700_000_000.0
    assert [age(m, now) for m in (None, now, now - 59, now - 60, now - 3 * 3600, now - 3 * 86400, now + 10)] == [
        "", "0 s", "59 s", "1 min", "3 h", "3 d", "0 s"]            # a clock ahead of the store is no negative age
    assert relative("/r/a/run/ckpt-1", "/r/a") == "run/ckpt-1" and relative("/r/a", "/r/a/") == ""
    assert relative("/r/ab/ckpt-1", "/r/a") == "/r/ab/ckpt-1"          # a sibling that shares a prefix is outside
    assert relative("gs://b/run/x", "gs://b/") == "run/x"


def test_errors_are_shown_as_what_to_run_again_not_as_findings(tmp_path):
    """A record of a storage error decided nothing: the page lists it apart from what needs a person, grouped
    by cause, with the audit's own command to run again (exit 3); one that is not there shows no such section."""
    from recovery.records import ERROR

    errors = [Record(f"gs://b/run/ckpt-{n}", ERROR, f"gs://b/run/ckpt-{n}.data-00000-of-00001: the store kept "
                                                  "failing after retries (503)", "gs://b/run", directory="gs://b/run")
              for n in (3, 4)]
    page = page_of(sample_records() + errors, tmp_path)
    assert "<h2>Could not check (2): run again</h2>" in page
    (row,) = table_rows(page, "errors")                  # one cause, one row
    assert "ckpt-3" in row and "ckpt-4" in row and "2" in row.split()
    assert 'data-command="ckpt-rescue audit /r/a gs://b/run /r/empty --report-dir /rep"' in page
    assert not any("ckpt-3" in r for r in table_rows(page, "problems"))
    assert "Could not check" not in page_of(sample_records(), tmp_path / "without")
