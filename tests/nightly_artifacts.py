"""The shipped nightly artifacts (configs/nightly/) as each scheduler reads them: the command a crontab
line, a systemd unit or a Kubernetes container runs, after that scheduler's own escaping (`\\%` in cron;
`%%` and `$$` in unit files; `$$` in a container's command and args), and the way a platform engineer
adapts them (bucket names and the install path changed, nothing else).

Shared by the tests in tests/nightly/, which run those commands for real on this machine.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from repo_paths import REPO

NIGHTLY = REPO / "configs" / "nightly"
INSTALL_BIN = "/opt/ckpt-rescue/venv/bin"          # where the artifacts expect ckpt-rescue
BUCKETS = {                                         # the example locations every artifact uses
    "roots": ("gs://ml-checkpoints/runs", "s3://ml-archive/runs"),
    "report_root": "gs://ml-checkpoints/ckpt-rescue-reports",
    "vault": "gs://ml-checkpoints/ckpt-rescue-vault",
}
NIGHT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Unescaped(ValueError):
    """A character the scheduler would expand itself, where the shell was meant to."""


def crontab_jobs(path: Path = NIGHTLY / "crontab") -> tuple[dict, list[str]]:
    """(environment lines, job commands) of a crontab, each command as cron hands it to $SHELL -c."""
    env, jobs = {}, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if match:
            env[match[1]] = match[2]
            continue
        fields = line.split(None, 5)
        jobs.append(_cron_command(fields[5]))
    return env, jobs


def _cron_command(text: str) -> str:
    """cron turns an unescaped `%` into a newline and feeds what follows to stdin; `\\%` is a `%`."""
    if re.search(r"(?<!\\)%", text):
        raise Unescaped(f"an unescaped % in a crontab command (cron cuts the command there): {text}")
    return text.replace("\\%", "%")


def systemd_service(path: Path) -> tuple[dict, list[str], dict]:
    """(environment, ExecStart argv, [Service] settings) of a unit file, as systemd expands them."""
    settings, env, exec_start, section = {}, {}, None, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings[f"{section}.{key}"] = value
        if section == "Service" and key == "Environment":
            env.update(item.split("=", 1) for item in shlex.split(value))
        if section == "Service" and key == "ExecStart":
            exec_start = shlex.split(_unit_unescape(value))
    return env, exec_start, settings


def _unit_unescape(text: str) -> str:
    """In a unit file `%x` is a specifier (`%Y` is the unit's directory, `%m` the machine id) and `$X` an
    environment variable, expanded by systemd before any shell sees them; `%%` and `$$` are literal."""
    for match in re.finditer(r"%%|\$\$|[%$].?", text):
        if match[0] not in ("%%", "$$"):
            raise Unescaped(f"systemd would expand {match[0]!r} itself: write %% or $$")
    return text.replace("%%", "%").replace("$$", "$")


def kubernetes_container(path: Path, name: str) -> tuple[dict, list[str]]:
    """(the CronJob, the named container's command + args as the kubelet runs them)."""
    (cronjob,) = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    containers = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == name]
    defined = {e["name"]: e.get("value", "") for e in container.get("env", [])}

    def expand(text: str) -> str:
        # $(VAR) of a defined variable is replaced, $$ is a $, anything else stays as written
        return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                      lambda m: "$" if m[0] == "$$" else defined.get(m[1], m[0]), text)
    return cronjob, [expand(part) for part in container.get("command", []) + container.get("args", [])]


def adapted(text: str, places: dict) -> str:
    """What a platform engineer does to an artifact: their buckets and install path for the examples'."""
    for example, theirs in places.items():
        text = text.replace(example, theirs)
    return text


def shell_script(argv: list[str]) -> tuple[str, str]:
    """(shell, script) of an argv that runs `SHELL -c SCRIPT` (`exec` may come first)."""
    assert len(argv) == 3 and argv[1] == "-c", argv
    return os.path.basename(argv[0]), argv[2]


def audit_commands(script: str) -> list[list[str]]:
    """Each `ckpt-rescue ...` invocation in a shell script, as argv (after `exec`, `flock` and its options)."""
    found = []
    for words in _simple_commands(script):
        if "ckpt-rescue" in words:
            found.append(words[words.index("ckpt-rescue"):])
    return found


def _simple_commands(script: str):
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|(){}<>")
    lexer.whitespace_split = True
    words = []
    for token in lexer:
        if token and set(token) <= set(";&|(){}<>"):
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def venv_bin() -> str:
    return os.path.dirname(sys.executable)


def run_command(argv: list[str], env: dict, cwd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run as the scheduler would: this environment only, plus what the tests' stores need."""
    base = {k: v for k, v in os.environ.items() if k.startswith(("STORAGE_EMULATOR_HOST", "AWS_", "GCSFS_", "TF_"))}
    return subprocess.run(argv, env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def night_dirs(report_root: str) -> list[str]:
    return sorted(name for name in os.listdir(report_root) if NIGHT_RE.match(name)) if os.path.isdir(report_root) \
        else []
