"""The report files: counts that agree, a stable documented schema, part files merged into the
documented files with bounded memory, promote.sh run for real, and the page as Chromium shows it
(hostile object names stay text) at desktop and phone widths."""

import csv
import dataclasses
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from audit_trees import plant_tree
from repo_paths import REPO
from source_helpers import orphan, tree_digest

from pipeline.cli import main as cli_main
from recovery import report
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
from recovery.report import exit_code, read_records, read_summary, render_html, summarize, write_reports
from transforms.report import WriteReports

HOSTILE = '/r/a/<img src=x onerror="document.title=1">ckpt-1'
SCRIPT_DIR = "<script>document.title='owned'<"       # with the next path part: <script>...</script>ckpt-3
DOCS = os.path.join(REPO, "docs", "running.md")


def sample_records() -> list[Record]:
    return [
        Record("/r/a/ckpt-1", HEALTHY, "index reads", "/r/a", data_bytes=100, checks=["index readable"],
               directory="/r/a"),
        Record("/r/a/ckpt-2", REBUILT, "rebuilt from sibling ckpt-1", "/r/a", source="sibling ckpt-1",
               directory="/r/a", index_path="/rep/rebuilt/local/r/a/ckpt-2.index", staged=True, data_bytes=100,
               bytes_scanned=100, command=promote_command("/rep/rebuilt/local/r/a/ckpt-2.index", "/r/a/ckpt-2.index")),
        Record(HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more", "/r/a", data_bytes=7, directory="/r/a",
               refusals=["sibling ckpt-1: accounts for 100 bytes of shard 0 but the file has 7"],
               command=f"ckpt-rescue inspect '{HOSTILE}'"),
        Record("gs://b/run/ckpt-9", INCOMPLETE, "1 of 2 data shard(s) missing (shard 1)", "gs://b/run",
               directory="gs://b/run"),
        Record("gs://b/run/ckpt-8", CORRUPT, "index unreadable: bad magic; staged", "gs://b/run", staged=True,
               directory="gs://b/run", index_path="gs://b/rep/rebuilt/gs/b/run/ckpt-8.index"),
        Record("gs://b/run/ckpt-8_temp/part-00000-of-00001", HEALTHY, "merge input", "gs://b/run", kind="leftover",
               directory="gs://b/run"),
        Record("/r/a/checkpoint", HEALTHY, "all 2 checkpoint(s) it names exist", "/r/a", kind="state-file",
               directory="/r/a", source="ckpt-2"),
    ]


META = {"run_id": "r1", "roots": ["/r/a", "gs://b/run", "/r/empty"], "started": 1_700_000_000.0,
        "command": "ckpt-rescue audit /r/a gs://b/run /r/empty --report-dir /rep", "report_dir": "/rep",
        "options": {"in_place": False}}


def test_summary_counts_every_status_per_root_and_kind_and_the_exit_code():
    records = sample_records()
    summary = summarize(records, META, 1_700_000_012.5)
    assert summary["counts"] == {**dict.fromkeys(STATUSES, 0), HEALTHY: 3, REBUILT: 1, UNRECOVERABLE: 1, CORRUPT: 1,
                                 INCOMPLETE: 1}
    assert summary["per_root"]["/r/a"] == {"records": 4, "counts": {**dict.fromkeys(STATUSES, 0), HEALTHY: 2,
                                                                     REBUILT: 1, UNRECOVERABLE: 1}}
    assert summary["per_root"]["/r/empty"]["records"] == 0     # a root with nothing in it still shows
    assert summary["kinds"] == {"checkpoint": 5, "leftover": 1, "state-file": 1}
    assert summary["checkpoints"] == 5 and summary["needs_a_person"] == 3
    # counts that agree: each kind's row adds up to its count, each status's column to the status count
    for kind, row in summary["per_kind"].items():
        assert sum(row.values()) == summary["kinds"][kind]
    for status in STATUSES:
        assert sum(row[status] for row in summary["per_kind"].values()) == summary["counts"][status]
    assert summary["per_status"][REBUILT] == {"records": 1, "data_bytes": 100, "bytes_scanned": 100, "seconds": 0.0}
    assert summary["duration_seconds"] == 12.5
    assert summary["data_bytes"] == 207 and summary["bytes_scanned"] == 100 and summary["rebuilt_data_bytes"] == 100
    assert summary["staged_indexes"] == 2 and summary["written_in_place"] == 0
    assert summary["exit_code"] == 1 == exit_code(records)
    assert exit_code([r for r in records if r.status in (HEALTHY, REBUILT)]) == 0
    assert summary["version"] and summary["run_id"] == "r1" and summary["command"] == META["command"]


def test_could_not_check_exits_3_unless_something_needs_a_person(tmp_path):
    fine = [r for r in sample_records() if r.status in (HEALTHY, REBUILT)]
    unchecked = Record("s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing", "s3://b/run")
    assert exit_code(fine + [unchecked]) == 3
    assert exit_code(sample_records() + [unchecked]) == 1        # a finding wins over "could not check"
    write_reports(str(tmp_path / "rep"), fine + [unchecked], META, 1_700_000_001.0)
    rows = list(csv.reader(open(tmp_path / "rep" / "failures.csv", newline="")))
    assert rows[1:] == [["s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing"]]


def test_statuses_other_parts_add_are_counted_and_new_record_fields_are_tolerated():
    newer = {**report.record_dict(sample_records()[0]), "status": "stale", "mtime": 1_699_999_000.0,
             "evidence": {"confirmed": ["a"], "cannot_confirm": ["b"], "reference_matched": 1,
                          "reference_total": 2, "matched_keys": ["k"]}, "field_from_the_future": 1}
    record = report.record_from_dict(newer)
    summary = summarize([record], META, 1_700_000_001.0)
    assert summary["counts"]["stale"] == 1 and summary["records"] == 1
    assert set(report.record_dict(record)) == set(report.RECORD_FIELDS)


def test_failures_csv_lists_what_needs_a_person_and_always_has_a_header(tmp_path):
    write_reports(str(tmp_path / "rep"), sample_records(), META, 1_700_000_001.0)
    rows = list(csv.reader(open(tmp_path / "rep" / "failures.csv", newline="")))
    assert rows[0] == ["prefix", "status", "reason"]
    assert sorted(r[1] for r in rows[1:]) == [CORRUPT, INCOMPLETE, UNRECOVERABLE]
    assert [HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more"] in rows
    write_reports(str(tmp_path / "ok"), [Record("/x", HEALTHY, "", "/")], META, 1_700_000_001.0)
    assert (tmp_path / "ok" / "failures.csv").read_text() == "prefix,status,reason\n"


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
    records_text = report.storage.url_to_fs(url)[0].cat_file("/reports/run/records.jsonl")
    again = write_reports(url, list(reversed(records)), META, 1_700_000_001.0)
    assert first == again == read_summary(url)
    assert report.storage.url_to_fs(url)[0].cat_file("/reports/run/records.jsonl") == records_text
    back = read_records(url)
    assert [r.prefix for r in back] == sorted(r.prefix for r in records)
    assert {r.prefix: r for r in back}[HOSTILE] == {r.prefix: r for r in records}[HOSTILE]
    assert not report.storage.url_to_fs(url)[0].exists("/reports/run/parts/r1")   # parts removed


# --- The schema (docs/running.md) -----------------------------------------------------------------

_JSON_TYPES = {"string": str, "boolean": bool, "integer": int, "number": (int, float), "object": dict,
               "array of string": list, "null": type(None)}


def conforms(value, declared: str) -> bool:
    for option in declared.split(" or "):
        expected = _JSON_TYPES[option]
        if option == "integer" and isinstance(value, bool):
            continue
        if isinstance(value, expected) and (option != "array of string" or all(isinstance(v, str) for v in value)):
            return True
    return False


def documented_fields(section: str) -> list:
    """Field names of the schema table under `section` in docs/running.md, in order."""
    text = open(DOCS).read()
    body = text.split(section, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", body, re.MULTILINE)


def test_docs_document_exactly_the_schema():
    assert documented_fields("### records.jsonl fields") == list(report.RECORD_FIELDS)
    assert documented_fields("### summary.json fields") == list(report.SUMMARY_FIELDS)
    text = open(DOCS).read()
    for name, kind, _ in report.RECORD_SCHEMA + report.SUMMARY_SCHEMA:
        assert f"| `{name}` | {kind} |" in text, name


def check_record_line(line: dict) -> None:
    assert list(sorted(line)) == sorted(report.RECORD_FIELDS), set(line) ^ set(report.RECORD_FIELDS)
    for name, kind, _ in report.RECORD_SCHEMA:
        assert conforms(line[name], kind), (name, line[name])
    if line["evidence"]:                  # {} when nothing was rebuilt or fitted
        evidence = line["evidence"]
        assert set(evidence) == {"confirmed", "cannot_confirm", "reference_matched", "reference_total",
                                 "matched_keys"}
        assert all(conforms(evidence[k], "array of string") for k in ("confirmed", "cannot_confirm", "matched_keys"))
        assert conforms(evidence["reference_matched"], "integer") and conforms(evidence["reference_total"], "integer")


# --- Through the real pipeline on TensorFlow-written checkpoints ---------------------------------------

@pytest.fixture(scope="module")
def audited(pristine_family, tmp_path_factory):
    """The planted tree plus run directories with hostile names, audited by two worker processes."""
    base = tmp_path_factory.mktemp("report")
    planted = plant_tree(pristine_family, str(base / "tree"), str(base / "registry"))
    adam = pristine_family("keras3_adam")
    hostile_dir = os.path.join(planted.root, "runs", SCRIPT_DIR, "script>adam")
    shutil.copytree(os.path.dirname(adam.prefix), hostile_dir)
    hostile_latest = os.path.join(hostile_dir, os.path.basename(adam.prefix))
    planted.originals[hostile_latest] = orphan(hostile_latest)
    shutil.copytree(os.path.dirname(adam.prefix), os.path.join(planted.root, "runs", "intact"))
    lone = os.path.join(planted.root, "decoys", '<img src=x onerror="document.title=1">ckpt-7')
    shutil.copy(adam.siblings[0] + ".data-00000-of-00001", lone + ".data-00000-of-00001")
    aged = time.time() - 2 * 86400      # saved two days ago: no save in progress, and an age to show
    for directory, _, files in os.walk(planted.root):
        for name in files:
            os.utime(os.path.join(directory, name), (aged, aged))
    reports = str(base / "reports")
    code = cli_main(["audit", planted.root, "--report-dir", reports, "--registry", planted.registry,
                     "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    return planted, reports, code, hostile_latest, lone


def test_every_record_written_has_exactly_the_documented_fields_and_types(audited):
    _, reports, _, _, _ = audited
    with open(os.path.join(reports, "records.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert lines
    for line in lines:
        check_record_line(line)
    summary = read_summary(reports)
    assert list(sorted(summary)) == sorted(report.SUMMARY_FIELDS)
    for name, kind, _ in report.SUMMARY_SCHEMA:
        assert conforms(summary[name], kind), name


def test_report_files_agree_and_no_part_is_left(audited):
    planted, reports, code, hostile_latest, lone = audited
    records = read_records(reports)
    summary = read_summary(reports)
    assert code == summary["exit_code"] == 1
    assert summary["records"] == len(records)
    assert summary["counts"] == {s: sum(r.status == s for r in records) for s in summary["counts"]}
    assert summary["rebuilt_data_bytes"] == sum(r.data_bytes for r in records if r.status == REBUILT) > 0
    by_prefix = {r.prefix: r for r in records}
    assert by_prefix[hostile_latest].status == REBUILT and by_prefix[lone].status == UNRECOVERABLE
    assert [r.prefix for r in records] == sorted(r.prefix for r in records)
    assert {"failures.csv", "promote.sh", "rebuilt", "records.jsonl", "report.html", "summary.json"} <= set(
        os.listdir(reports))
    assert "parts" not in os.listdir(reports) and not [n for n in os.listdir(reports) if ".tmp-" in n]


def test_promote_sh_installs_every_staged_index_and_never_overwrites(audited, tmp_path):
    planted, reports, _, _, _ = audited
    tree = str(tmp_path / "tree")
    shutil.copytree(planted.root, tree)
    script = open(os.path.join(reports, "promote.sh")).read()      # targets moved to the copy of the tree:
    script = script.replace(f" {planted.root}/", f" {tree}/").replace(f" '{planted.root}/", f" '{tree}/")
    (tmp_path / "promote.sh").write_text(script)
    staged = [r for r in read_records(reports) if r.status == REBUILT and r.staged]
    assert len(staged) == len(planted.originals) >= 4
    taken = staged[0].prefix.replace(planted.root, tree) + ".index"
    with open(taken, "wb") as f:           # someone wrote an index there after the audit
        f.write(b"theirs")
    before = tree_digest(tree)

    dry = subprocess.run(["sh", str(tmp_path / "promote.sh"), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert tree_digest(tree) == before and dry.stdout.count("would promote: ") == len(staged) - 1

    done = subprocess.run(["sh", str(tmp_path / "promote.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert open(taken, "rb").read() == b"theirs"
    assert f"left alone (an index is already there): {taken}" in done.stdout
    for record in staged[1:]:
        target = record.prefix.replace(planted.root, tree) + ".index"
        assert f"promoted: {target}" in done.stdout
        assert open(target, "rb").read() == planted.originals[record.prefix]
    assert f"promote.sh: {len(staged) - 1} promoted, 1 already had an index (left alone)" in done.stdout
    after = tree_digest(tree)
    assert {k: v for k, v in after.items() if k in before} == before     # nothing that existed changed

    again = subprocess.run(["sh", str(tmp_path / "promote.sh")], capture_output=True, text=True)
    assert again.returncode == 0 and tree_digest(tree) == after
    assert f"promote.sh: 0 promoted, {len(staged)} already had an index" in again.stdout

    shutil.rmtree(os.path.dirname(taken))     # a target directory gone: a failure, said, and exit 1
    gone = subprocess.run(["sh", str(tmp_path / "promote.sh")], capture_output=True, text=True)
    assert gone.returncode == 1 and "FAILED (nothing overwritten)" in gone.stdout


def test_runs_show_the_latest_step_and_whether_latest_checkpoint_resolves(audited):
    planted, reports, _, hostile_latest, _ = audited
    rows = table_rows(open(os.path.join(reports, "report.html")).read(), "runs")
    adam = next(row for row in rows if row.startswith("runs/adam "))
    step = re.search(r"-(\d+)$", next(p for p in planted.originals if "/runs/adam/" in p))[1]
    # The state file names the orphan as latest: TensorFlow returns None now, the checkpoint after promotion
    assert f"{step} rebuilt" in adam and f"no ckpt-{step} yes ckpt-{step}" in adam
    intact = next(row for row in rows if row.startswith("runs/intact "))
    assert f"{step} healthy" in intact and f"yes ckpt-{step} yes ckpt-{step}" in intact
    registry = next(row for row in rows if row.startswith("runs/registry "))
    assert "no state file no state file" in registry


# --- The page in a browser ----------------------------------------------------------------------

class _Rows(html.parser.HTMLParser):
    """Text of each <tr> under the element with a given id, plus every element tag seen."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.depth, self.rows, self.tags, self._row = table_id, 0, [], [], None
        self.hidden = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth:
            self.depth += tag not in ("br", "input")
        if self.depth and tag == "tr":
            self._row = []
            self.hidden.append("hidden" in dict(attrs))

    def handle_endtag(self, tag):
        if self.depth:
            if tag == "tr" and self._row is not None:
                self.rows.append(" ".join(" ".join(self._row).split()))
                self._row = None
            self.depth -= 1

    def handle_data(self, data):
        if self._row is not None:
            self._row.append(data)


def table_rows(page: str, table_id: str, visible_only=False) -> list[str]:
    parser = _Rows(table_id)
    parser.feed(page)
    rows = list(zip(parser.rows, parser.hidden))[1:]   # without the header row
    return [row for row, hidden in rows if not (visible_only and hidden)]


def test_html_is_self_contained_and_escaped():
    records = sample_records()
    page = render_html(records, summarize(records, META, 1_700_000_002.0))
    parser = _Rows("problems")
    parser.feed(page)
    scripts = [a for t, a in parser.tags if t == "script"]
    assert scripts == [{}]                        # one inline script, no src
    assert not [t for t, a in parser.tags if t in ("img", "link", "iframe")]
    assert "http://" not in page and "https://" not in page
    assert "Content-Security-Policy" in page and report._script_hash(report._SCRIPT) in page
    rows = table_rows(page, "problems")
    assert len(rows) == 3
    assert any("<img" in row and "no source fits: <b>bold</b> & more" in row for row in rows)
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;ckpt-1" in page


def test_the_page_bounds_what_it_holds_and_points_to_the_rest(tmp_path, monkeypatch):
    """Many records needing a person, through WriteReports on Beam with parts of 7 lines: the page
    shows HTML_SAMPLES_PER_CAUSE per cause, the files have every record, merged in order."""
    monkeypatch.setattr(report, "PART_LINES", 7)
    records = [Record(f"/r/run{i % 3}/ckpt-{i}", UNRECOVERABLE, f"no source fits: shard {i} has {i * 7} bytes",
                      "/r", directory=f"/r/run{i % 3}", command=f"ckpt-rescue inspect /r/run{i % 3}/ckpt-{i}")
               for i in range(90)]
    records += [Record(f"/r/run0/ckpt-{i}", REBUILT, "rebuilt", "/r", directory="/r/run0", staged=True,
                       index_path=f"/rep/rebuilt/r/run0/ckpt-{i}.index", data_bytes=i) for i in range(90, 95)]
    meta = {**META, "roots": ["/r"], "run_id": "bounded"}
    reports = str(tmp_path / "rep")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = p | beam.Create(records) | WriteReports(reports, meta)
    page = open(os.path.join(reports, "report.html")).read()
    assert len(table_rows(page, "problems")) == report.HTML_SAMPLES_PER_CAUSE
    assert table_rows(page, "causes") == ["unrecoverable no source fits 90"]
    assert "all 90 are in" in page
    lines = open(os.path.join(reports, "records.jsonl")).read().splitlines()
    assert [json.loads(line)["prefix"] for line in lines] == sorted(r.prefix for r in records)
    assert len(open(os.path.join(reports, "failures.csv")).read().splitlines()) == 91
    assert open(os.path.join(reports, "promote.sh")).read().count("\npromote ") == 5
    assert read_summary(reports)["counts"][UNRECOVERABLE] == 90
    assert not os.path.exists(os.path.join(reports, "parts"))


def test_an_empty_audit_still_writes_every_file(tmp_path):
    reports = str(tmp_path / "rep")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = p | beam.Create([], reshuffle=False).with_output_types(Record) | WriteReports(reports, META)
    assert open(os.path.join(reports, "records.jsonl")).read() == ""
    assert open(os.path.join(reports, "failures.csv")).read() == "prefix,status,reason\n"
    assert read_summary(reports)["records"] == 0 and read_summary(reports)["exit_code"] == 0
    done = subprocess.run(["sh", os.path.join(reports, "promote.sh")], capture_output=True, text=True)
    assert done.returncode == 0 and "0 promoted" in done.stdout


@pytest.fixture(scope="session")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    return path


def _chromium(chromium: str, profile_dir: str, *args) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile_dir}",
         *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def render_in_chromium(chromium: str, url: str, profile_dir: str) -> str:
    """The DOM after Chromium loaded the page and ran its script (what a person's browser shows)."""
    return _chromium(chromium, profile_dir, "--dump-dom", url).stdout


def png_size(path: str) -> tuple:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_chromium_shows_the_audit_and_runs_no_hostile_name(chromium, audited, tmp_path):
    planted, reports, _, hostile_latest, lone = audited
    page = os.path.join(reports, "report.html")
    dom = render_in_chromium(chromium, f"file://{page}", str(tmp_path / "profile"))
    summary = read_summary(reports)
    assert f"<title>ckpt-rescue audit: {summary['needs_a_person']} need a person</title>" in dom   # no script ran
    problems = table_rows(dom, "problems")
    for record in read_records(reports):
        if record.needs_a_person:
            assert any(report.relative(record.prefix, record.root) in row and record.status in row
                       for row in problems), record.prefix
    assert any("<img src=x" in row for row in problems)
    rebuilt = table_rows(dom, "rebuilt")
    assert any("<script>document.title='owned'</script>adam" in row for row in rebuilt)
    assert not [a for t, a in _tags(dom) if t == "img"]
    assert [a for t, a in _tags(dom) if t == "script"] == [{}]
    assert f"{summary['rebuilt_data_bytes'] and report.human_bytes(summary['rebuilt_data_bytes'])} across " \
           f"{summary['counts']['rebuilt']} checkpoints recovered" in dom
    assert "<svg" in dom and 'class="s-rebuilt"' in dom

    # the filter runs in the page: #q= fills it, rows that do not match are hidden
    filtered = render_in_chromium(chromium, f"file://{page}#q=registry", str(tmp_path / "profile"))
    visible = table_rows(filtered, "runs", visible_only=True)
    assert visible and all("registry" in row for row in visible)
    assert len(table_rows(filtered, "runs")) > len(visible)

    # clicking a header sorts (#sort=TABLE:COLUMN[:desc] clicks it on load): checkpoints per run, both ways
    def checkpoints(url):
        rows = table_rows(render_in_chromium(chromium, url, str(tmp_path / "profile")), "runs")
        return [int(re.search(r" copy (\d+) ", f" {row} ")[1]) for row in rows]

    down = checkpoints(f"file://{page}#sort=runs:1:desc")
    assert down == sorted(down, reverse=True) and len(set(down)) > 1
    assert checkpoints(f"file://{page}#sort=runs:1") == sorted(down)


def _tags(page: str) -> list:
    parser = _Rows("-")
    parser.feed(page)
    return parser.tags


@pytest.mark.parametrize("width,height", [(1280, 2400), (390, 3200)], ids=["desktop", "phone"])
def test_screenshots_at_desktop_and_phone_widths(chromium, audited, tmp_path, width, height):
    """Screenshots for a person to look at (kept under the test's tmp dir); the page must lay out."""
    _, reports, _, _, _ = audited
    shot = tmp_path / f"report-{width}.png"
    _chromium(chromium, str(tmp_path / "profile"), f"--window-size={width},{height}", f"--screenshot={shot}",
              f"file://{os.path.join(reports, 'report.html')}")
    assert png_size(str(shot)) == (width, height)
    assert os.path.getsize(shot) > 20_000       # a rendered page, not a blank one
    print(f"screenshot: {shot}")


@dataclasses.dataclass(frozen=True)
class NewerRecord(Record):
    """Record as the evidence and mtime work shapes it (fields merged in from other branches)."""

    evidence: dict | None = None
    mtime: float | None = None


def test_evidence_and_age_show_when_the_records_carry_them(tmp_path):
    now = 1_700_000_000.0
    evidence = {"confirmed": ["object graph equals sibling ckpt-1's"], "cannot_confirm": ["<values> of 3 tensors"],
                "reference_matched": 9, "reference_total": 12, "matched_keys": ["a"]}
    records = [NewerRecord("/r/a/ckpt-2", REBUILT, "rebuilt", "/r/a", directory="/r/a", source="sibling ckpt-1",
                           staged=True, index_path="/rep/x.index", data_bytes=3 << 30, seconds=1.5,
                           evidence=evidence, mtime=now - 2 * 86400),
               NewerRecord("/r/a/ckpt-3", UNRECOVERABLE, "no source fits: x", "/r/a", directory="/r/a",
                           mtime=now - 5 * 3600)]
    line = json.loads(report.record_line(records[0]))
    check_record_line(line)
    assert line["evidence"] == evidence and line["mtime"] == now - 2 * 86400
    page = render_html(records, summarize(records, {**META, "roots": ["/r/a"]}, now))
    rebuilt = table_rows(page, "rebuilt")[0]
    assert "1 confirmed, 1 cannot be; 9 of 12 tensors match a reference CRC" in rebuilt
    assert "&lt;values&gt; of 3 tensors" in page and " 12 3.0 GiB 1.50 2 d " in f" {rebuilt} "
    assert table_rows(page, "problems")[0].endswith("5 h")
    assert "3.0 GiB across 1 checkpoint recovered" in page
