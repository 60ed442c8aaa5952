"""Running what the tool prints, as a person would: a command line through `sh -c` with ckpt-rescue on
PATH (this checkout's), or promote.sh without it (its own shell fallback)."""

import os
import subprocess
import sys

NO_TOOL = {"CKPT_RESCUE": "/nonexistent/ckpt-rescue"}    # promote.sh then promotes with its own shell


def shell_env(**extra) -> dict:
    """This environment with ckpt-rescue (the one under test) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.pop("CKPT_RESCUE", None)
    return {**env, **extra}


def run_printed(command: str, cwd: str | None = None, **extra_env) -> subprocess.CompletedProcess:
    """Run one printed command line exactly as printed."""
    return subprocess.run(["sh", "-c", command], cwd=cwd, env=shell_env(**extra_env), capture_output=True, text=True,
                          timeout=600)


def run_script(path: str, *args, cwd: str | None = None, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", path, *args], cwd=cwd, env=shell_env(**extra_env), capture_output=True, text=True,
                          timeout=600)
