"""Local worker processes started before the launcher needs them.

A local audit with worker processes starts each one when its first stage runs, and each then spends
about a second importing Beam and this project before it does any work: on a night whose directories
are mostly carried forward, an eighth of the run (BENCHMARKS.md, 2026-12-07). Instead, the launcher starts
one process as soon as it knows it will use workers. It listens at one socket per worker, imports Beam
and this project while the launcher imports them, and then forks one worker per socket, which waits.
The workers share that one import (a second import beside the launcher's was most of the CPU the two
cores had to share before the first stage; fork copies the imported modules' pages only when written).

Beam still starts its workers with a command (a SubprocessSDKEnvironment). The command is this module's
`connect`. It hands its environment (the control and logging endpoints and the pipeline options that Beam
gives a worker) to a waiting worker over a Unix socket (in a directory only this user may enter, as
mkdtemp makes it: the environment holds credentials), waits for that worker to finish, and exits with
its exit code. When no waiting worker answers, `connect` execs Beam's own worker, so a run never depends
on the pool. The forking process dies with the launcher and each worker with it (PR_SET_PDEATHSIG on
Linux); the launcher ends those it did not use through it.

Only the standard library is imported at module level: `connect` runs once per worker, and it should
cost a Python start, not a Beam import.
"""

import atexit
import ctypes
import gc
import glob
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

READY = b"k"                 # a waiting process has imported everything and takes this connection
SOCKET_GLOB = "worker-*.sock"
TAKEN = ".taken"             # a taken worker's socket is renamed so (no one else can connect; the launcher sees it)
BEAM_WORKER = "apache_beam.runners.worker.sdk_worker_main"
PR_SET_PDEATHSIG = 1          # prctl(2)
SOCKET_PATH_LIMIT = 108       # bytes of a Unix socket's path, its terminating NUL included (Linux)
MODULE = __spec__.name        # pipeline.warm_workers, also when run with -m (where __name__ is __main__)
ENDED_WITHIN = 10.0           # seconds the launcher gives a worker to exit before it is killed
log = logging.getLogger(__name__)


class WarmWorkers:
    """The launcher's side: `start(count)` before importing Beam, `runner()` and `flags()` for the
    pipeline, and ending (a context manager) whatever was started."""

    def __init__(self):
        self.directory = None
        self.paths = []          # one socket per worker
        self.process = None      # the process that imports once and forks the workers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def started(self) -> bool:
        return self.process is not None

    def start(self, count: int) -> None:
        """Start the process that imports Beam and this project and forks `count` workers that wait to be used.
        Linux only: elsewhere Beam starts its own workers (macOS's system libraries make a fork after such
        imports unsafe, and PR_SET_PDEATHSIG, which ends the workers with the launcher, is Linux's)."""
        if not sys.platform.startswith("linux"):
            return
        directory = tempfile.mkdtemp(prefix="ckpt-rescue-workers-")
        paths = [os.path.join(directory, SOCKET_GLOB.replace("*", str(number))) for number in range(count)]
        if max(len(os.fsencode(path)) for path in paths) >= SOCKET_PATH_LIMIT:    # a long TMPDIR: Beam's own workers
            os.rmdir(directory)
            return
        self.directory, self.paths = directory, paths
        self.process = subprocess.Popen([sys.executable, "-m", MODULE, "serve", str(os.getpid()), *paths],
                                        stdin=subprocess.DEVNULL)

    def command(self) -> str:
        """What Beam runs to start a worker (with a shell)."""
        return shlex.join([sys.executable, "-m", MODULE, "connect", self.directory])

    def flags(self, flags: list[str]) -> list[str]:
        """Beam flags for the runner() below: the worker count kept, and the mode left to its default, since
        `multi_processing` makes FnApiRunner start workers with its own command instead of ours."""
        if not self.started:
            return flags
        return [flag for flag in flags if not flag.startswith("--direct_running_mode")]

    def runner(self):
        """An FnApiRunner whose workers are started with command(), or None (Beam's runner from the flags)."""
        if not self.started:
            return None
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.transforms.environments import SubprocessSDKEnvironment

        logging.getLogger(fn_runner.__name__).addFilter(_NOT_IN_MEMORY)     # once: the same filter
        return fn_runner.FnApiRunner(default_environment=SubprocessSDKEnvironment.from_command_string(self.command()))

    def close(self) -> None:
        """Workers that ran exit when Beam closes them; those never used are ended here (SIGTERM to the
        forking process ends the workers still waiting, then itself). It is waited for, and it waits for its
        workers, so their CPU is the launcher's children's."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None and not all(os.path.exists(path + TAKEN) for path in self.paths):
                process.terminate()
            try:
                process.wait(ENDED_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()          # and with it its workers (PR_SET_PDEATHSIG)
                process.wait()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class _NotInMemory(logging.Filter):
    """FnApiRunner warns that several workers want `multi_processing`; ours are worker processes already."""

    def filter(self, record):
        return "direct_num_workers is not equal to 1" not in record.getMessage()


_NOT_IN_MEMORY = _NotInMemory()


# --- a waiting worker process ---------------------------------------------------------------------------

def serve(launcher_pid: int, paths: list[str]) -> int:
    """Listen at each of `paths`, import everything a worker needs once, then fork one worker per socket and
    wait for them; returns 0 when every worker ended with 0. Told to end (SIGTERM), it ends the workers still
    waiting, waits for the others, and ends by that signal."""
    _die_with(launcher_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C ends the launcher, and the launcher ends this
    listeners = {}
    for path in paths:     # before the imports: a `connect` that comes early waits for READY instead of
        try:               # starting Beam's own worker
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(path)
            listener.listen(1)
            listeners[path] = listener
        except OSError as exc:      # no one can connect there, so Beam starts its own worker: say why
            print(f"ckpt-rescue: a worker started ahead cannot listen at {path} ({exc}); Beam starts its own",
                  file=sys.stderr)
    from transforms.collection import collect_less

    collect_less()          # before the imports: Beam's makes a million objects, each passed over again and again
    from apache_beam.runners.worker import sdk_worker_main  # noqa: F401 - imported once, for every worker forked

    from . import audit_pipeline  # and with it every transform the workers unpickle

    audit_pipeline.fewer_malloc_arenas()     # as the launcher's environment would have set at this process's start
    gc.freeze()     # what the imports made is kept for good: the workers' collections pass it over, and leave
    #                 its pages shared with this process instead of writing to them
    forking, workers = os.getpid(), {}
    for path, listener in listeners.items():
        pid = os.fork()
        if pid == 0:
            for other in listeners.values():
                if other is not listener:
                    other.close()
            _exit_now(_work(listener, path, forking))
        workers[pid] = path
    for listener in listeners.values():
        listener.close()
    told_to_end = []

    def end_waiting(signum, frame):
        told_to_end.append(signum)
        for pid, path in list(workers.items()):
            if not os.path.exists(path + TAKEN):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, end_waiting)
    code = 0
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        workers.pop(pid, None)
        code = code or (os.waitstatus_to_exitcode(status) != 0)
    if told_to_end:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    return int(code)


def _work(listener, path: str, forking: int) -> int:
    """One forked worker: take one connection and run Beam's worker with the environment it sends."""
    _die_with(forking)      # a fork does not keep PR_SET_PDEATHSIG: tie it to the process that forked it
    from apache_beam.runners.worker import sdk_worker_main

    connection, _ = listener.accept()
    os.rename(path, path + TAKEN)
    listener.close()
    connection.sendall(READY)
    try:
        environment = json.loads(_receive(connection))
    except ConnectionError:     # the command that took it was ended before it sent anything
        return 1
    os.environ.clear()
    os.environ.update(environment)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        sdk_worker_main.main(sys.argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - as Beam's worker would, end with a traceback and code 1
        log.exception("the worker failed")
        code = 1
    connection.sendall(bytes([code & 0xFF]))
    return code


def _exit_now(code: int) -> None:
    """A worker's run is over: exit-time functions run (logging's flush, and any registered), and the rest
    of the interpreter's shutdown is skipped (joining Beam's thread pools, freeing every module). It took
    0.4 s, which the launcher, waiting for its children so that their CPU is counted, spent idle
    (BENCHMARKS.md, 2026-12-07). CPython runs the same functions at a normal exit."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _die_with(parent_pid: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):     # not Linux: the launcher still ends it when the run ends
        pass
    if os.getppid() != parent_pid:        # the parent died before the line above
        _exit_now(0)


def _receive(connection) -> bytes:
    (size,) = struct.unpack(">Q", _exactly(connection, 8))
    return _exactly(connection, size)


def _exactly(connection, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the connection closed early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- the command Beam runs -------------------------------------------------------------------------------

def connect(directory: str) -> int:
    """Hand this process's environment to a waiting worker and wait for its exit code; without one, become
    Beam's own worker. Workers are tried from this worker's number (Beam's WORKER_ID) on, so that several
    starting at once do not all queue at the first."""
    paths = sorted(glob.glob(os.path.join(glob.escape(directory), SOCKET_GLOB)))
    digits = "".join(c for c in os.environ.get("WORKER_ID", "") if c.isdigit())
    first = int(digits) % len(paths) if digits and paths else 0
    for path in paths[first:] + paths[:first]:
        connection = _taken(path)
        if connection is None:
            continue
        payload = json.dumps(dict(os.environ)).encode()
        connection.sendall(struct.pack(">Q", len(payload)) + payload)
        code = connection.recv(1)
        return code[0] if code else 1
    os.execv(sys.executable, [sys.executable, "-m", BEAM_WORKER])
    return 1    # not reached


def _taken(path: str):
    """A connection to the waiting worker at `path`, or None if it is gone or another took it."""
    connection = socket.socket(socket.AF_UNIX)
    try:
        connection.connect(path)
        if connection.recv(1) == READY:
            return connection
    except OSError:
        pass
    connection.close()
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) >= 3 and argv[1].isdigit():
        _exit_now(serve(int(argv[1]), argv[2:]))
    if argv[:1] == ["connect"] and len(argv) == 2:
        return connect(argv[1])
    print(f"usage: python -m {MODULE} serve LAUNCHER_PID SOCKET... | connect DIRECTORY", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
