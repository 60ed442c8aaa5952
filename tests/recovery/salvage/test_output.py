"""Writing a salvaged checkpoint: create-only, and nothing more once the damaged checkpoint changed."""

import os

import pytest
from salvage_checkpoints import data_path, offset_of, orphan, truncate

from recovery import storage
from recovery.salvage import SourceChanged, output_files, plan_salvage, write_salvage

pytestmark = pytest.mark.tf

SLOT = "optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE"


def planned(run):
    """A plan for the latest checkpoint, its index lost and its upload cut at 300000 bytes."""
    orphan(run.latest)
    truncate(data_path(run.latest), 300_000)
    fs, path = storage.split_prefix(run.latest)
    return plan_salvage(fs, path)


def test_any_existing_output_file_stops_the_write_before_anything_is_written(keras_run, run_copy, tmp_path):
    run = run_copy(keras_run)
    slot = offset_of(run.latest, SLOT)
    plan = planned(run)
    assert any(t.spec.key == SLOT and t.offset == slot for t in plan.kept)
    out = str(tmp_path / "out" / "ckpt-3")
    os.makedirs(tmp_path / "out")
    for existing in output_files(out):
        with open(existing, "wb") as f:
            f.write(b"mine")
        with pytest.raises(FileExistsError, match="never overwritten"):
            write_salvage(plan, out)
        assert sorted(os.listdir(tmp_path / "out")) == [os.path.basename(existing)]
        os.remove(existing)
    write_salvage(plan, out)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in output_files(out))


def test_bytes_that_changed_since_they_were_judged_are_not_written(keras_run, run_copy, tmp_path):
    run = run_copy(keras_run)
    slot = offset_of(run.latest, SLOT)
    plan = planned(run)
    with open(data_path(run.latest), "r+b") as f:   # someone writes into the damaged file meanwhile
        f.seek(slot + 100)
        f.write(b"\x01\x02\x03\x04")
    out = str(tmp_path / "out" / "ckpt-3")
    with pytest.raises(SourceChanged, match=f"{SLOT} float32\\[128, 256\\] in .* reads differently now"):
        write_salvage(plan, out)
    assert os.listdir(tmp_path / "out") == []       # no data file, no index, no manifest, no temp file
