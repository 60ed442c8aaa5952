"""`rebuild --rehearse` never takes as evidence an index ckpt-rescue itself rebuilt (circular evidence): audit
an orphan, promote its index (the vault learns it is `rebuilt`), rehearse its sibling: the promoted index is
left out and the output names the independent source used instead."""

import os

import pytest
from command_helpers import run_printed
from source_helpers import orphan

from pipeline.cli import main as cli_main
from recovery.report.readback import read_records
from recovery.vault import ORIGIN_REBUILT, Vault

pytestmark = [pytest.mark.tf]


def test_a_promoted_index_is_not_independent_evidence_for_its_sibling(family_copy, tmp_path, capsys):
    family = family_copy("keras3_adam")
    latest = family.prefix
    original = orphan(latest)
    nearest = max(family.siblings, key=lambda p: int(p.rsplit("-", 1)[1]))
    vault = str(tmp_path / "vault")
    Vault.open(vault, create=True)
    report = str(tmp_path / "report")
    assert cli_main(["audit", os.path.dirname(latest), "--report-dir", report, "--min-age", "0",
                     "--direct_running_mode=in_memory"]) == 1
    (record,) = [r for r in read_records(report) if r.prefix == latest]
    promoted = run_printed(f"{record.command} --vault {vault}")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert open(latest + ".index", "rb").read() == original
    assert [e.origin for e in Vault.open(vault).entries(latest)] == [ORIGIN_REBUILT]
    capsys.readouterr()

    assert cli_main(["rebuild", "--rehearse", nearest, "--vault", vault]) == 0
    out = capsys.readouterr().out
    assert f"left out: sibling {os.path.basename(latest)}: not independent evidence: ckpt-rescue rebuilt this index" \
        in out
    used = out.splitlines()[1]
    assert "rebuilt from sibling" in used and os.path.basename(latest) not in used and "independent" in used

    assert cli_main(["rebuild", "--rehearse", nearest]) == 0      # without the vault it cannot tell, and says so
    out = capsys.readouterr().out
    assert f"rebuilt from sibling {os.path.basename(latest)}" in out and "without --vault" in out
