"""The same pipeline through Beam's portable runner (the Job API path Flink takes), failures inside
DoFns as records, and usage errors as exit code 2 before anything runs."""

import os
import shutil

import pytest
from source_helpers import orphan

from pipeline.cli import main as cli_main
from pipeline.options import audit_flags, load_profile
from pipeline.preflight import local_tree_size
from recovery import storage
from recovery.report.readback import read_records, read_summary

pytestmark = pytest.mark.slow


@pytest.mark.tf
def test_portable_runner_over_the_job_api(pristine_family, tmp_path):
    family = pristine_family("keras3_adam")
    tree = tmp_path / "tree"
    run = tree / "run"
    shutil.copytree(os.path.dirname(family.prefix), run)
    prefix = str(run / os.path.basename(family.prefix))
    original = orphan(prefix)
    # a data file that is a dangling symlink: the listing gives it a record of its own, never opens it
    os.symlink(str(tmp_path / "gone"), run / "ckpt-7.data-00000-of-00001")
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    (other_root / "notes.txt").write_text("no checkpoints here")
    report = tmp_path / "report"

    code = cli_main(["audit", str(tree), str(other_root), "--report-dir", str(report), "--min-age", "0",
                     "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"])
    assert code == 1
    records = {r.prefix: r for r in read_records(str(report))}
    assert {r.root for r in records.values()} == {str(tree)}
    assert records[prefix].status == "rebuilt"
    with open(records[prefix].index_path, "rb") as f:
        assert f.read() == original
    dangling = str(run / "ckpt-7.data-00000-of-00001")
    failed = records[dangling]
    assert (failed.status, failed.kind) == ("unrecoverable", "listing")
    assert "named like a checkpoint's data file: the file it pointed at is gone" in failed.reason
    assert failed.command == f"ls -l -- {dangling}" and str(run / "ckpt-7") not in records
    summary = read_summary(str(report))
    assert summary["options"]["runner"] == "PortableRunner" and summary["exit_code"] == 1
    assert summary["per_root"][str(other_root)]["records"] == 0
    assert summary["per_root"][str(tree)]["records"] == len(records)


@pytest.mark.tf
def test_memory_filesystem_in_one_process_and_detached_submission(pristine_family, capsys):
    """memory:// (notebooks, tests) runs in one process; --detach returns once the job is submitted."""
    from storage_servers import upload_tree

    family = pristine_family("mixed_dtypes")
    upload_tree(os.path.dirname(family.prefix), "memory://nb/run")
    fs, _ = storage.url_to_fs("memory://nb")
    original = storage.read_bytes(fs, "/nb/run/" + os.path.basename(family.prefix) + ".index")
    fs.rm("/nb/run/" + os.path.basename(family.prefix) + ".index")

    assert cli_main(["audit", "memory://nb/run", "--report-dir", "memory://nb/report", "--min-age", "0",
                     "--detach"]) == 0
    assert "submitted" in capsys.readouterr().out
    records = {r.prefix: r for r in read_records("memory://nb/report")}
    rebuilt = records[storage.display(fs, "/nb/run/" + os.path.basename(family.prefix))]   # memory:///nb/...
    assert rebuilt.status == "rebuilt" and rebuilt.staged
    assert storage.read_bytes(fs, rebuilt.index_path) == original
    assert "in_memory" in read_summary("memory://nb/report")["options"]["runner"]


def test_usage_errors_exit_2_before_anything_runs(tmp_path, capsys):
    report = str(tmp_path / "report")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "outer" / "inner").mkdir(parents=True)
    bad_registry = tmp_path / "registry.yaml"
    bad_registry.write_text("architectures:\n  broken:\n    builder: no_such_module:build\n")
    (tmp_path / "not-a-report").mkdir()
    (tmp_path / "outer" / "inner" / "notes.txt").write_text("someone else's files")
    cases = [
        (["audit", str(tmp_path / "a-file"), "--report-dir", report], "is a file"),
        (["audit", str(tmp_path)], "--report-dir"),
        (["audit", "--report-dir", report], "at least one ROOT"),
        (["audit", str(tmp_path), "--report-dir", report, "--runnner=DataflowRunner"], "did you mean --runner"),
        (["audit", str(tmp_path), "--report-dir", report, "--registry", str(bad_registry)], "registry"),
        (["audit", str(tmp_path), "--report-dir", report, "--profile", "nope"], "no runner profile"),
        (["audit", str(tmp_path), "--report-dir", str(tmp_path / "a-file")], "is a file"),
        (["audit", str(tmp_path), "--report-dir", report, "--split-bytes", "lots"], "invalid size value"),
        (["audit", str(tmp_path / "outer" / "inner"), "--report-dir", str(tmp_path / "outer")], "contains the root"),
        (["audit", str(tmp_path), "--report-dir", report, "--min-age", "-1"], "invalid minutes value"),
        (["audit", str(tmp_path / "outer"), "--report-dir", report, "--vault", str(tmp_path / "outer")], "is the root"),
        (["audit", str(tmp_path / "outer" / "inner"), "--report-dir", report, "--vault", str(tmp_path / "outer")],
         "contains the root"),
        (["audit", str(tmp_path / "outer"), "--report-dir", report, "--vault", f"{report}/vault"],
         "lies inside --report-dir"),
        (["audit", str(tmp_path / "outer"), "--report-dir", report, "--vault", str(tmp_path / "outer" / "inner")],
         "is not a vault"),
        (["audit", str(tmp_path), "--report-dir", report, "--verify-share", "1/7"], "give it with --verify-data"),
        (["audit", str(tmp_path), "--report-dir", report, "--verify-data", "--verify-share", "2/7"],
         "invalid share value"),
        (["audit", str(tmp_path), "--report-dir", report, "--previous", str(tmp_path / "not-a-report")],
         "not a finished ckpt-rescue report"),
    ]
    for argv, words in cases:
        assert exit_code_of(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    assert not os.path.exists(report)


def exit_code_of(argv) -> int:
    """The CLI's exit code, whether it returns it or argparse exits with it."""
    try:
        return cli_main(argv)
    except SystemExit as exc:
        return exc.code


def test_profiles_expand_the_environment_and_local_runs_skip_prism(monkeypatch):
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    from pipeline.cli import UsageError

    with pytest.raises(UsageError, match="GCP_PROJECT"):
        load_profile("dataflow")
    monkeypatch.setenv("GCP_PROJECT", "p1")
    monkeypatch.setenv("GCP_REGION", "europe-west4")
    monkeypatch.setenv("GCS_TEMP", "gs://t/tmp")
    flags = load_profile("dataflow")
    assert "--runner=DataflowRunner" in flags and "--project=p1" in flags
    assert audit_flags([], None)[0] == "--runner=FnApiRunner"      # never the Prism download
    assert "--direct_running_mode=multi_processing" in audit_flags([], None)
    assert "--direct_running_mode=in_memory" in audit_flags([], None, in_memory_storage=True)
    assert audit_flags(["--runner=DirectRunner", "--direct_num_workers=3"], None)[-3:] == [
        "--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--no_pipeline_type_check"]
    assert "--direct_running_mode=in_memory" in audit_flags([], None, small_tree=True)
    assert "--direct_num_workers=1" in audit_flags([], None, small_tree=True)
    for chosen in (["--direct_num_workers=2"], ["--runner=DirectRunner"], ["--direct_running_mode=multi_processing"]):
        assert "--direct_running_mode=multi_processing" in audit_flags(chosen, None, small_tree=True), chosen
    assert "--direct_running_mode=multi_processing" in audit_flags([], None, small_tree=False)
    portable = audit_flags([], "portable")
    assert "--runner=PortableRunner" in portable and not any("direct_" in f for f in portable)


@pytest.mark.tf
def test_a_small_tree_runs_in_this_process_and_a_larger_one_in_workers_with_the_same_records(
        pristine_family, tmp_path, capsys):
    """Worker processes take seconds to start: a small local tree is audited in the launcher. The threshold is
    a flag, so the same tiny tree stands in for a large one; both engines must conclude the same."""
    family = pristine_family("keras3_adam")
    tree = tmp_path / "tree"
    shutil.copytree(os.path.dirname(family.prefix), tree / "run")
    prefix = str(tree / "run" / os.path.basename(family.prefix))
    original = orphan(prefix)
    files = sum(len(names) for _, _, names in os.walk(tree))
    runs = {}
    for name, extra in (("small", []), ("large", ["--small-tree-files", str(files - 1)])):
        report = str(tmp_path / name)
        code = cli_main(["audit", str(tree), "--report-dir", report, "--min-age", "0", *extra])
        said = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("auditing"))
        records = read_records(report)
        runs[name] = (code, said, {(r.prefix, r.kind, r.status, r.source) for r in records},
                      {r.prefix: storage.read_bytes(*storage.url_to_fs(r.index_path)) for r in records if r.staged})
    small, large = runs["small"], runs["large"]
    assert "(FnApiRunner, in_memory, 1 worker(s))" in small[1] and f"a small local tree ({files} files" in small[1]
    assert "(FnApiRunner, multi_processing" in large[1] and f"more than {files - 1} files" in large[1]
    assert small[0] == large[0] == 1     # the run's `checkpoint` file names the orphan: a person must look
    assert small[2] == large[2] and (prefix, "checkpoint", "rebuilt") in {r[:3] for r in small[2]}
    assert small[3] == large[3] == {prefix: original}


def test_the_tree_count_stops_at_the_limit_and_leaves_buckets_alone(tmp_path):
    for directory in ("a", "a/b", "c"):
        (tmp_path / directory).mkdir()
    for i, directory in enumerate(("a", "a", "a/b", "c", "c")):
        (tmp_path / directory / f"f{i}").write_bytes(b"x" * 10)
    whole = local_tree_size([str(tmp_path)], max_files=5, max_bytes=1000)
    assert (whole.files, whole.bytes, whole.over) == (5, 50, False)
    assert local_tree_size([f"file://{tmp_path}/a", str(tmp_path / "c")], 5, 1000).files == 5
    stopped = local_tree_size([str(tmp_path)], max_files=2, max_bytes=1000)
    assert stopped.over and stopped.files == 3
    assert local_tree_size([str(tmp_path)], max_files=100, max_bytes=25).over
    assert local_tree_size([str(tmp_path), "gs://bucket/runs"], 5, 1000) is None
