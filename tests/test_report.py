"""Report files from records: counts, exit code, failures.csv, commands, and HTML a browser shows."""

import csv
import html.parser
import io
import json
import shutil
import subprocess

import pytest

from recovery.records import (
    CORRUPT,
    ERROR,
    HEALTHY,
    INCOMPLETE,
    REBUILT,
    STATUSES,
    UNRECOVERABLE,
    Record,
    promote_command,
    replace_command,
)
from recovery.report import exit_code, failures_csv, read_records, read_summary, render_html, summarize, write_reports

HOSTILE = '/r/a/<img src=x onerror="document.title=1">ckpt-1'


def sample_records() -> list[Record]:
    return [
        Record("/r/a/ckpt-1", HEALTHY, "index reads", "/r/a", data_bytes=100, checks=["index readable"]),
        Record("/r/a/ckpt-2", REBUILT, "rebuilt from sibling ckpt-1", "/r/a", source="sibling ckpt-1",
               index_path="/rep/rebuilt/local/r/a/ckpt-2.index", staged=True, data_bytes=100, bytes_scanned=100,
               command=promote_command("/rep/rebuilt/local/r/a/ckpt-2.index", "/r/a/ckpt-2.index")),
        Record(HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more", "/r/a", data_bytes=7,
               refusals=["sibling ckpt-1: accounts for 100 bytes of shard 0 but the file has 7"],
               command=f"ckpt-rescue inspect '{HOSTILE}'"),
        Record("gs://b/run/ckpt-9", INCOMPLETE, "1 of 2 data shard(s) missing (shard 1)", "gs://b/run"),
        Record("gs://b/run/ckpt-8", CORRUPT, "index unreadable: bad magic; staged", "gs://b/run", staged=True,
               index_path="gs://b/rep/rebuilt/gs/b/run/ckpt-8.index"),
        Record("gs://b/run/ckpt-8_temp/part-00000-of-00001", HEALTHY, "merge input", "gs://b/run", kind="leftover"),
    ]


META = {"run_id": "r1", "roots": ["/r/a", "gs://b/run", "/r/empty"], "started": 1_700_000_000.0,
        "command": "ckpt-rescue audit /r/a gs://b/run /r/empty --report-dir /rep", "report_dir": "/rep",
        "options": {"in_place": False}}


def test_summary_counts_every_status_per_root_and_the_exit_code():
    records = sample_records()
    summary = summarize(records, META, 1_700_000_012.5)
    assert summary["counts"] == {HEALTHY: 2, REBUILT: 1, UNRECOVERABLE: 1, CORRUPT: 1, INCOMPLETE: 1, ERROR: 0}
    assert set(summary["counts"]) == set(STATUSES)
    assert summary["per_root"]["/r/a"] == {"records": 3, "counts": {HEALTHY: 1, REBUILT: 1, UNRECOVERABLE: 1,
                                                                     CORRUPT: 0, INCOMPLETE: 0, ERROR: 0}}
    assert summary["per_root"]["/r/empty"]["records"] == 0     # a root with nothing in it still shows
    assert summary["kinds"] == {"checkpoint": 5, "leftover": 1}
    assert summary["duration_seconds"] == 12.5
    assert summary["data_bytes"] == 207 and summary["bytes_scanned"] == 100
    assert summary["staged_indexes"] == 2 and summary["written_in_place"] == 0
    assert summary["exit_code"] == 1 == exit_code(records)
    assert exit_code([r for r in records if r.status in (HEALTHY, REBUILT)]) == 0
    assert summary["version"] and summary["run_id"] == "r1" and summary["command"] == META["command"]


def test_could_not_check_exits_3_unless_something_needs_a_person():
    fine = [r for r in sample_records() if r.status in (HEALTHY, REBUILT)]
    unchecked = Record("s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing", "s3://b/run")
    assert exit_code(fine + [unchecked]) == 3
    assert exit_code(sample_records() + [unchecked]) == 1        # a finding wins over "could not check"
    rows = list(csv.reader(io.StringIO(failures_csv(fine + [unchecked]))))
    assert rows[1:] == [["s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing"]]


def test_failures_csv_lists_what_needs_a_person_and_always_has_a_header():
    rows = list(csv.reader(io.StringIO(failures_csv(sample_records()))))
    assert rows[0] == ["prefix", "status", "reason"]
    assert sorted(r[1] for r in rows[1:]) == [CORRUPT, INCOMPLETE, UNRECOVERABLE]
    assert [HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more"] in rows
    assert failures_csv([Record("/x", HEALTHY, "", "/")]) == "prefix,status,reason\n"


def test_promote_commands_never_overwrite():
    assert promote_command("/rep/p.index", "/data/p.index") == "cp -n -- /rep/p.index /data/p.index"
    assert promote_command("/rep/p.index", "gs://b/p.index") == "gsutil cp -n /rep/p.index gs://b/p.index"
    assert promote_command("gs://r/p.index", "gs://b/p.index") == "gsutil cp -n gs://r/p.index gs://b/p.index"
    assert promote_command("/rep/p 1.index", "s3://b/run/p 1.index") == (
        "aws s3api put-object --if-none-match '*' --bucket b --key 'run/p 1.index' --body '/rep/p 1.index'")
    s3_to_s3 = promote_command("s3://r/p.index", "s3://b/p.index")
    assert s3_to_s3.startswith("aws s3 cp s3://r/p.index s3://b/p.index") and "overwrites" in s3_to_s3
    assert replace_command("/rep/p.index", "/d/p.index") == (
        "mv -n -- /d/p.index /d/p.index.unreadable && cp -n -- /rep/p.index /d/p.index")


def test_write_and_read_back_on_a_filesystem_url_is_idempotent():
    url = "memory://reports/run"
    records = sample_records()
    first = write_reports(url, records, META, 1_700_000_001.0)
    again = write_reports(url, list(reversed(records)), META, 1_700_000_001.0)
    assert first == again == read_summary(url)
    back = read_records(url)
    assert sorted(r.prefix for r in back) == sorted(r.prefix for r in records)
    assert {r.prefix: r for r in back}[HOSTILE] == {r.prefix: r for r in records}[HOSTILE]


class _Rows(html.parser.HTMLParser):
    """Text of each <tr> under the element with a given id, plus every element tag seen."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.depth, self.rows, self.tags, self._row = table_id, 0, [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth:
            self.depth += tag != "br"
        if self.depth and tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if self.depth:
            if tag == "tr" and self._row is not None:
                self.rows.append(" ".join(" ".join(self._row).split()))
                self._row = None
            self.depth -= 1

    def handle_data(self, data):
        if self._row is not None:
            self._row.append(data)


def problem_rows(page: str) -> list[str]:
    parser = _Rows("problems")
    parser.feed(page)
    return parser.rows[1:]   # without the header row


def test_html_is_self_contained_and_escaped():
    page = render_html(sample_records(), summarize(sample_records(), META, 1_700_000_002.0))
    parser = _Rows("problems")
    parser.feed(page)
    assert not [t for t, a in parser.tags if t in ("script", "img", "link", "iframe")]
    assert "http://" not in page and "https://" not in page
    rows = problem_rows(page)
    assert len(rows) == 3
    assert any(HOSTILE in row and "no source fits: <b>bold</b> & more" in row for row in rows)


@pytest.fixture(scope="session")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    return path


def render_in_chromium(chromium: str, page_path: str, profile_dir: str) -> str:
    """The DOM after Chromium loaded and laid out the page (what a person's browser would show)."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile_dir}", "--dump-dom",
         f"file://{page_path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_shows_the_problem_rows(chromium, tmp_path):
    records = sample_records()
    write_reports(str(tmp_path / "rep"), records, META, 1_700_000_003.0)
    dom = render_in_chromium(chromium, str(tmp_path / "rep" / "report.html"), str(tmp_path / "profile"))
    rows = problem_rows(dom)
    assert len(rows) == 3
    for record in records:
        if record.needs_a_person:
            assert any(record.prefix in row and record.status in row and record.reason in row for row in rows)
    assert "<title>ckpt-rescue audit: 3 need a person</title>" in dom   # the hostile prefix ran no script
    parser = _Rows("problems")
    parser.feed(dom)
    assert not [t for t, _ in parser.tags if t == "img"]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert f"{summary['counts'][UNRECOVERABLE]}</span>unrecoverable" in dom
