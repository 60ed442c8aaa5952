"""The Flink pre-flight against a small fake Flink REST server on loopback (the JobManager's /v1/config,
/v1/overview and jar endpoints, answering as Flink does): a cluster of the profile's version is accepted
and the audit is submitted to it as an uber jar by Beam's own FlinkRunner; a cluster of another version, an
unreachable one, one without task managers, or a job server jar that cannot be had is refused with exit 2
before any work, naming what to set.

The worker side (an EXTERNAL SDK worker pool running every step) is proven by test_flink_worker_pool.py.
"""

import base64
import email.parser
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile

import pytest

from pipeline import flink_preflight
from pipeline.cli import UsageError
from pipeline.cli import main as cli_main
from recovery.listing import REPORT_MARKER

JOB_SERVER_JAR = "beam-runners-flink-1.19-job-server-2.77.0.jar"


class FakeFlink:
    """Flink's REST API as far as the pre-flight and Beam's uber-jar submission use it."""

    def __init__(self, version: str = "1.19.1", taskmanagers: int = 2):
        self.version, self.taskmanagers = version, taskmanagers
        self.files: dict[str, bytes] = {}     # path -> bytes served (a job server jar "on Maven")
        self.uploads: list[bytes] = []
        self.runs: list[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes = b"", kind: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                routes = {"/v1/config": {"flink-version": fake.version, "flink-revision": "c0ffee @ 2026-01-01",
                                         "refresh-interval": 3000, "timezone-name": "UTC", "timezone-offset": 0},
                          "/v1/overview": {"taskmanagers": fake.taskmanagers, "slots-total": 4 * fake.taskmanagers,
                                           "slots-available": 4 * fake.taskmanagers, "jobs-running": len(fake.runs),
                                           "flink-version": fake.version, "flink-commit": "c0ffee"}}
                if self.path in routes:
                    return self._send(200, json.dumps(routes[self.path]).encode())
                if self.path.startswith("/v1/jobs/") and self.path.endswith("/execution-result"):
                    return self._send(200, json.dumps({"status": {"id": "IN_PROGRESS"}}).encode())
                if self.path in fake.files:
                    return self._send(200, fake.files[self.path], "application/java-archive")
                return self._send(404, json.dumps({"errors": ["Not found: " + self.path]}).encode())

            do_HEAD = do_GET

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/jars/upload":
                    fake.uploads.append(_multipart_file(self.headers["Content-Type"], body))
                    name = f"/tmp/flink-web-upload/{len(fake.uploads)}_beam.jar"
                    return self._send(200, json.dumps({"filename": name, "status": "success"}).encode())
                if self.path.endswith("/run"):
                    fake.runs.append(json.loads(body or b"{}"))
                    return self._send(200, json.dumps({"jobid": f"{len(fake.runs):032x}"}).encode())
                return self._send(404)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def _multipart_file(content_type: str, body: bytes) -> bytes:
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    (part,) = [p for p in message.get_payload() if p.get_filename()]
    return part.get_payload(decode=True)


def _a_jar(path) -> str:
    """A stand-in job server jar: a zip holding the runner's entry class name, as the real one does."""
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("org/apache/beam/runners/flink/FlinkPipelineRunner.class", b"\xca\xfe\xba\xbe")
    return str(path)


@pytest.fixture
def flink():
    fake = FakeFlink()
    yield fake
    fake.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _profile_env(monkeypatch, master: str, version: str = "1.19"):
    monkeypatch.setenv("FLINK_MASTER", master)
    monkeypatch.setenv("FLINK_VERSION", version)
    monkeypatch.setenv("SDK_WORKER_POOL", "localhost:50000")


def _audit(tmp_path, *extra) -> int:
    (tmp_path / "runs").mkdir(exist_ok=True)
    return cli_main(["audit", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report"), "--profile", "flink",
                     *extra])


def test_a_cluster_of_the_profiles_version_gets_the_audit_as_an_uber_jar(flink, tmp_path, family_copy):
    """Beam's FlinkRunner itself submits, as the profile configures it; the fake only records what arrives."""
    family = family_copy("keras3_adam")
    jar = _a_jar(tmp_path / JOB_SERVER_JAR)
    env = {**os.environ, "FLINK_MASTER": flink.address, "FLINK_VERSION": "1.19", "SDK_WORKER_POOL": "localhost:50000"}
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "pipeline", "audit", os.path.dirname(family.prefix), "--report-dir",
                           str(report), "--min-age", "0", "--profile", "flink", "--flink_job_server_jar", jar,
                           "--detach"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "submitted run " in done.stdout and "ckpt-rescue status " in done.stdout
    assert len(flink.uploads) == 1
    assert flink.runs == [{"entryClass": "org.apache.beam.runners.flink.FlinkPipelineRunner"}]
    with zipfile.ZipFile(io.BytesIO(flink.uploads[0])) as uber:
        names = set(uber.namelist())
        pipeline = json.loads(uber.read("BEAM-PIPELINE/pipeline/pipeline.json"))
        options = json.loads(uber.read("BEAM-PIPELINE/pipeline/pipeline-options.json"))
    assert "org/apache/beam/runners/flink/FlinkPipelineRunner.class" in names        # the job server jar inside
    steps = {t["uniqueName"] for t in pipeline["components"]["transforms"].values()}
    assert {"Roots", "List", "Rebuild", "Report"} <= steps
    assert options["beam:option:flink_version:v1"] == "1.19"
    assert str(options["beam:option:parallelism:v1"]) == "8"
    from apache_beam.portability.api import beam_runner_api_pb2

    (environment,) = [e for e in pipeline["components"]["environments"].values()
                      if e["urn"] == "beam:env:external:v1"]
    payload = beam_runner_api_pb2.ExternalPayload.FromString(base64.b64decode(environment["payload"]))
    assert payload.endpoint.url == "localhost:50000"
    # Submitted, not run (the fake runs nothing): its status says so.
    assert cli_main(["status", str(report), "--wait", "0"]) == 5


def test_the_version_is_taken_from_the_cluster_when_not_given(flink, tmp_path):
    jar = _a_jar(tmp_path / JOB_SERVER_JAR)
    flags = ["--runner=FlinkRunner", f"--flink_master={flink.address}", "--flink_submit_uber_jar",
             f"--flink_job_server_jar={jar}"]
    assert flink_preflight.check(flags) == [*flags, "--flink_version=1.19"]
    assert flink_preflight.check([*flags, "--flink_version=1.19"]) == [*flags, "--flink_version=1.19"]


def test_another_flink_version_is_refused_naming_what_to_set(flink, tmp_path, monkeypatch, capsys):
    _profile_env(monkeypatch, flink.address, version="2.2")    # Beam 2.77's default, what used to be assumed
    assert _audit(tmp_path, "--flink_job_server_jar", _a_jar(tmp_path / JOB_SERVER_JAR)) == 2
    err = capsys.readouterr().err
    assert "runs Flink 1.19.1, but the job is built for --flink_version 2.2" in err and "FLINK_VERSION=1.19" in err
    assert not (tmp_path / "report" / REPORT_MARKER).exists()       # before any work


def test_an_unreachable_cluster_is_refused(tmp_path, monkeypatch, capsys):
    _profile_env(monkeypatch, f"127.0.0.1:{_closed_port()}")
    assert _audit(tmp_path) == 2
    err = capsys.readouterr().err
    assert "cannot reach Flink at http://127.0.0.1:" in err and "connection refused" in err and "FLINK_MASTER" in err
    assert not (tmp_path / "report").exists()


def test_not_flink_or_no_task_managers_or_an_unsupported_version(flink, tmp_path):
    jar = _a_jar(tmp_path / JOB_SERVER_JAR)
    flags = ["--runner=FlinkRunner", f"--flink_master=http://{flink.address}", "--flink_submit_uber_jar",
             f"--flink_job_server_jar={jar}"]
    flink.taskmanagers = 0
    with pytest.raises(UsageError, match="no task manager is registered"):
        flink_preflight.check(flags)
    flink.taskmanagers, flink.version = 1, "1.18.1"
    with pytest.raises(UsageError, match=r"runs Flink 1\.18\.1; this Beam \(apache-beam 2\.77\.0\) has job servers "
                                         r"for Flink 1\.19, 1\.20, 2\.0, 2\.1, 2\.2 only"):
        flink_preflight.check(flags)
    not_flink = [f if not f.startswith("--flink_master") else f"--flink_master=http://{flink.address}/nothing"
                 for f in flags]
    with pytest.raises(UsageError, match="without Flink's JSON"):
        flink_preflight.check(not_flink)


def test_the_job_server_jar_must_be_there_or_downloadable(flink, tmp_path, monkeypatch):
    base = ["--runner=FlinkRunner", f"--flink_master={flink.address}", "--flink_version=1.19",
            "--flink_submit_uber_jar"]
    with pytest.raises(UsageError, match="no such file"):
        flink_preflight.check([*base, f"--flink_job_server_jar={tmp_path / 'missing.jar'}"])
    (tmp_path / "page.jar").write_text("<html>404 Not Found</html>")     # what a failed download often leaves
    with pytest.raises(UsageError, match="is not a jar"):
        flink_preflight.check([*base, f"--flink_job_server_jar={tmp_path / 'page.jar'}"])
    # A URL: served (accepted), or not (refused with the URL's answer).
    flink.files[f"/maven/{JOB_SERVER_JAR}"] = (tmp_path / "page.jar").read_bytes()
    served = [*base, f"--flink_job_server_jar=http://{flink.address}/maven/{JOB_SERVER_JAR}"]
    assert flink_preflight.check(served) == served
    with pytest.raises(UsageError, match="HTTP 404"):
        flink_preflight.check([*base, f"--flink_job_server_jar=http://{flink.address}/maven/other.jar"])
    # No jar given and none cached: Beam would download it from Maven; with no way out, refused, naming both.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    job_server = ["--runner=FlinkRunner", f"--flink_master={flink.address}", "--flink_version=1.19",
                  f"--artifacts_dir={tmp_path / 'shared'}", f"--jar_cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(UsageError) as refused:
        flink_preflight.check(job_server)
    message = str(refused.value)
    assert f"is not at {tmp_path / 'cache' / JOB_SERVER_JAR} and cannot be downloaded" in message
    assert "repo.maven.apache.org" in message and "--flink_job_server_jar" in message
    (tmp_path / "cache").mkdir()
    _a_jar(tmp_path / "cache" / JOB_SERVER_JAR)       # pre-fetched into the cache: accepted
    try:
        assert flink_preflight.check(job_server) == job_server
    except UsageError as exc:       # only the Java launcher may be missing on this machine
        assert "is not on PATH" in str(exc) and "job server jar" not in str(exc)


def test_a_job_server_without_a_shared_artifacts_dir_is_refused(flink, tmp_path):
    flags = ["--runner=FlinkRunner", f"--flink_master={flink.address}", "--flink_version=1.19",
             f"--flink_job_server_jar={_a_jar(tmp_path / JOB_SERVER_JAR)}"]
    with pytest.raises(UsageError, match=r"--flink_submit_uber_jar.*or set --artifacts_dir"):
        flink_preflight.check(flags)


def test_other_runners_and_local_flink_are_not_asked(tmp_path):
    assert flink_preflight.check(["--runner=FnApiRunner"]) == ["--runner=FnApiRunner"]
    local = ["--runner=FlinkRunner", "--flink_master=[local]"]
    assert flink_preflight.check(local) == local
