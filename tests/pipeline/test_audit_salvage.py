"""The audit marks what salvage can keep of every prefix it refused for damage: checkpoints TensorFlow wrote,
then cut short, zero-filled, or with a shard deleted. The record says it in its reason and `salvage` field,
summary.json counts it, report.html shows the command, and that command, run exactly as printed from another
directory, writes a checkpoint TensorFlow restores. Prefixes refused for anything but damage get nothing,
and what the rebuild already read is not read again."""

import contextlib
import html
import io
import json
import os
import re
import shlex
import shutil

import pytest
from salvage_checkpoints import (
    check_keras,
    data_path,
    keys_touching,
    offset_of,
    orphan,
    read_manifest,
    truncate,
)

from pipeline.cli import main
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]

TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
SLOT = "optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE"
PAGE = 4096


def _copy(run, root: str, name: str):
    """The run copied to root/name, its prefixes and values moved with it."""
    target = os.path.join(root, name)
    shutil.copytree(run.directory, target)
    move = lambda p: target + p[len(run.directory):]   # noqa: E731
    return type(run)(target, [move(p) for p in run.prefixes], {move(p): v for p, v in run.values.items()}, run.kind)


@pytest.fixture(scope="module")
def audited(keras_run, tf1_run, tmp_path_factory):
    """One audit over: a cut orphan, a zero-filled orphan, an orphan nothing describes, and a TF1 checkpoint
    with its index and a shard deleted. Returns (exit code, report dir, the runs, what each damage touched)."""
    base = tmp_path_factory.mktemp("audit-salvage")
    root = str(base / "root")
    cut, zeroed, tf1 = _copy(keras_run, root, "cut"), _copy(keras_run, root, "zeroed"), _copy(tf1_run, root, "tf1")
    lone = _copy(keras_run, root, "lone")
    damage = {}
    end = offset_of(cut.latest, TRAINED) + 1000
    damage["cut"] = (keys_touching(cut.latest, 0, end), orphan(cut.latest))
    truncate(data_path(cut.latest), end)
    start = (offset_of(zeroed.latest, SLOT) // PAGE + 2) * PAGE
    damage["zeroed"] = (keys_touching(zeroed.latest, 0, start, start + PAGE), orphan(zeroed.latest))
    with open(data_path(zeroed.latest), "r+b") as f:
        f.seek(start)
        f.write(bytes(PAGE))
    for prefix in lone.prefixes[:2]:                 # the lone run's other checkpoints are gone
        for name in os.listdir(lone.directory):
            if name.startswith(os.path.basename(prefix) + "."):
                os.remove(os.path.join(lone.directory, name))
    orphan(lone.latest)
    os.remove(data_path(tf1.latest, 2, 3))          # index kept, a shard never arrived: incomplete
    report = str(base / "report")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["audit", root, "--report-dir", report, "--min-age", "0"])
    return code, report, {"cut": cut, "zeroed": zeroed, "lone": lone, "tf1": tf1}, damage


def _records(report: str) -> dict:
    return {r.prefix: r for r in read_records(report)}


def test_a_cut_orphan_is_marked_salvageable_and_its_command_works_from_elsewhere(audited, tmp_path, monkeypatch):
    code, report, runs, damage = audited
    run = runs["cut"]
    record = _records(report)[run.latest]
    assert code == 1 and record.status == "unrecoverable"
    assert record.reason.endswith("; salvageable: 11 of 17 tensors, 64% of bytes")
    command = record.salvage["command"]
    assert record.salvage == {"kept_tensors": 11, "total_tensors": 17, "kept_bytes": record.salvage["kept_bytes"],
                              "total_bytes": record.salvage["total_bytes"], "unconfirmed_tensors": 0,
                              "command": command}
    out = os.path.join(run.directory, "salvaged", "ckpt-3")
    assert command == f"ckpt-rescue salvage {run.latest} --output {out}"
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command)[1:]) == 0
    doc = read_manifest(out)
    assert doc["summary"]["kept"] == 11 and doc["summary"]["kept_bytes"] == record.salvage["kept_bytes"]
    check_keras(run, out, doc, *damage["cut"])


def test_a_zero_filled_orphan_is_assessed_from_what_the_rebuild_read(audited, tmp_path):
    """The rebuild streamed every byte before its zero check refused; the assessment reads nothing more."""
    _, report, runs, damage = audited
    run = runs["zeroed"]
    record = _records(report)[run.latest]
    assert record.status == "unrecoverable" and "are zeros whose edges fall at 4 KiB" in record.reason
    assert record.bytes_scanned == record.data_bytes
    assert record.salvage["kept_tensors"] == 17 - len(damage["zeroed"][0])
    out = str(tmp_path / "salvaged")
    assert main(shlex.split(record.salvage["command"].replace(os.path.join(run.directory, "salvaged", "ckpt-3"),
                                                             out))[1:]) == 0
    check_keras(run, out, read_manifest(out), *damage["zeroed"])


def test_an_incomplete_checkpoint_whose_index_survives_is_assessed(audited):
    _, report, runs, _ = audited
    record = _records(report)[runs["tf1"].latest]
    assert record.status == "incomplete" and "salvageable: " in record.reason
    assert 0 < record.salvage["kept_tensors"] < record.salvage["total_tensors"]
    assert record.bytes_scanned > 0


def test_nothing_is_offered_where_nothing_is_damaged_or_nothing_describes_the_data(audited):
    _, report, runs, _ = audited
    records = _records(report)
    lone = records[runs["lone"].latest]
    assert lone.status == "unrecoverable" and lone.reason.startswith("no source of truth found")
    assert lone.salvage == {} and lone.bytes_scanned == 0
    assert all(r.salvage == {} for r in records.values() if r.status == "healthy")


def test_the_summary_counts_them_and_the_page_shows_each_command(audited):
    _, report, runs, _ = audited
    salvageable = [r for r in _records(report).values() if r.salvage]
    assert len(salvageable) == 3
    with open(os.path.join(report, "summary.json")) as f:
        assert json.load(f)["salvageable"] == 3
    with open(os.path.join(report, "report.html")) as f:
        page = f.read()
    for record in salvageable:
        shown = record.salvage
        assert (f"salvage keeps {shown['kept_tensors']} of {shown['total_tensors']} tensors "
                f"({100 * shown['kept_bytes'] // shown['total_bytes']}% of bytes") in page
        commands = [html.unescape(c) for c in re.findall(r'data-command="([^"]*)"', page)]
        assert shown["command"] in commands          # the whole command, one copy away
