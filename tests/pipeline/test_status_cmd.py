"""`ckpt-rescue status` against real audits, with their report directory on local disk and on the GCS
and S3 emulators: runs that finished (exit 0 and 1, as the audit itself said), a run still going (held
mid-read at the storage boundary), a run that died midway (its process killed while held there), a
directory where no run ever started, and a run id the directory does not hold.

The roots are on the GCS emulator behind a loopback proxy that can hold one request until the test
releases it, so "still running" is a real audit process waiting on its store, not a file planted to
look like one. No test waits for time to pass: `--wait 0`, or `status_cmd.run` with an injected clock
and sleep.
"""

import os
import re
import shlex
import subprocess
import sys
import threading

import pytest
from source_helpers import orphan
from storage_servers import FaultProxy, _point_clients_at, upload_tree

from pipeline import status_cmd
from pipeline.cli import build_parser
from pipeline.cli import main as cli_main
from recovery.listing import REPORT_MARKER
from recovery.records import EXIT_ATTENTION, EXIT_NO_RUN, EXIT_NOT_FINISHED, EXIT_OK, EXIT_OTHER_RUN
from recovery.report.readback import read_summary

pytestmark = [pytest.mark.tf, pytest.mark.slow]

RELEASE_WITHIN = 300.0   # a held request is let through after this even if the test never releases it


class HoldingProxy(FaultProxy):
    """A FaultProxy that can also hold the first request matching a pattern until `release()`."""

    def __init__(self, upstream: str, flavour: str):
        super().__init__(upstream, flavour)
        self._hold = None

    def hold(self, pattern: str) -> None:
        self._hold = (re.compile(pattern), threading.Event(), threading.Event())

    def wait_until_held(self) -> None:
        assert self._hold[1].wait(RELEASE_WITHIN), "the audit never reached the held request"

    def release(self) -> None:
        if self._hold is not None:
            self._hold[2].set()

    def take(self, method: str, path: str):
        hold = self._hold
        if hold is not None and not hold[1].is_set() and method == "GET" and hold[0].search(path):
            hold[1].set()
            hold[2].wait(RELEASE_WITHIN)
        return super().take(method, path)


@pytest.fixture(scope="module")
def holding_gcs(fake_gcs_server):
    proxy = HoldingProxy(fake_gcs_server, "gcs")
    yield proxy
    proxy.release()
    proxy.close()


@pytest.fixture
def stores(holding_gcs, s3_server, monkeypatch):
    """gs:// reaches fake-gcs-server through the holding proxy, s3:// reaches moto, for this test."""
    _point_clients_at(monkeypatch, "STORAGE_EMULATOR_HOST", holding_gcs.url)
    holding_gcs._hold = None
    yield holding_gcs
    holding_gcs.release()


@pytest.fixture
def roots(stores, family_copy, tmp_path):
    """(healthy root, root with an orphan) on the GCS emulator: their audits exit 0 and 1."""
    from storage_servers import _new_bucket

    bucket = _new_bucket("gs")
    healthy = family_copy("keras3_adam")
    upload_tree(os.path.dirname(healthy.prefix), f"{bucket}/healthy/run")
    damaged = family_copy("keras3_adam")
    orphan(damaged.prefix)     # the latest checkpoint loses its index: `checkpoint` names it, so exit 1
    upload_tree(os.path.dirname(damaged.prefix), f"{bucket}/damaged/run")
    return f"{bucket}/healthy", f"{bucket}/damaged"


@pytest.fixture(params=["local", "gs", "s3"])
def report_root(request, stores, tmp_path):
    """Where the report directories go: a local directory, a GCS bucket, an S3 bucket."""
    from storage_servers import _new_bucket

    return str(tmp_path / "reports") if request.param == "local" else f"{_new_bucket(request.param)}/reports"


ENGINE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def audit(root: str, report_dir: str) -> int:
    return cli_main(["audit", root, "--report-dir", report_dir, "--min-age", "0", *ENGINE])


def status(*argv, clock=None, sleep=None) -> int:
    args = build_parser("status").parse_args(["status", *argv])
    return status_cmd.run(args, clock=clock, sleep=sleep)


def test_finished_runs_give_the_audits_own_exit_code(roots, report_root, capsys):
    healthy, damaged = roots
    fine, bad = f"{report_root}/2026-12-06-a", f"{report_root}/2026-12-06-b"
    assert audit(healthy, fine) == EXIT_OK
    assert audit(damaged, bad) == EXIT_ATTENTION
    capsys.readouterr()

    assert status(fine, "--wait", "0") == EXIT_OK
    line = capsys.readouterr().out.strip()
    summary = read_summary(fine)
    run_id = summary["run_id"]
    assert line.startswith(f"run {run_id} finished {summary['finished']}: exit 0 (ok); "), line
    assert f"healthy {summary['counts']['healthy']};" in line and summary["counts"]["healthy"] > 0, line

    assert status(bad, "--wait", "0", "--run-id", read_summary(bad)["run_id"]) == EXIT_ATTENTION
    out = capsys.readouterr().out
    assert "exit 1 (needs a person)" in out.splitlines()[0]
    assert "incomplete" in out and "checkpoint" in out       # the first rows of failures.csv follow

    # A run id the directory does not hold: its outcome cannot be read there.
    assert status(fine, "--wait", "0", "--run-id", read_summary(bad)["run_id"]) == EXIT_OTHER_RUN
    line = capsys.readouterr().out
    assert f"holds run {run_id}" in line and f"ckpt-rescue status {fine} --run-id {run_id}" in line


def test_no_run_ever_started(report_root, stores, capsys):
    looked = []
    clock = FakeClock()

    def sleep(seconds):
        looked.append(seconds)
        clock.now += seconds

    empty = f"{report_root}/2026-12-07"
    assert status(empty, "--wait", "1h", "--interval", "10m", clock=clock, sleep=sleep) == EXIT_NO_RUN
    assert looked == [600.0] * 6       # bounded by --wait, at the explicit interval
    assert "no audit has started in" in capsys.readouterr().out
    assert status(empty, "--wait", "0", "--run-id", "0" * 32) == EXIT_NO_RUN


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _held_audit(root: str, report_dir: str, proxy: HoldingProxy, tmp_path) -> subprocess.Popen:
    """An audit in its own process, held at its first read of a checkpoint file (after its marker)."""
    bucket = root.split("://", 1)[1].split("/", 1)[0]
    proxy.hold(rf"/b/{bucket}/o/.*alt=media")
    log = open(tmp_path / "audit.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "audit", root, "--report-dir", report_dir,
                                "--min-age", "0", *ENGINE], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    proxy.wait_until_held()
    return process


def test_a_run_still_going_then_finished(roots, report_root, stores, tmp_path, capsys):
    _, damaged = roots
    report_dir = f"{report_root}/2026-12-08"
    process = _held_audit(damaged, report_dir, stores, tmp_path)
    try:
        assert status(report_dir, "--wait", "0") == EXIT_NOT_FINISHED
        line = capsys.readouterr().out
        run_id = _marker_run_id(report_dir)
        assert f"run {run_id} (started " in line and "has not finished" in line
        again = line.split("wait longer with: ", 1)[1].strip()
        assert shlex.split(again)[:5] == ["ckpt-rescue", "status", report_dir, "--run-id", run_id]

        clock, sleeps = FakeClock(), []

        def sleep(seconds):     # while status waits, the held read goes through and the audit finishes
            sleeps.append(seconds)
            stores.release()
            assert process.wait(timeout=RELEASE_WITHIN) == EXIT_ATTENTION, (tmp_path / "audit.log").read_text()
            clock.now += seconds

        assert status(report_dir, "--run-id", run_id, "--interval", "90", clock=clock, sleep=sleep) == EXIT_ATTENTION
        assert sleeps == [90.0]
        assert capsys.readouterr().out.startswith(f"run {run_id} finished ")
    finally:
        stores.release()
        process.kill()
        process.wait()


def test_a_run_that_died_midway(roots, report_root, stores, tmp_path, capsys):
    healthy, _ = roots
    report_dir = f"{report_root}/2026-12-09"
    process = _held_audit(healthy, report_dir, stores, tmp_path)
    process.kill()                           # dies mid-read: its marker is there, its summary never will be
    process.wait()
    stores.release()
    run_id = _marker_run_id(report_dir)
    assert status(report_dir, "--wait", "0") == EXIT_NOT_FINISHED
    assert status(report_dir, "--wait", "0", "--run-id", run_id) == EXIT_NOT_FINISHED
    assert status(report_dir, "--wait", "0", "--run-id", "f" * 32) == EXIT_OTHER_RUN
    out = capsys.readouterr().out
    assert f"run {run_id} (started " in out and "still running, or it stopped" in out


def _marker_run_id(report_dir: str) -> str:
    import json

    from recovery import storage

    fs, path = storage.url_to_fs(report_dir)
    return json.loads(storage.read_bytes(fs, f"{path}/{REPORT_MARKER}"))["run_id"]


def test_detach_prints_a_status_command_that_works_as_printed(family_copy, tmp_path):
    """`audit --detach` names its run and the exact command to follow it; run as printed, it exits with the
    run's code (on this machine's engine the run has finished by the time `--detach` returns)."""
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    report_dir = tmp_path / "reports" / "2026-12-10"
    done = subprocess.run([sys.executable, "-m", "pipeline", "audit", os.path.dirname(family.prefix), "--report-dir",
                           str(report_dir), "--min-age", "0", "--detach"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    run_id = read_summary(str(report_dir))["run_id"]
    assert f"submitted run {run_id} " in done.stdout
    printed = done.stdout.split("follow it (waits for the run, then exits with its exit code): ", 1)[1].strip()
    assert printed == f"ckpt-rescue status {report_dir} --run-id {run_id}"
    argv = shlex.split(printed)
    followed = subprocess.run([os.path.join(os.path.dirname(sys.executable), argv[0]), *argv[1:], "--wait", "0"],
                              capture_output=True, text=True, timeout=300)
    assert followed.returncode == EXIT_ATTENTION, followed.stderr
    assert followed.stdout.startswith(f"run {run_id} finished ")


def test_bad_input_is_a_usage_error(tmp_path, capsys):
    not_a_dir = tmp_path / "summary.json"
    not_a_dir.write_text("{}")
    assert cli_main(["status", str(not_a_dir), "--wait", "0"]) == 2
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / REPORT_MARKER).write_text('{"tool": "something-else"}')
    assert cli_main(["status", str(tmp_path / "r"), "--wait", "0"]) == 2
    assert "not a ckpt-rescue marker" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["status", str(tmp_path / "r"), "--wait", "soon"])
    assert exc.value.code == 2
    assert cli_main(["status", str(tmp_path / "r"), "--interval", "0"]) == 2


def test_a_report_directory_the_store_refuses_is_a_usage_error(faulty_gcs, capsys):
    """403 on the marker (the listing is allowed): exit 2 naming the directory, no traceback."""
    from storage_servers import _new_bucket

    from recovery import storage

    report_dir = f"{_new_bucket('gs')}/reports/2026-12-11"
    fs, path = storage.url_to_fs(report_dir)
    fs.pipe_file(f"{path}/{REPORT_MARKER}", b'{"tool": "ckpt-rescue", "run_id": "r1", "started": 0}')
    faulty_gcs.fail(403, times=None, method="GET", path=re.escape(REPORT_MARKER))
    assert cli_main(["status", report_dir, "--wait", "0"]) == 2
    assert f"ckpt-rescue status: {report_dir}: cannot be read" in capsys.readouterr().err
