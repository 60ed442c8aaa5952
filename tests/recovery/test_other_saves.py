"""Shards from two saves (issue 14.3): a CRC equal to another step's proves the bytes are that step's.

Every checkpoint is written by TensorFlow here: a MaxShardSizePolicy run, a TF1 Saver over two devices
(one data shard per device), a CheckpointManager run. The damage is the copy a sync tool makes: one data
shard (or one tensor's bytes) of the orphan replaced by the same shard of another step, sizes unchanged.
The legitimate inputs: the same runs undamaged, and shards of frozen variables that every save agrees on.
"""

import os
import shutil

import numpy as np
import pytest
from source_helpers import assert_rebuilt_identically, context, orphan, tensor_values

from pipeline.cli import main
from recovery.rebuild import REBUILT, UNRECOVERABLE, rebuild
from recovery.sources.sibling import MAX_SIBLINGS_READ
from tfbundle import data_filename, index_filename, read_index

pytestmark = pytest.mark.tf


def _tf():
    from pipeline.tensorflow_env import import_tensorflow

    return import_tensorflow()


def _copy_shard(source_prefix: str, prefix: str, shard: int, num_shards: int) -> None:
    """Replace one data shard by the same shard of another save, as a sync tool or a partial copy does."""
    source, target = data_filename(source_prefix, shard, num_shards), data_filename(prefix, shard, num_shards)
    assert os.path.getsize(source) == os.path.getsize(target)
    assert open(source, "rb").read() != open(target, "rb").read()
    shutil.copy(source, target)


def _tf1_two_devices(directory: str, frozen_second_device: bool = False) -> list:
    """A TF1 Saver(sharded=True) run over /cpu:0 and /cpu:1, trained between its three saves (the
    variables of /cpu:1 too, unless `frozen_second_device`): one data shard per device."""
    tf = _tf()
    v1 = tf.compat.v1
    prefixes = []
    os.makedirs(directory)
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            kernel = v1.get_variable("dense/kernel", [16, 8], initializer=v1.random_normal_initializer(seed=1))
            global_step = v1.train.get_or_create_global_step()
        with tf.device("/cpu:1"):
            emb = v1.get_variable("tower/emb", [32, 4], initializer=v1.random_normal_initializer(seed=2))
            bias = v1.get_variable("tower/bias", [4], initializer=v1.zeros_initializer())
        trained = [kernel] + ([] if frozen_second_device else [emb, bias])
        train = [v.assign_add(0.01 * tf.random.normal(v.shape, seed=3)) for v in trained]
        saver = v1.train.Saver(sharded=True, max_to_keep=5)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as session:
            session.run(v1.global_variables_initializer())
            for step in (100, 200, 300):
                session.run(train)
                session.run(global_step.assign(step))
                prefixes.append(saver.save(session, os.path.join(directory, "model.ckpt"), global_step=step))
    assert read_index(open(index_filename(prefixes[-1]), "rb").read()).header.num_shards == 2
    return prefixes


def test_a_maxshardsize_shard_of_another_save_is_refused_naming_it(family_copy):
    family = family_copy("sharded")
    num_shards = read_index(open(index_filename(family.prefix), "rb").read()).header.num_shards
    orphan(family.prefix)
    _copy_shard(family.siblings[-1], family.prefix, 1, num_shards)
    outcome = rebuild(context(family.prefix))
    assert outcome.status == UNRECOVERABLE
    assert "every tensor of shard 1 has the CRC sibling sharded-100 holds" in outcome.reason, outcome.reason
    assert "module/embedding" in outcome.reason          # what changed instead, in shard 0
    assert f"`ckpt-rescue rebuild {family.prefix} --allow-unchanged-tensors`" in outcome.reason
    assert not os.path.exists(index_filename(family.prefix))
    shard_one = {p for p in outcome.evidence.matched_keys if "dense" in p}
    assert not shard_one, "another save's bytes must never count as confirmed"

    # The override the refusal names: rebuilt, and the evidence says whose bytes they are.
    outcome = rebuild(context(family.prefix), allow_unchanged=True)
    assert outcome.status == REBUILT, outcome.reason
    assert any(c.startswith("allowed (--allow-unchanged-tensors): every tensor of shard 1") for c in outcome.checks)
    assert any("equal another save's" in c for c in outcome.evidence.cannot_confirm)
    assert not any("dense" in k or "table" in k for k in outcome.evidence.matched_keys)


def test_a_tf1_device_shard_of_another_save_is_refused_and_a_frozen_one_is_not(tmp_path):
    trained = _tf1_two_devices(str(tmp_path / "trained"))
    orphan(trained[-1])
    _copy_shard(trained[-2], trained[-1], 1, 2)
    outcome = rebuild(context(trained[-1]))
    assert outcome.status == UNRECOVERABLE
    assert "every tensor of shard 1 has the CRC sibling model.ckpt-200 holds" in outcome.reason, outcome.reason
    assert "dense/kernel" in outcome.reason
    assert not os.path.exists(index_filename(trained[-1]))

    # The legitimate input: /cpu:1's variables frozen, so every save writes the same shard 1; both
    # other saves agree on it, so its equal CRCs confirm it.
    frozen = _tf1_two_devices(str(tmp_path / "frozen"), frozen_second_device=True)
    values = tensor_values(frozen[-1])
    original = orphan(frozen[-1])
    outcome = assert_rebuilt_identically(context(frozen[-1]), None, original, values)
    assert {"tower/emb", "tower/bias"} <= set(outcome.evidence.matched_keys)


def test_one_trained_tensor_with_another_saves_bytes_is_refused(family_copy):
    """Within one data file: the kernel's bytes are ckpt-2's while everything else trained on to ckpt-3."""
    family = family_copy("keras3_adam")
    key = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"    # Keras 3 keeps the kernel here
    entries = {p: read_index(open(index_filename(p), "rb").read()).entries[key.encode()]
               for p in (family.prefix, family.siblings[-1])}
    assert len({(e.offset, e.size) for e in entries.values()}) == 1 and len({e.crc32c for e in entries.values()}) == 2
    entry = entries[family.prefix]
    with open(data_filename(family.siblings[-1], 0, 1), "rb") as f:
        f.seek(entry.offset)
        older = f.read(entry.size)
    orphan(family.prefix)
    with open(data_filename(family.prefix, 0, 1), "r+b") as f:
        f.seek(entry.offset)
        f.write(older)
    outcome = rebuild(context(family.prefix))
    assert outcome.status == UNRECOVERABLE
    assert "1 tensor(s) whose CRC differs between the run's own saves have the CRC sibling ckpt-2 holds" in \
        outcome.reason, outcome.reason
    assert key in outcome.reason and key not in outcome.evidence.matched_keys


def _save_named(tf, module, prefix: str) -> str:
    return tf.train.Checkpoint(model=module).write(prefix)


def test_siblings_of_the_same_name_come_first_and_every_one_is_cross_checked(tmp_path):
    """A run saving `ema-4` and `ckpt-best` into one directory: `ckpt-3` takes `ckpt-best`. Every
    sibling read is fitted and cross-checked, not the nearest two: a far one of another model is found."""
    tf = _tf()
    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(1).standard_normal((8, 16)).astype("float32"))
    module.b = tf.Variable(np.zeros(16, "float32"))
    run = str(tmp_path / "run")
    for name in ("ckpt-1", "ckpt-2", "ckpt-best", "ema-4", "ckpt-3"):
        module.w.assign_add(tf.fill(module.w.shape, 0.01))
        prefix = _save_named(tf, module, os.path.join(run, name))
    values = tensor_values(prefix)
    original = orphan(prefix)
    outcome = assert_rebuilt_identically(context(prefix), None, original, values)
    assert outcome.source == "sibling ckpt-2"            # the same name, nearest step
    agree = [c for c in outcome.checks if "sources agree on every key" in c]
    assert agree and all(f"sibling {n}" in agree[0] for n in ("ckpt-1", "ckpt-2", "ckpt-best", "ema-4"))
    assert agree[0].index("ckpt-best") < agree[0].index("ema-4")

    os.remove(index_filename(os.path.join(run, "ckpt-2")))
    os.remove(index_filename(os.path.join(run, "ckpt-1")))
    outcome = rebuild(context(prefix))
    assert outcome.status == REBUILT and outcome.source == "sibling ckpt-best", outcome.source

    # The farthest sibling, of another model with the same keys and sizes ([16, 8]): found and refused.
    other = tf.Module()
    other.w = tf.Variable(np.random.default_rng(2).standard_normal((16, 8)).astype("float32"))
    other.b = tf.Variable(np.zeros(16, "float32"))
    _save_named(tf, other, os.path.join(run, "ckpt-90"))
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE and "sources disagree" in outcome.reason
    assert "sibling ckpt-90" in outcome.reason


def test_at_most_the_documented_number_of_sibling_indexes_is_read(tmp_path):
    tf = _tf()
    module = tf.Module()
    module.w = tf.Variable(tf.zeros([4]))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=module), str(tmp_path), max_to_keep=None)
    for _ in range(MAX_SIBLINGS_READ + 3):
        module.w.assign_add(tf.ones([4]))
        prefix = manager.save()
    orphan(prefix)
    outcome = rebuild(context(prefix))
    assert outcome.status == REBUILT, outcome.reason
    [agree] = [c for c in outcome.checks if "sources agree on every key" in c]
    assert agree.startswith(f"{MAX_SIBLINGS_READ} sources agree")
    assert "sibling ckpt-3" in agree and "sibling ckpt-2" not in agree and "sibling ckpt-1," not in agree + ","


def test_the_cli_override_is_the_one_the_refusal_names(family_copy, capsys):
    family = family_copy("sharded")
    num_shards = read_index(open(index_filename(family.prefix), "rb").read()).header.num_shards
    orphan(family.prefix)
    _copy_shard(family.siblings[-1], family.prefix, 1, num_shards)
    assert main(["rebuild", family.prefix, "--no-tf-check"]) == 1
    err = capsys.readouterr().err
    command = err[err.index("`ckpt-rescue rebuild "):].split("`")[1]
    assert main(command.split()[1:] + ["--no-tf-check"]) == 0
    out = capsys.readouterr().out
    assert "allowed (--allow-unchanged-tensors)" in out and os.path.exists(index_filename(family.prefix))
