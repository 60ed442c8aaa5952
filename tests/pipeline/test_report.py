"""The report of a whole audit: TensorFlow-written checkpoints audited by two worker processes, the
files that agree, promote.sh run for real, the page as Chromium shows it (hostile object names stay
text) at desktop and phone widths, and the page's bounds through WriteReports on Beam. Each module of
recovery/report/ is tested alone in tests/recovery/report/."""

import json
import os
import re
import shlex
import shutil
import struct
import subprocess

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from audit_trees import plant_tree
from command_helpers import NO_TOOL, run_printed, run_script
from report_helpers import META, check_record_line, conforms, table_rows, tags
from source_helpers import orphan

from pipeline.cli import main as cli_main
from recovery.records import REBUILT, UNRECOVERABLE, Record, promote_command, replace_command
from recovery.report import parts
from recovery.report.aggregates import HTML_SAMPLES_PER_CAUSE, cause_of
from recovery.report.page import human_bytes, relative
from recovery.report.readback import read_records, read_summary
from recovery.report.schema import SUMMARY_FIELDS, SUMMARY_SCHEMA
from transforms.report import Batched, WriteReports

SCRIPT_DIR = "<script>document.title='owned'<"       # with the next path part: <script>...</script>ckpt-3


def test_commands_never_overwrite():
    assert promote_command("/rep", "/data/p 1") == "ckpt-rescue promote /rep '/data/p 1'"
    assert promote_command("gs://b/rep", "s3://b/run/p") == "ckpt-rescue promote gs://b/rep s3://b/run/p"
    assert replace_command("/rep", "/d/p 1") == "ckpt-rescue promote /rep '/d/p 1' --replace"


# --- Through the real pipeline on TensorFlow-written checkpoints ---------------------------------------

SAVED = 1_796_400_000.0     # when the planted tree's files were saved (2026-12-04T16:00Z), set on them explicitly


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
    for directory, _, files in os.walk(planted.root):
        for name in files:
            os.utime(os.path.join(directory, name), (SAVED, SAVED))
    reports = str(base / "reports")
    with pytest.MonkeyPatch.context() as env:     # the audit's clock, two days after the save: none in progress
        env.setenv("CKPT_RESCUE_NOW", str(SAVED + 2 * 86400))
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
    assert list(sorted(summary)) == sorted(SUMMARY_FIELDS)
    for name, kind, _ in SUMMARY_SCHEMA:
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

def test_the_page_bounds_what_it_holds_and_points_to_the_rest(tmp_path, monkeypatch):
    """Many records needing a person, through WriteReports on Beam with parts of 7 lines: the page
    shows HTML_SAMPLES_PER_CAUSE per cause, the files have every record, merged in order."""
    monkeypatch.setattr(parts, "PART_LINES", 7)
    records = [Record(f"/r/run{i % 3}/ckpt-{i}", UNRECOVERABLE, f"no source fits: shard {i} has {i * 7} bytes",
                      "/r", directory=f"/r/run{i % 3}", command=f"ckpt-rescue inspect /r/run{i % 3}/ckpt-{i}")
               for i in range(90)]
    records += [Record(f"/r/run0/ckpt-{i}", REBUILT, "rebuilt", "/r", directory="/r/run0", staged=True,
                       index_path=f"/rep/rebuilt/r/run0/ckpt-{i}.index", data_bytes=i) for i in range(90, 95)]
    meta = {**META, "roots": ["/r"], "run_id": "bounded"}
    reports = str(tmp_path / "rep")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = p | beam.Create(records) | Batched() | WriteReports(reports, meta)
    page = open(os.path.join(reports, "report.html")).read()
    (row,) = table_rows(page, "problems")                          # one cause, one row
    assert row.count("next: ckpt-rescue inspect") == HTML_SAMPLES_PER_CAUSE and " 90 " in row
    assert f"and {90 - HTML_SAMPLES_PER_CAUSE} more in failures.csv" in row
    assert "All 90 are in" in page
    lines = open(os.path.join(reports, "records.jsonl")).read().splitlines()
    assert [json.loads(line)["prefix"] for line in lines] == sorted(r.prefix for r in records)
    assert len(open(os.path.join(reports, "failures.csv")).read().splitlines()) == 91
    assert open(os.path.join(reports, "promote.sh")).read().count("\npromote ") == 5
    assert read_summary(reports)["counts"][UNRECOVERABLE] == 90
    assert not os.path.exists(os.path.join(reports, "parts"))


def test_an_empty_audit_still_writes_every_file(tmp_path):
    reports = str(tmp_path / "rep")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        _ = p | beam.Create([], reshuffle=False).with_output_types(Record) | Batched() | WriteReports(reports, META)
    assert open(os.path.join(reports, "records.jsonl")).read() == ""
    assert open(os.path.join(reports, "failures.csv")).read() == "prefix,status,reason\n"
    summary = read_summary(reports)
    assert summary["records"] == 0 and summary["exit_code"] == 4    # nothing checked: never a quiet 0
    assert summary["warnings"][0].startswith("nothing was judged")
    for env in ({}, NO_TOOL):
        done = run_script(os.path.join(reports, "promote.sh"), **env)
        assert done.returncode == 0 and done.stdout.startswith("done: 0 promoted"), done.stdout + done.stderr


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
         *args], capture_output=True, text=True, timeout=600)
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
            assert any(relative(record.prefix, record.root) in row and record.status in row
                       for row in problems), record.prefix
    assert any("<img src=x" in row for row in problems)
    rebuilt = table_rows(dom, "rebuilt")
    assert any("<script>document.title='owned'</script>adam" in row for row in rebuilt)
    assert not [a for t, a in tags(dom) if t == "img"]
    assert [a for t, a in tags(dom) if t == "script"] == [{}]
    assert f"{summary['rebuilt_data_bytes'] and human_bytes(summary['rebuilt_data_bytes'])} across " \
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


LAYOUT = """(() => {
  const fold = window.innerHeight, el = document.documentElement;
  const top = s => { const e = document.querySelector(s); return e ? e.getBoundingClientRect().top + scrollY : null; };
  const wide = Array.from(document.querySelectorAll('body *')).filter(e => {
    const r = e.getBoundingClientRect(); return r.width > 0 && r.right > el.clientWidth + 1 && !e.closest('.scroll'); })
    .map(e => e.tagName + '.' + e.className);
  return {overflow: el.scrollWidth - el.clientWidth, fold: fold, verdict: top('#verdict'), changes: top('#changes'),
          groups: Array.from(document.querySelectorAll('#changes details')).map(d => d.id),
          totals: top('#totals'), wide: wide.slice(0, 5),
          problem_rows: document.querySelectorAll('#problems tbody tr').length,
          copies: Array.from(document.querySelectorAll('[data-command]')).every(
              c => c.nextElementSibling && c.nextElementSibling.dataset.copy === c.dataset.command)};
})()"""


@pytest.fixture(scope="module")
def second_night(audited, tmp_path_factory):
    """The planted tree audited two nights with a vault; between them a checkpoint rotated away, a healthy
    index lost, and a staged rebuild promoted with its record's command: the page has all of "what changed"."""
    from nightly_helpers import T0, audit_night, set_times

    planted, _, _, _, _ = audited
    base = tmp_path_factory.mktemp("nights")
    root, vault, reports = str(base / "tree"), str(base / "vault"), str(base / "reports")
    shutil.copytree(planted.root, root)
    set_times(root, T0 - 86400)
    first = audit_night(root, reports, 1, "--registry", planted.registry, vault=vault)
    intact = os.path.join(root, "runs", "intact")
    prefixes = sorted({n.split(".")[0] for n in os.listdir(intact) if n.endswith(".index")})
    for name in os.listdir(intact):
        if name.startswith(prefixes[0] + "."):
            os.remove(os.path.join(intact, name))            # rotated away
    os.remove(os.path.join(intact, prefixes[1] + ".index"))      # lost by a sync
    staged = next(r for r in first.records.values() if r.status == REBUILT and r.staged)
    assert run_printed(staged.command).returncode == 0          # promoted as its record says
    second = audit_night(root, reports, 2, "--registry", planted.registry, vault=vault)
    assert {"new", "deleted", "resolved"} <= {k for k, v in second.summary["changes"].items() if v}
    return second.report


@pytest.mark.parametrize("where", ["audited", "copied", "second-night"])
@pytest.mark.parametrize("width,height,mobile", [(1280, 900, False), (390, 844, True)], ids=["desktop", "phone"])
def test_the_page_lays_out_at_desktop_and_phone_widths(chromium, request, tmp_path, width, height, mobile, where):
    """No horizontal overflow at phone width, the verdict and totals above the fold, one row per cause, every
    command with its full text one copy away; the same for a copy of the report in another directory, and for
    a second night's report, whose "what changed" is above the fold too, new first.
    Screenshots are kept for a person to look at."""
    from browser import Page

    if where == "second-night":
        reports = request.getfixturevalue("second_night")
    else:
        reports = request.getfixturevalue("audited")[1]
    if where == "copied":
        reports = shutil.copytree(reports, str(tmp_path / "elsewhere" / "report"))
    causes = {(r.status, cause_of(r)) for r in read_records(reports) if r.needs_a_person}
    with Page(f"file://{os.path.join(reports, 'report.html')}", width, height, mobile) as page:
        layout = page.evaluate(LAYOUT)
        promotes = page.evaluate("Array.from(document.querySelectorAll('[data-command]')).map(e => e.dataset.command)"
                                 ".filter(c => c.startsWith('ckpt-rescue promote '))")
        shot = page.screenshot(str(tmp_path / f"report-{where}-{width}.png"))
        page.screenshot(str(tmp_path / f"report-{where}-{width}-problems.png"),
                        top=page.evaluate("document.querySelector('#problems').getBoundingClientRect().top + scrollY"),
                        height=height)
    print(f"screenshot: {shot}")
    assert layout["overflow"] <= 0 and not layout["wide"], layout
    assert layout["verdict"] is not None and layout["totals"] < layout["fold"], layout
    if where == "second-night":
        assert layout["verdict"] < layout["changes"] < layout["fold"], layout
        assert layout["groups"][0] == "changes-new" and "changes-resolved" in layout["groups"], layout
    else:
        assert layout["changes"] is None, layout     # a first night has nothing to compare with
    assert layout["problem_rows"] == len(causes), layout
    assert layout["copies"], layout
    assert png_size(shot) == (width, height) and os.path.getsize(shot) > 20_000
    # a record's promote command names the report directory this page is in (also a copy), and works from there
    assert promotes and all(c.startswith(f"ckpt-rescue promote {shlex.quote(reports)} ") for c in promotes), promotes
    if where == "copied":
        dry = run_printed(promotes[0] + " --dry-run")
        assert dry.returncode == 0 and f"would promote: {reports}/rebuilt/" in dry.stdout, dry.stdout + dry.stderr


