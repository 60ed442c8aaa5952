"""Running the CLI as a person does, on trees built to be hostile (tests/pipeline/test_hostile_*.py): each
command in its own process under a hang guard, each printed command followed exactly as printed."""

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass

HANG_GUARD = 600          # seconds: only a command that hangs gets near it
DATA = ".data-00000-of-00001"
IN_PROCESS = ("--direct_running_mode=in_memory",)     # one process: the verdicts, not the engine, are tested here


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m pipeline ARGS` in its own process; never a traceback, whatever it says."""
    result = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                            timeout=HANG_GUARD, cwd=cwd, env=dict(os.environ))
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def run_printed(command: str) -> subprocess.CompletedProcess:
    """A command exactly as the tool printed it, through a shell, as a person pastes it."""
    words = shlex.split(command)
    if words[0] == "ckpt-rescue":     # the installed entry point is this interpreter's `-m pipeline`
        return run_cli(*words[1:])
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=HANG_GUARD)


@dataclass(frozen=True)
class Run:
    """One copy of keras3_adam's run (CheckpointManager saves ckpt-1 to ckpt-3): `run[3]` is ckpt-3's prefix."""

    directory: str

    def __getitem__(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}")


def run_of(family, destination) -> Run:
    """Move a family copy's run to `destination` (its `checkpoint` state file dropped: it names the old paths)."""
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    os.rename(os.path.dirname(family.prefix), destination)
    os.remove(os.path.join(destination, "checkpoint"))
    return Run(str(destination))
