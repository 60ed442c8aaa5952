"""Nights of the audit for the tests of its memory: each run with its own clock (`--now`), its own dated
report directory and one vault, as the shipped schedules run it; nothing waits for time to pass."""

import contextlib
import dataclasses
import datetime
import io
import os
import shutil

from pipeline.cli import main as cli_main
from recovery.report.readback import read_records, read_summary

T0 = datetime.datetime(2026, 12, 5, 2, 30, tzinfo=datetime.timezone.utc).timestamp()   # night 1, 02:30 UTC
NIGHT = 86400.0


def iso_night(n: int) -> str:
    return datetime.datetime.fromtimestamp(T0 + (n - 1) * NIGHT, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Night:
    code: int
    out: str
    report: str
    records: dict          # prefix -> Record
    summary: dict

    def status(self, prefix: str) -> tuple:
        record = self.records[prefix]
        return record.status, record.change, record.since


def audit_night(root, reports: str, n: int, *extra, vault: str | None = None, min_age: str = "0") -> Night:
    """Night `n` (1-based) of a nightly audit of `root` (one or a list) into REPORTS/night-N."""
    roots = [root] if isinstance(root, str) else list(root)
    report = f"{reports.rstrip('/')}/night-{n}"
    argv = ["audit", *roots, "--report-dir", report, "--min-age", min_age, "--now", iso_night(n),
            "--direct_running_mode=in_memory", *extra]
    if vault:
        argv += ["--vault", vault]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(argv)
    return Night(code, out.getvalue(), report, {r.prefix: r for r in read_records(report)}, read_summary(report))


def set_times(root: str, when: float) -> None:
    """Every file under a local root last written at `when` (epoch seconds)."""
    for directory, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(directory, name), (when, when))


def runs_tree(family_copy, tmp_path) -> tuple:
    """(root, {family: its directory}): a tree of two runs, keras3_adam's and sharded's checkpoints as
    TensorFlow wrote them, each copied into ROOT/runs/<family>."""
    root = tmp_path / "tree"
    runs = {}
    for name in ("keras3_adam", "sharded"):
        family = family_copy(name)
        runs[name] = str(root / "runs" / name)
        shutil.copytree(os.path.dirname(family.prefix), runs[name])
    return str(root), runs
