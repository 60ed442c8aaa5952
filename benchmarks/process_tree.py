"""Run one command and measure its whole process tree: wall time, CPU of every process it waited for,
and the peak RSS of the command itself and of each process under it (Beam's workers, TensorFlow's
check), so no child can hide memory.

Each process's peak is the kernel's own high-water mark (VmHWM in /proc/PID/status), read every
`interval` seconds while it lives. Not wait4()'s ru_maxrss for the command: a child forked from a
large parent (this benchmark holds a 100k-prefix tree's expectations) reports the parent's size.
"""

import dataclasses
import os
import resource
import subprocess
import tempfile
import time


@dataclasses.dataclass
class Measured:
    wall: float
    cpu: float                     # user + system seconds of the command and every child it waited for
    launcher_peak: int             # bytes: the command's own process
    child_peaks: dict              # pid -> (peak bytes, command line) for every process under it
    tree_peak: int                 # bytes: the largest sum of the resident sets sampled at one moment
    stdout: str
    stderr: str


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f)
                if k in ("VmHWM", "VmRSS")}


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(child, parent) for every process under `pid`."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children = [int(child) for child in f.read().split()]
                found += [(child, current) for child in children]
                todo += children
        except OSError:
            continue
    return found


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def measure(argv: list[str], env: dict | None = None, cwd: str | None = None, interval: float = 0.02,
            exit_codes: tuple = (0,)) -> Measured:
    """Run `argv` to the end; raise with its stderr if it exits with a code not in `exit_codes`."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        children, tree_peak, launcher = {}, 0, 0
        forked = set()        # seen once as its parent's copy: forked, and maybe about to exec
        argv_line = " ".join(argv)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            total = 0
            lines = {process.pid: argv_line}
            for child, parent in [(process.pid, None), *_descendants(process.pid)]:
                if parent is not None:
                    lines[child] = _command_line(child)
                    if lines[child] == lines.get(parent) and child not in forked:
                        forked.add(child)   # forked, not yet exec'd: its pages are its parent's, counted
                        continue            # there; a fork that stays one (a worker) is counted from its second look
                try:
                    now = _status(child)
                except (OSError, ValueError):
                    continue
                total += now.get("VmRSS", 0)
                if child == process.pid:
                    launcher = max(launcher, now.get("VmHWM", 0))
                else:
                    peak, line = children.get(child, (0, ""))   # the line read while it ran, not as a zombie
                    children[child] = (max(peak, now.get("VmHWM", 0)), line or lines[child])
            tree_peak = max(tree_peak, total)
            time.sleep(interval)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    code = os.waitstatus_to_exitcode(status)
    if code not in exit_codes:
        raise RuntimeError(f"{' '.join(argv[:5])} ... exited {code}:\n{stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    launcher = launcher or usage.ru_maxrss * 1024     # gone before the first look
    return Measured(wall, cpu, launcher, children, max(tree_peak, launcher), stdout, stderr)
