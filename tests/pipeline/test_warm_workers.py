"""Worker processes started ahead of the pipeline (pipeline/warm_workers.py), run through Beam's real
FnApiRunner: the stages run in the workers forked by the process started ahead, a worker without a waiting
one is Beam's own, and workers never used are ended, by the launcher or with it."""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.warm_workers import WarmWorkers

pytestmark = pytest.mark.slow
GONE_WITHIN = 60.0      # seconds: how long a process may take to be reaped on a loaded machine


def _record(n: int, out: str, exits: str) -> None:
    """Where element `n` ran (the process, its parent and its command line), and a file its process writes
    at exit."""
    pid = os.getpid()
    with open(os.path.join(out, f"{pid}-{os.getppid()}-{n}"), "wb") as f, open(f"/proc/{pid}/cmdline", "rb") as c:
        f.write(c.read())
    atexit.register(lambda path: open(path, "w").close(), os.path.join(exits, str(pid)))


def _run_through(workers: WarmWorkers, out, num_workers: int) -> None:
    """A two-stage pipeline whose second stage records, per element, the command line of its process."""
    flags = workers.flags([f"--direct_num_workers={num_workers}", "--direct_running_mode=multi_processing"])
    (out.parent / "exits").mkdir(exist_ok=True)
    with beam.Pipeline(runner=workers.runner(), options=PipelineOptions(flags)) as p:
        _ = (p | beam.Create(range(40)) | beam.Reshuffle()
             | beam.Map(lambda n, out, exits, record: record(n, out, exits), str(out), str(out.parent / "exits"),
                        _record))


def _writers(out) -> dict:
    """pid -> (parent pid, command line) of every process that ran the second stage."""
    return {name.split("-")[0]: (int(name.split("-")[1]), (out / name).read_bytes()) for name in os.listdir(out)}


def _children(pid: int) -> set:
    """The processes whose parent is `pid` now."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry))
        except (FileNotFoundError, ProcessLookupError):      # ended meanwhile
            pass
    return found


def _forked(workers: WarmWorkers, count: int) -> set:
    """The workers once `count` of them are forked (it imports first)."""
    deadline = time.monotonic() + GONE_WITHIN
    while len(_children(workers.process.pid)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return _children(workers.process.pid)


@pytest.fixture(params=["", "a 'b' $HOME "])
def temp_root(request, monkeypatch):
    """The default temporary directory, or one whose name a shell would read (kept short, beside the default:
    a socket's path holds at most 107 bytes)."""
    if not request.param:
        yield
        return
    odd = tempfile.mkdtemp(prefix=request.param)
    monkeypatch.setattr(tempfile, "tempdir", odd)
    yield
    shutil.rmtree(odd, ignore_errors=True)


def test_the_stages_run_in_the_processes_started_ahead(tmp_path, temp_root):
    """Beam runs the worker command with a shell: the sockets' directory may hold what a shell would read."""
    out = tmp_path / "out"
    out.mkdir()
    with WarmWorkers() as workers:
        workers.start(2)
        _run_through(workers, out, 2)
        writers = _writers(out)
        assert writers and {parent for parent, _ in writers.values()} == {workers.process.pid}
        assert all(b"pipeline.warm_workers\0serve" in cmdline for _, cmdline in writers.values())
        # each was used and ended when Beam closed it, with code 0: none is left for close() to end; its
        # exit-time functions ran, although it skips the rest of the interpreter's shutdown
        assert workers.process.wait(GONE_WITHIN) == 0
        assert set(os.listdir(tmp_path / "exits")) == set(writers)
        directory = workers.directory
        assert sorted(os.listdir(directory)) == ["worker-0.sock.taken", "worker-1.sock.taken"]
    assert not os.path.exists(directory)


def test_a_worker_with_no_process_waiting_is_beams_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with WarmWorkers() as workers:
        workers.start(1)
        _run_through(workers, out, 2)
        writers = _writers(out)
        assert writers     # and the run finished: Beam waits for both workers to connect
        assert all(b"pipeline.warm_workers\0serve" in c or b"apache_beam.runners.worker.sdk_worker_main" in c
                   for _, c in writers.values())
        assert workers.process.wait(GONE_WITHIN) == 0


def test_without_a_start_the_runner_is_the_flags_own():
    workers = WarmWorkers()
    flags = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert workers.runner() is None and workers.flags(flags) == flags
    workers.close()


def test_no_processes_are_started_where_a_socket_path_would_be_too_long(tmp_path, monkeypatch):
    """A Unix socket's path holds at most 107 bytes: under a deep TMPDIR, Beam starts its own workers."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    workers = WarmWorkers()
    workers.start(2)
    assert not workers.started and workers.runner() is None and os.listdir(deep) == []
    workers.close()


def test_nothing_is_started_ahead_where_a_fork_after_the_imports_is_not_safe(monkeypatch):
    """Beam starts its own workers outside Linux (macOS: a fork after importing Beam may crash)."""
    monkeypatch.setattr(sys, "platform", "darwin")
    workers = WarmWorkers()
    workers.start(2)
    assert not workers.started and workers.runner() is None and workers.directory is None
    workers.close()


def test_processes_never_used_are_ended_by_the_launcher():
    workers = WarmWorkers()
    workers.start(2)
    process, directory = workers.process, workers.directory
    forked = _forked(workers, 2)
    assert len(forked) == 2
    workers.close()
    assert process.returncode == -signal.SIGTERM and all(_gone(pid) for pid in forked)
    assert not os.path.exists(directory) and not workers.started


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)   # a zombie
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("when", ["starting", "waiting"])
def test_processes_die_with_a_launcher_that_dies(tmp_path, when):
    """A launcher killed before it could end them: they must not wait for ever, whether it died while the
    process started ahead was starting (it finds its parent gone) or once its workers wait (the kernel ends
    it, and them with it: PR_SET_PDEATHSIG). The launcher's output goes to a file: a pipe would be held
    open by any process that outlived it."""
    script = ("import os, time\nfrom pipeline.warm_workers import WarmWorkers\n"
              "w = WarmWorkers(); w.start(2)\n"
              "print(w.process.pid, w.directory, flush=True)\n")
    if when == "waiting":    # both forked: each past the line that ties it to the process that forked it
        script += (f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n"
                   "from test_warm_workers import _forked\n"
                   "print(' '.join(str(pid) for pid in _forked(w, 2)), flush=True)\n")
    script += "os.kill(os.getpid(), 9)"
    with open(tmp_path / "out", "w") as out:
        launcher = subprocess.run([sys.executable, "-c", script], stdout=out, stderr=subprocess.DEVNULL,
                                  cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert launcher.returncode == -signal.SIGKILL
    said = (tmp_path / "out").read_text().split("\n")
    started, directory = said[0].split()
    pids = [int(started)]
    if when == "waiting":
        pids += [int(pid) for pid in said[1].split()]
        assert len(pids) == 3
    deadline = time.monotonic() + GONE_WITHIN
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(directory, ignore_errors=True)     # a launcher killed outright leaves its sockets' directory
    assert all(_gone(pid) for pid in pids)


def test_the_command_says_how_it_is_used():
    done = subprocess.run([sys.executable, "-m", "pipeline.warm_workers"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 2 and "usage: python -m pipeline.warm_workers serve LAUNCHER_PID" in done.stderr
