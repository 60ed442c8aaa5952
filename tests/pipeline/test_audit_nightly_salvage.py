"""What salvage would keep of an incomplete checkpoint is remembered night after night (issues 13 and 17):
a checkpoint TensorFlow wrote, its data file cut short and its index intact. The night that judges it
assesses the salvage (reading its data); an unchanged night carries the assessment forward without
reading a byte of it; a night after its listing changed judges and assesses it afresh."""

import os
import shutil

import pytest
from nightly_helpers import T0, audit_night, iso_night, set_times
from salvage_checkpoints import data_path, offset_of, truncate

from recovery.records import INCOMPLETE, PERSISTS

pytestmark = [pytest.mark.tf, pytest.mark.slow]

TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"


def _cut_run(keras_run, tmp_path) -> tuple:
    """(root, the cut prefix): the Keras run copied into a tree, its latest data file cut inside a tensor."""
    root = tmp_path / "tree"
    target = str(root / "runs" / "cut")
    shutil.copytree(keras_run.directory, target)
    prefix = target + keras_run.latest[len(keras_run.directory):]
    truncate(data_path(prefix), offset_of(prefix, TRAINED) + 1000)
    set_times(str(root), T0 - 3600)
    return str(root), prefix


def _rewrite_in_place(path: str, data: bytes) -> None:
    """New bytes on the same inode, same size, the old mtime set back: what the listing cannot see."""
    stat = os.stat(path)
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_salvage_assessment_is_carried_while_the_directory_is_unchanged_and_made_again_when_it_changes(
        keras_run, tmp_path):
    root, prefix = _cut_run(keras_run, tmp_path)
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")

    first = audit_night(root, reports, 1, vault=vault)
    judged = first.records[prefix]
    assert first.code == 1 and judged.status == INCOMPLETE and judged.carried_from == ""
    assert 0 < judged.salvage["kept_tensors"] < judged.salvage["total_tensors"]
    assert judged.reason.endswith(f"; salvageable: {judged.salvage['kept_tensors']} of "
                                  f"{judged.salvage['total_tensors']} tensors, "
                                  f"{100 * judged.salvage['kept_bytes'] // judged.salvage['total_bytes']}% of bytes")
    assert judged.bytes_scanned > 0                       # the assessment read the data
    assert first.summary["salvageable"] == 1

    # The bytes change under the listing's eyes (same inode, size and mtime): had night 2 read them, its
    # assessment would keep nothing. It keeps what night 1 found, so it read none of them.
    cut = data_path(prefix)
    with open(cut, "rb") as f:
        original = f.read()
    _rewrite_in_place(cut, bytes(len(original)))
    second = audit_night(root, reports, 2, vault=vault)
    _rewrite_in_place(cut, original)
    carried = second.records[prefix]
    assert (carried.status, carried.change, carried.since, carried.carried_from) == (
        INCOMPLETE, PERSISTS, iso_night(1), iso_night(1))
    assert carried.salvage == judged.salvage and carried.reason == judged.reason
    assert carried.bytes_scanned == 0 and second.summary["bytes_scanned"] == 0
    assert second.summary["salvageable"] == 1
    assert second.summary["directories"] == {"listed": 1, "carried": 1, "judged": 0, "gone": 0}

    shorter = offset_of(prefix, TRAINED) // 2
    truncate(cut, shorter)                                # cut further, into tensors night 1 kept: a new listing
    third = audit_night(root, reports, 3, vault=vault)
    again = third.records[prefix]
    assert (again.status, again.change, again.since, again.carried_from) == (INCOMPLETE, PERSISTS, iso_night(1), "")
    assert third.summary["directories"] == {"listed": 1, "carried": 0, "judged": 1, "gone": 0}
    assert again.bytes_scanned > 0 and third.summary["salvageable"] == 1
    assert again.salvage["total_tensors"] == judged.salvage["total_tensors"]
    assert 0 < again.salvage["kept_tensors"] < judged.salvage["kept_tensors"]
    assert again.salvage["kept_bytes"] < judged.salvage["kept_bytes"] and f"shard 0 has {shorter} of" in again.reason

    fourth = audit_night(root, reports, 4, vault=vault)   # and that new assessment is what is carried next
    assert fourth.records[prefix].salvage == again.salvage and fourth.records[prefix].carried_from == iso_night(3)
