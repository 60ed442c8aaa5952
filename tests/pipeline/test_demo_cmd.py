"""`ckpt-rescue demo` (the README's first command) in a fresh process, from another directory."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_demo_finds_everything_it_planted(tmp_path):
    workdir = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "pipeline", "demo", "--workdir", str(workdir)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "every planted problem was found" in done.stdout
    assert "BAD" not in done.stdout
    summary = json.loads((workdir / "report" / "summary.json").read_text())
    assert summary["counts"]["rebuilt"] == 5      # sibling, part index, SavedModel, TF1 .meta, registry
    assert summary["exit_code"] == 1              # the decoys need a person
    assert f"report:    {workdir / 'report' / 'report.html'}" in done.stdout
    # the second night: the vault brings a lost healthy index back, every tensor confirmed, and says what changed
    assert "the second night found what the day did" in done.stdout
    assert "16 of 16 tensors confirmed by the index as it was on" in done.stdout
    second = json.loads((workdir / "report-night-2" / "summary.json").read_text())
    assert second["previous_run"]["run_id"] == summary["run_id"]
    assert second["changes"]["deleted"] == 1 and second["changes"]["resolved"] == 1
    assert second["directories"]["carried"] >= 5 and second["vault"]["url"] == str(workdir / "vault")
