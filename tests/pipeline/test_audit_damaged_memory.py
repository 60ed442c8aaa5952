"""A damaged snapshot in the vault (a part cut short, not gzip, or not our lines) costs one night's
reading, never an error: its directory is judged afresh and remembered anew, and carried again the
night after. Before this, such a directory was an `error` record every night, `--full` included, since
no night got as far as writing the snapshot that would replace it."""

import glob
import gzip
import json
import os

import pytest
from nightly_helpers import T0, audit_night, iso_night, runs_tree, set_times
from source_helpers import orphan

from recovery.records import HEALTHY, REBUILT

pytestmark = [pytest.mark.tf, pytest.mark.slow]

DAMAGES = {
    "cut short": lambda data: data[: len(data) // 2],
    "not gzip": lambda data: b"these bytes were never gzip\n",
    "not our lines": lambda data: gzip.compress(b'[1, 2]\n{"prefix": 3}\n'),
}


def _damage(vault: str, part: str, how) -> list:
    paths = sorted(glob.glob(os.path.join(vault, "memory", "*", "*", f"{part}-*.jsonl.gz")))
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(how(data))
    return paths


def _directories(night) -> dict:
    with open(os.path.join(night.report, "directories.jsonl"), encoding="utf-8") as f:
        return {line["directory"]: line for line in map(json.loads, f)}


def _verdicts(night) -> dict:
    return {prefix: (record.kind, record.status) for prefix, record in night.records.items()}


def _no_failures(night) -> None:
    failed = [r for r in night.records.values() if "failed" in r.reason]
    assert not failed, [(r.prefix, r.reason) for r in failed]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_covered_part_is_judged_afresh_by_a_night_that_needs_it(family_copy, tmp_path, damage):
    """The carried form stands for the covered records, so a plain night never reads them and carries on;
    --verify-data and --full read them, and judge the directory afresh where it was an error."""
    root, runs = runs_tree(family_copy, tmp_path)
    set_times(root, T0 - 3600)
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    first = audit_night(root, reports, 1, vault=vault)
    assert {status for _, status in _verdicts(first).values()} == {HEALTHY}
    assert len(_damage(vault, "covered", DAMAGES[damage])) == 2

    carried = audit_night(root, reports, 2, vault=vault)                      # the forms stand in
    assert carried.summary["directories"]["carried"] == 2 and _verdicts(carried) == _verdicts(first)

    verifying = audit_night(root, reports, 3, "--verify-data", vault=vault)
    _no_failures(verifying)
    assert verifying.code == 0 and _verdicts(verifying) == _verdicts(first)
    lines = _directories(verifying)
    assert verifying.summary["directories"]["judged"] == 2
    assert all("cannot be read back" in lines[run]["why"] for run in runs.values()), lines

    after = audit_night(root, reports, 4, vault=vault)                        # remembered anew on night 3
    assert after.summary["directories"]["carried"] == 2 and _verdicts(after) == _verdicts(first)
    assert {line["carried_from"] for line in _directories(after).values()} == {iso_night(3)}

    if damage == "cut short":
        _damage(vault, "covered", DAMAGES[damage])
        full = audit_night(root, reports, 5, "--full", vault=vault)
        _no_failures(full)
        assert full.code == 0 and _verdicts(full) == _verdicts(first)
        assert full.summary["directories"]["judged"] == 2


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_records_part_is_judged_afresh_and_carried_the_night_after(family_copy, tmp_path, damage):
    """A records part is read as the snapshot is found (a staged rebuild's record is in one)."""
    root, runs = runs_tree(family_copy, tmp_path)
    staged = os.path.join(runs["keras3_adam"], "ckpt-3")
    original = orphan(staged)
    set_times(root, T0 - 3600)
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    first = audit_night(root, reports, 1, vault=vault)
    assert first.records[staged].status == REBUILT
    assert _damage(vault, "records", DAMAGES[damage])

    second = audit_night(root, reports, 2, vault=vault)
    _no_failures(second)
    assert _verdicts(second) == _verdicts(first)
    lines = _directories(second)
    assert "cannot be read back" in lines[runs["keras3_adam"]]["why"], lines
    assert lines[runs["sharded"]]["why"] == ""                              # its snapshot was not touched
    record = second.records[staged]
    assert record.status == REBUILT and record.source.startswith("vaulted index of")
    with open(record.index_path, "rb") as f:
        assert f.read() == original

    third = audit_night(root, reports, 3, vault=vault)
    assert third.summary["directories"]["carried"] == 2 and _verdicts(third) == _verdicts(first)
