"""Classification on real TensorFlow checkpoints, damaged the ways field reports describe."""

import os
import random
import shutil

import pytest
from source_helpers import classify_local, tf_restores_all

from recovery.records import CORRUPT, HEALTHY, INCOMPLETE, LEFTOVER, STATE_FILE
from recovery.tasks import OrphanTask

pytestmark = pytest.mark.tf


def test_healthy_sharded_checkpoints(pristine_family):
    family = pristine_family("sharded")
    results = classify_local(os.path.dirname(family.prefix))
    for prefix in [family.prefix, *family.siblings]:
        record = results[prefix]
        assert record.status == HEALTHY, record.reason
        assert record.index_path == prefix + ".index"
        shards = [n for n in os.listdir(os.path.dirname(prefix)) if n.startswith(os.path.basename(prefix) + ".data-")]
        assert record.data_files == len(shards) > 1
        assert record.data_bytes == sum(os.path.getsize(os.path.join(os.path.dirname(prefix), n)) for n in shards)
        assert "every data shard listed at exactly the size the index expects" in record.checks


def test_orphan_becomes_a_task_with_its_directory_in_view(family_copy):
    family = family_copy("keras3_adam")
    os.remove(family.prefix + ".index")
    directory = os.path.dirname(family.prefix)
    results = classify_local(directory)

    task = results[family.prefix]
    assert isinstance(task, OrphanTask) and not task.stage_only
    data = family.prefix + ".data-00000-of-00001"
    assert task.data_sizes == {data: os.path.getsize(data)}
    assert {e["name"] for e in task.listing} >= {data, family.siblings[0] + ".index"}
    assert all(results[s].status == HEALTHY for s in family.siblings)
    state = results[os.path.join(directory, "checkpoint")]   # names the orphan as its latest: see test_verdicts
    assert state.kind == STATE_FILE and state.status == INCOMPLETE and "ckpt-3 has no index" in state.reason


def test_missing_and_short_shards_are_incomplete(family_copy):
    family = family_copy("sharded")
    missing, short = family.prefix, family.siblings[0]
    shards = sorted(n for n in os.listdir(os.path.dirname(missing)) if n.startswith(os.path.basename(missing) + ".d"))
    os.remove(os.path.join(os.path.dirname(missing), shards[1]))
    short_data = short + ".data-00000-of-" + shards[0].rsplit("-of-", 1)[1]
    size = os.path.getsize(short_data)
    with open(short_data, "r+b") as f:
        f.truncate(size - 3)
    results = classify_local(os.path.dirname(missing))

    assert results[missing].status == INCOMPLETE
    assert f"1 of {len(shards)} data shard(s) missing (shard 1)" in results[missing].reason
    assert results[short].status == INCOMPLETE
    assert f"shard 0 has {size - 3} of {size} bytes" in results[short].reason
    assert results[short].command == f"ckpt-rescue inspect {short}"
    assert not tf_restores_all(missing) and not tf_restores_all(short)


def test_data_longer_than_its_index_is_corrupt(family_copy):
    family = family_copy("mixed_dtypes")
    with open(family.prefix + ".data-00000-of-00001", "ab") as f:
        f.write(b"\0" * 10)
    record = classify_local(os.path.dirname(family.prefix))[family.prefix]
    assert record.status == CORRUPT
    assert "shard 0 has 10 bytes more than its index accounts for" in record.reason


@pytest.mark.parametrize("damage, words", [("magic", "magic"), ("block", "checksum"), ("empty", "short")])
def test_unreadable_index_is_an_orphan_that_may_only_be_staged(family_copy, damage, words):
    family = family_copy("keras3_adam")
    index = family.prefix + ".index"
    data = bytearray(open(index, "rb").read())
    if damage == "magic":
        data[-1] ^= 0xFF
    elif damage == "block":
        data[20] ^= 0x01
    else:
        data = bytearray()
    open(index, "wb").write(bytes(data))
    task = classify_local(os.path.dirname(family.prefix))[family.prefix]
    assert isinstance(task, OrphanTask) and task.stage_only
    assert task.finding.startswith("index unreadable") and words in task.finding.lower()
    assert not tf_restores_all(family.prefix)


def test_unreadable_index_without_data_is_corrupt(family_copy):
    family = family_copy("keras3_adam")
    open(family.prefix + ".index", "wb").write(b"not an sstable at all, just some bytes here to be long enough..")
    os.remove(family.prefix + ".data-00000-of-00001")
    record = classify_local(os.path.dirname(family.prefix))[family.prefix]
    assert record.status == CORRUPT and "no data files" in record.reason


def test_state_file_naming_a_checkpoint_that_is_gone(family_copy):
    import tensorflow as tf

    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    for name in os.listdir(directory):
        if name.startswith(os.path.basename(family.prefix) + "."):
            os.remove(os.path.join(directory, name))
    record = classify_local(directory)[os.path.join(directory, "checkpoint")]
    assert record.status == INCOMPLETE
    assert "latest_checkpoint() returns None" in record.reason and "ckpt-3" in record.reason
    assert tf.train.latest_checkpoint(directory) is None   # what the record warns about


def test_state_file_tensorflow_cannot_parse(family_copy):
    import tensorflow as tf

    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    state_path = os.path.join(directory, "checkpoint")
    with open(state_path, "a") as f:
        f.write('model_checkpoint_path: "ckpt-3\n')    # a save cut off mid-line
    results = classify_local(directory)
    record = results[state_path]
    assert record.status == INCOMPLETE
    assert "not a CheckpointState text proto" in record.reason and "returns None" in record.reason
    assert all(results[p].status == HEALTHY for p in [family.prefix, *family.siblings])
    assert tf.train.latest_checkpoint(directory) is None   # what the record warns about


def test_a_save_that_stopped_before_its_merge(family_copy):
    family = family_copy("keras3_adam")
    temp = family.prefix + "_temp"
    os.makedirs(temp)
    part = os.path.join(temp, "part-00000-of-00001")
    shutil.move(family.prefix + ".index", part + ".index")
    shutil.move(family.prefix + ".data-00000-of-00001", part + ".data-00000-of-00001")
    results = classify_local(os.path.dirname(family.prefix))
    record = results[part]
    assert record.kind == LEFTOVER and record.status == INCOMPLETE
    assert "stopped before its merge" in record.reason and record.command == f"ckpt-rescue inspect {part}"
    assert family.prefix not in results
    assert tf_restores_all(part)   # the record's claim: TensorFlow can restore from the part prefix


def test_leftovers_beside_a_complete_checkpoint_are_harmless(family_copy):
    family = family_copy("keras3_adam")
    temp = family.prefix + "_temp"
    os.makedirs(temp)
    shutil.copy(family.prefix + ".index", os.path.join(temp, "part-00000-of-00001.index"))
    tempstate = family.prefix + ".data-00000-of-00001.tempstate1234567890"
    open(tempstate, "wb").write(random.Random(1).randbytes(64))
    results = classify_local(os.path.dirname(family.prefix))
    assert results[family.prefix].status == HEALTHY
    merge = results[os.path.join(temp, "part-00000-of-00001")]
    assert (merge.kind, merge.status) == (LEFTOVER, HEALTHY) and "after" in merge.reason
    unrenamed = results[tempstate]
    assert (unrenamed.kind, unrenamed.status) == (LEFTOVER, HEALTHY)
    assert "never renamed into place" in unrenamed.reason
