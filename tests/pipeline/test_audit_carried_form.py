"""A carried night reports a directory from the carried form its judged night kept (recovery/memory/
carry_form.py) exactly as it would by carrying each record: the same records.jsonl, failures.csv,
promote.sh, directories.jsonl and counts, on checkpoints TensorFlow wrote in the session, with a staged
rebuild (staged again), a finding that persists, state files and leftovers among them. A form that is
damaged is passed over; one that the vault holds is what the night reports (it is read and used)."""

import glob
import gzip
import json
import os
import re
import shutil

import pytest
from nightly_helpers import T0, audit_night, runs_tree, set_times
from source_helpers import orphan

from recovery.records import CORRUPT, HEALTHY, PERSISTS, REBUILT

pytestmark = [pytest.mark.tf, pytest.mark.slow]

VOLATILE = ("run_id", "report_dir", "command", "started", "finished", "duration_seconds", "previous_run", "vault")


def _forms(vault: str) -> list:
    return sorted(glob.glob(os.path.join(vault, "memory", "*", "*", "carried-*.jsonl.gz")))


def _files(night, *vaults: str) -> dict:
    """The report's files as a person reads them, the names of its own directory and of the vaults (the
    one without forms is a copy: its records name the first), its run and its time (promote.sh's head
    says them) taken out."""
    out = {}
    summary = json.dumps({k: v for k, v in night.summary.items() if k not in VOLATILE}, sort_keys=True)
    for name, text in [*((name, _read(night.report, name)) for name in FILES), ("summary", summary)]:
        text = text.replace(night.report, "REPORT")
        for vault in sorted(vaults, key=len, reverse=True):
            text = text.replace(vault, "VAULT")
        out[name] = re.sub(r"\(run [0-9a-f]+,\s*[0-9T:+-]+\)", "(RUN)", text)
    return out


FILES = ("records.jsonl", "failures.csv", "promote.sh", "directories.jsonl")


def _read(report: str, name: str) -> str:
    with open(os.path.join(report, name), encoding="utf-8") as f:
        return f.read()


def test_a_carried_form_reports_what_carrying_each_record_would(family_copy, tmp_path):
    root, runs = runs_tree(family_copy, tmp_path)
    adam, sharded = runs["keras3_adam"], runs["sharded"]
    orphan(os.path.join(adam, "ckpt-3"))                               # rebuilt and staged on night 1
    with open(os.path.join(sharded, "sharded-100.index"), "r+b") as f:  # corrupt: a finding that persists
        f.write(b"\0" * 64)
    set_times(root, T0 - 3600)
    with_forms, without = str(tmp_path / "with" / "vault"), str(tmp_path / "without" / "vault")   # the page
    #                                                            shortens a vault's name to its last part
    first = audit_night(root, str(tmp_path / "reports"), 1, vault=with_forms)
    statuses = {r.status for r in first.records.values()}
    assert {HEALTHY, REBUILT, CORRUPT} <= statuses and len(_forms(with_forms)) == 2
    shutil.copytree(with_forms, without)
    for path in _forms(without):
        os.remove(path)
    carried = audit_night(root, str(tmp_path / "reports-forms"), 2, vault=with_forms)
    one_by_one = audit_night(root, str(tmp_path / "reports-each"), 2, vault=without)
    assert carried.summary["directories"]["carried"] == 2 and carried.summary["bytes_scanned"] == 0
    assert {r.change for r in carried.records.values()} == {PERSISTS}
    assert _files(carried, with_forms, without) == _files(one_by_one, with_forms, without)
    assert carried.code == one_by_one.code == 1
    staged = carried.records[os.path.join(adam, "ckpt-3")]
    assert staged.status == REBUILT and staged.index_path.startswith(carried.report)     # staged again tonight
    with open(os.path.join(carried.report, "report.html"), encoding="utf-8") as a, \
            open(os.path.join(one_by_one.report, "report.html"), encoding="utf-8") as b:
        assert _page_rows(a.read(), carried.report, with_forms, without) == \
            _page_rows(b.read(), one_by_one.report, with_forms, without)


def _page_rows(page: str, report: str, *vaults: str) -> list:
    """The page's table rows (its head's times left out), the report's and the vaults' names taken out."""
    page = page.replace(report, "REPORT")
    for vault in sorted(vaults, key=len, reverse=True):
        page = page.replace(vault, "VAULT")
    return [line for line in page.splitlines() if "<td" in line]


def test_a_damaged_form_is_passed_over_and_a_kept_one_is_what_the_night_reports(family_copy, tmp_path):
    root, runs = runs_tree(family_copy, tmp_path)
    set_times(root, T0 - 3600)
    vault = str(tmp_path / "vault")
    audit_night(root, str(tmp_path / "reports"), 1, vault=vault)
    forms = _forms(vault)
    assert len(forms) == 2
    spare = str(tmp_path / "spare")
    shutil.copytree(vault, spare)

    for damage in (lambda data: data[: len(data) // 2],                         # cut short
                   lambda data: gzip.compress(b'{"format": "other/1"}\n'),      # another format
                   lambda data: gzip.compress(gzip.decompress(data).rsplit(b"\n", 2)[0] + b"\n")):   # a line short
        shutil.rmtree(vault)
        shutil.copytree(spare, vault)
        with open(forms[0], "rb") as f:
            data = f.read()
        with open(forms[0], "wb") as f:
            f.write(damage(data))
        night = audit_night(root, str(tmp_path / f"reports-{len(os.listdir(tmp_path))}"), 2, vault=vault)
        assert night.summary["directories"]["carried"] == 2 and night.summary["records"] == len(night.records)
        assert {r.change for r in night.records.values()} == {PERSISTS}
        assert not any("doctored" in r.reason for r in night.records.values())

    shutil.rmtree(vault)
    shutil.copytree(spare, vault)
    with open(forms[0], "rb") as f:
        text = gzip.decompress(f.read())
    meta, _, lines = text.partition(b"\n")
    doctored = lines.replace(b'"reason":"', b'"reason":"doctored: ', 1)
    with open(forms[0], "wb") as f:
        f.write(gzip.compress(meta + b"\n" + doctored))
    night = audit_night(root, str(tmp_path / "reports-doctored"), 2, vault=vault)
    assert sum("doctored" in r.reason for r in night.records.values()) == 1     # read from the form, not remade
    assert "bytes_scanned=0," in night.out        # every record from forms: the console still counts what it read
    assert json.loads(meta)["format"] == "ckpt-rescue-carried/1"
