"""The audit end to end on local directories: DirectRunner multi-processing, every report field,
nothing pre-existing changed, re-runs idempotent, and a rebuilt index TensorFlow can read."""

import csv
import dataclasses
import json
import os
import shlex
import shutil

import pytest
from audit_trees import plant_tree
from command_helpers import run_printed
from source_helpers import tree_digest

from pipeline.cli import main as cli_main
from recovery.records import NEEDS_A_PERSON, STATUSES
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def planted(pristine_family, tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-local")
    return plant_tree(pristine_family, str(base / "tree"), str(base / "registry"))


@pytest.fixture(scope="module")
def first_run(planted, tmp_path_factory):
    """One audit of the planted tree with two worker processes: (exit code, stdout, report dir, digests)."""
    import contextlib
    import io

    report = str(tmp_path_factory.mktemp("audit-local-report") / "report")
    before = tree_digest(planted.root)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["audit", planted.root, "--report-dir", report, "--registry", planted.registry,
                         "--min-age", "0", "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    return code, out.getvalue(), report, before, tree_digest(planted.root)


def by_prefix(report: str) -> dict:
    return {r.prefix: r for r in read_records(report)}


def test_every_prefix_gets_the_record_its_damage_calls_for(planted, first_run):
    code, _, report, _, _ = first_run
    records = by_prefix(report)
    assert set(records) == set(planted.expected)
    for prefix, (status, kind, words) in planted.expected.items():
        record = records[prefix]
        assert (record.status, record.kind) == (status, kind), (prefix, record.reason)
        assert words in record.source + record.reason, (prefix, record.source, record.reason)
        assert record.root == planted.root
        assert record.directory == os.path.dirname(prefix.split("_temp/")[0])
        assert record.reason
        assert (record.command != "") == (record.status != "healthy"), prefix
    assert code == 1   # the decoys need a person
    # Random bytes named like a data file: a registered layout places its first tensors inside them, but
    # nothing ties it to the bytes, so no salvage is offered; what was read to find that out is counted.
    decoy = records[os.path.join(planted.root, "decoys", "random")]
    assert decoy.salvage == {} and "salvageable" not in decoy.reason, decoy.reason
    assert decoy.bytes_scanned == 4096


def test_rebuilt_indexes_are_staged_byte_identical_and_promotable(planted, first_run):
    _, _, report, _, _ = first_run
    records = by_prefix(report)
    for prefix, original in planted.originals.items():
        record = records[prefix]
        assert record.staged and record.index_path.startswith(os.path.join(report, "rebuilt") + "/")
        with open(record.index_path, "rb") as f:
            assert f.read() == original, prefix
        assert record.command == f"ckpt-rescue promote {report} {prefix}"
        assert record.data_files == 1 and record.data_bytes == os.path.getsize(prefix + ".data-00000-of-00001")
        assert record.bytes_scanned == record.data_bytes    # one streaming pass over the data
        assert record.checks and record.seconds > 0
        assert not os.path.exists(prefix + ".index")        # staged means nothing written beside the data


def test_nothing_that_existed_before_changed(first_run):
    _, _, _, before, after = first_run
    assert after == before


def test_summary_failures_and_html_agree_with_the_records(planted, first_run):
    code, stdout, report, _, _ = first_run
    records = read_records(report)
    summary = json.load(open(os.path.join(report, "summary.json")))
    assert summary["exit_code"] == code
    assert summary["counts"] == {s: sum(r.status == s for r in records) for s in STATUSES}
    assert summary["records"] == len(records) == len(planted.expected)
    assert summary["per_root"] == {planted.root: {"records": len(records), "counts": summary["counts"]}}
    assert summary["bytes_scanned"] == sum(r.bytes_scanned for r in records) > 0
    assert summary["data_bytes"] == sum(r.data_bytes for r in records)
    assert summary["staged_indexes"] == len(planted.originals)
    assert summary["duration_seconds"] > 0 and summary["version"] and summary["roots"] == [planted.root]
    assert summary["command"].startswith(f"ckpt-rescue audit {planted.root} --report-dir {report}")
    assert "multi_processing, 2 worker(s)" in summary["options"]["runner"]

    with open(os.path.join(report, "failures.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["prefix", "status", "reason"]
    assert sorted(rows[1:]) == sorted([r.prefix, r.status, r.reason] for r in records if r.status in NEEDS_A_PERSON)

    page = open(os.path.join(report, "report.html")).read()
    for record in records:
        if record.status in NEEDS_A_PERSON:
            assert record.prefix in page
    for line in (f"rebuilt {summary['counts']['rebuilt']}", "status_rebuilt=3", "rebuild_ms n=4",
                 f"report: {report}/report.html"):
        assert line in stdout


def test_record_lines_carry_every_field(first_run):
    _, _, report, _, _ = first_run
    with open(os.path.join(report, "records.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    fields = {"prefix", "status", "reason", "source", "index_path", "root", "kind", "directory", "staged",
              "data_files", "data_bytes", "bytes_scanned", "checks", "refusals", "command", "rehearsal", "seconds",
              "evidence", "mtime", "salvage", "change", "since", "carried_from"}
    assert all(set(line) == fields for line in lines)
    rebuilt = [line for line in lines if line["status"] == "rebuilt"]
    assert rebuilt and all(line["evidence"]["confirmed"] and line["evidence"]["reference_total"] for line in rebuilt)
    assert all(isinstance(line["mtime"], float) for line in lines)   # every record here stands for listed files
    assert [line["prefix"] for line in lines] == sorted(line["prefix"] for line in lines)


def test_promote_command_makes_tensorflow_read_the_checkpoint(planted, first_run, tmp_path):
    import tensorflow as tf

    _, _, report, _, _ = first_run
    records = by_prefix(report)
    for prefix in planted.originals:
        copy_dir = tmp_path / os.path.basename(os.path.dirname(prefix))
        shutil.copytree(os.path.dirname(prefix), copy_dir)
        command = records[prefix].command
        assert shlex.split(command)[:2] == ["ckpt-rescue", "promote"] and shlex.split(command)[-1] == prefix
        done = run_printed(f"{command} --root-map {shlex.quote(os.path.dirname(prefix))}={shlex.quote(str(copy_dir))}")
        assert done.returncode == 0, done.stdout + done.stderr
        reader = tf.train.load_checkpoint(str(copy_dir / os.path.basename(prefix)))
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)   # checks every tensor's CRC


def test_rerun_with_the_report_inside_the_root_is_idempotent(planted, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(planted.root, tree)
    report = tree / "_audit"      # inside the root: its staged indexes must not be taken for checkpoints
    argv = ["audit", str(tree), "--report-dir", str(report), "--registry", planted.registry, "--min-age", "0",
            "--direct_running_mode=in_memory"]
    assert cli_main(argv) == 1
    first = {r.prefix: r for r in read_records(str(report))}
    staged = tree_digest(str(report / "rebuilt"))
    before = tree_digest(str(tree), skip=str(report))
    assert cli_main(argv) == 1
    second = {r.prefix: r for r in read_records(str(report))}
    assert set(first) == set(second) and len(first) == len(planted.expected)
    for prefix, record in first.items():
        same = {"seconds": 0, "since": ""}      # each run is the first that saw it: no previous run is known
        assert dataclasses.replace(record, **same) == dataclasses.replace(second[prefix], **same)
    assert tree_digest(str(report / "rebuilt")) == staged
    assert tree_digest(str(tree), skip=str(report)) == before
