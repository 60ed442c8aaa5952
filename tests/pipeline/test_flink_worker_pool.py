"""Flink's worker side, as far as it runs here: Beam's SDK worker pool as its own process (the
sidecar a Flink deployment runs beside each task manager), and the audit submitted through the
portable Job API with `--environment_type=EXTERNAL`, so every DoFn runs in a worker process that
shares nothing with the launcher but the job. Only the Flink job server itself (a Java jar from
Maven) is replaced by Beam's embedded job server."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from source_helpers import orphan

from pipeline.cli import main as cli_main
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker_pool(tmp_path):
    """`python -m apache_beam.runners.worker.worker_pool_main` on a free port; yields (address, log path)."""
    port, log_path = _free_port(), tmp_path / "worker-pool.log"
    env = dict(os.environ)
    # The pool starts each SDK worker as `python -c ...`: the sidecar image's python is ours.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with open(log_path, "wb") as log:
        pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                 "--service_port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600   # a hang guard only: the loop ends as soon as it listens, or the pool dies
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert pool.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "worker pool did not start listening"
                time.sleep(0.2)
        yield f"localhost:{port}", log_path
    finally:
        os.killpg(pool.pid, 9)
        pool.wait(timeout=30)


def test_audit_runs_in_an_external_sdk_worker_pool(worker_pool, pristine_family, tmp_path):
    address, log_path = worker_pool
    family = pristine_family("keras3_adam")
    run = tmp_path / "tree" / "run"
    shutil.copytree(os.path.dirname(family.prefix), run)
    prefix = str(run / os.path.basename(family.prefix))
    original = orphan(prefix)
    report = tmp_path / "report"

    code = cli_main(["audit", str(tmp_path / "tree"), "--min-age", "0", "--report-dir", str(report),
                     "--runner=PortableRunner", "--job_endpoint=embed",
                     "--environment_type=EXTERNAL", f"--environment_config={address}"])
    assert code == 1     # the run's `checkpoint` file names the orphan: latest_checkpoint() is None until promoted
    records = {r.prefix: r for r in read_records(str(report))}
    assert records[prefix].status == "rebuilt", records[prefix].reason
    with open(records[prefix].index_path, "rb") as f:
        assert f.read() == original
    assert {r.status for r in records.values() if r.kind == "checkpoint"} <= {"healthy", "rebuilt"}
    # The work ran in SDK workers the pool started, not in the launcher.
    assert "Starting worker with command" in log_path.read_text()
