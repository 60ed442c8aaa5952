"""Checkpoints for the salvage tests, written by TensorFlow in the session, with the value of every
variable captured the moment it was saved: the bit-for-bit reference a salvaged restore is held to.

- `keras_run`: a Keras 3 model (a frozen layer, two trained ones) with Adam, saved three times by a
  CheckpointManager into one shard each;
- `keras_sharded_run`: the same model saved twice with a MaxShardSizePolicy (several shards, variables
  sliced across them);
- `tf1_run`: a TF1 sharded Saver over three devices with a partitioned variable (three shards, a
  `.meta` graph), saved twice.

`run_copy(run)` copies a run into the test's own directory, free to damage. Registered as a plugin in
conftest.py, so the session writes each run once.
"""

import dataclasses
import os
import shutil

import numpy as np
import pytest

KERAS_SHARD_LIMIT = 100_000     # bytes per shard for the sharded Keras run: ~5 shards, kernels sliced
TF1_DEVICES = 3


@dataclasses.dataclass
class SavedRun:
    directory: str
    prefixes: list                 # in save order; the last one is damaged by the tests
    values: dict                   # prefix -> {name: numpy value captured at save time}
    kind: str                      # "keras" or "tf1"

    @property
    def latest(self) -> str:
        return self.prefixes[-1]

    def saved(self, prefix: str | None = None) -> dict:
        return self.values[prefix or self.latest]


def keras_root():
    """tf.train.Checkpoint(model=..., optimizer=...) with the same initial values every time it is built."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(32,)),
        keras.layers.Dense(128, name="frozen", trainable=False),
        keras.layers.Dense(256, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits"),
    ], name="net")
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    return tf.train.Checkpoint(model=model, optimizer=optimizer)


def variable_at(root, key: str):
    """The object a TF2 checkpoint key names: its path from the root, `/`-separated, indexes as digits."""
    target = root
    for part in key.split("/.ATTRIBUTES/")[0].split("/"):
        target = target[int(part)] if part.isdigit() else getattr(target, part)
    return target


def keras_values(root, prefix: str) -> dict:
    """checkpoint key -> value of the variable it names, read from the live objects (not the file)."""
    import tensorflow as tf

    names = [name for name, _ in tf.train.list_variables(prefix) if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    return {name: np.array(variable_at(root, name).numpy()) for name in names}


def _write_keras(directory: str, saves: int, options=None) -> SavedRun:
    import tensorflow as tf

    root = keras_root()
    model, optimizer = root.model, root.optimizer
    manager = tf.train.CheckpointManager(root, directory, max_to_keep=5)
    rng = np.random.default_rng(11)
    prefixes, values = [], {}
    for _ in range(saves):
        x = tf.constant(rng.standard_normal((16, 32)), tf.float32)
        y = tf.constant(rng.standard_normal((16, 10)), tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        prefix = manager.save(options=options)
        prefixes.append(prefix)
        values[prefix] = keras_values(root, prefix)
    return SavedRun(directory, prefixes, values, "keras")


def tf1_graph(v1, initializer=None):
    """The TF1 variables, each on its device; `initializer` overrides every initial value (for restores)."""
    import tensorflow as tf

    init = initializer or v1.random_normal_initializer(seed=3)
    with tf.device("/cpu:0"):
        v1.get_variable("dense/kernel", [300, 200], initializer=init)
        v1.get_variable("dense/bias", [200], initializer=init)
    with tf.device("/cpu:1"):
        v1.get_variable("embedding", [2000, 64], initializer=init, partitioner=v1.fixed_size_partitioner(3))
    with tf.device("/cpu:2"):
        v1.get_variable("logits/kernel", [200, 10], initializer=init)
        v1.train.get_or_create_global_step()


def tf1_session(v1):
    return v1.Session(config=v1.ConfigProto(device_count={"CPU": TF1_DEVICES}))


def _write_tf1(directory: str) -> SavedRun:
    import tensorflow as tf

    v1 = tf.compat.v1
    prefixes, values = [], {}
    rng = np.random.default_rng(5)
    with tf.Graph().as_default():
        tf1_graph(v1)
        saver = v1.train.Saver(sharded=True, max_to_keep=5)
        variables = {v.op.name: v for v in v1.global_variables()}
        with tf1_session(v1) as session:
            session.run(v1.global_variables_initializer())
            for step in (100, 200):
                # Training nudges the dense layer and one part of the embedding, as steps of gradient descent do
                # (each step's values close to the last's); logits stay as they were.
                for name in ("dense/kernel", "dense/bias", "embedding/part_1"):
                    before = session.run(variables[name])
                    nudge = 0.05 * rng.standard_normal(before.shape)
                    session.run(variables[name].assign((before + nudge).astype(np.float32)))
                session.run(v1.train.get_global_step().assign(step))
                prefix = saver.save(session, os.path.join(directory, "model.ckpt"), global_step=step)
                prefixes.append(prefix)
                values[prefix] = {name: np.array(value) for name, value in
                                  zip(variables, session.run(list(variables.values())))}
    return SavedRun(directory, prefixes, values, "tf1")


@pytest.fixture(scope="session")
def keras_run(tmp_path_factory) -> SavedRun:
    return _write_keras(str(tmp_path_factory.mktemp("salvage-keras")), saves=3)


@pytest.fixture(scope="session")
def keras_sharded_run(tmp_path_factory) -> SavedRun:
    import tensorflow as tf

    options = tf.train.CheckpointOptions(experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
        max_shard_size=KERAS_SHARD_LIMIT))
    return _write_keras(str(tmp_path_factory.mktemp("salvage-keras-sharded")), saves=2, options=options)


@pytest.fixture(scope="session")
def tf1_run(tmp_path_factory) -> SavedRun:
    return _write_tf1(str(tmp_path_factory.mktemp("salvage-tf1")))


@pytest.fixture
def run_copy(tmp_path):
    """`run_copy(run) -> SavedRun` in a directory of this test's own (the `checkpoint` file rewritten)."""
    def copy(run: SavedRun) -> SavedRun:
        target = str(tmp_path / f"run-{os.path.basename(run.directory)}")
        shutil.copytree(run.directory, target)
        state = os.path.join(target, "checkpoint")
        if os.path.exists(state):
            with open(state) as f:
                text = f.read()
            with open(state, "w") as f:
                f.write(text.replace(run.directory, target))
        move = lambda p: target + p[len(run.directory):]   # noqa: E731
        return SavedRun(target, [move(p) for p in run.prefixes], {move(p): v for p, v in run.values.items()},
                        run.kind)

    return copy


# ---- damage, and the judgement of a salvaged checkpoint by TensorFlow ------------------------------

def data_path(prefix: str, shard: int = 0, shards: int = 1) -> str:
    return f"{prefix}.data-{shard:05d}-of-{shards:05d}"


def truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def zero_bytes(path: str, start: int, length: int) -> None:
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(length))


def stored_tensors(prefix: str) -> list:
    """(full key, shard, offset, size) of every stored tensor (each slice of a sliced one) of a healthy checkpoint."""
    from tfbundle import decode_slice_key, is_slice_key, read_index

    with open(prefix + ".index", "rb") as f:
        index = read_index(f.read())
    found = []
    for key, entry in index.data_entries():
        name = decode_slice_key(key)[0] if is_slice_key(key) else key.decode()
        found.append((name, entry.shard_id, entry.offset, entry.size))
    return found


def keys_touching(prefix: str, shard: int, start: int, end: int = 1 << 62) -> set:
    """Full keys with stored bytes in [start, end) of `shard`: what damage there destroys (the object graph
    apart: salvage carries one over, or refuses)."""
    return {name for name, s, offset, size in stored_tensors(prefix)
            if s == shard and offset < end and start < offset + size and name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def read_manifest(out_prefix: str) -> dict:
    import json

    with open(out_prefix + ".salvage.json") as f:
        return json.load(f)


def manifest_keys(doc: dict, part: str) -> set:
    return {item["key"] for item in doc[part]}


def restore_keras(prefix: str, keys) -> tuple:
    """({key: value after}, {key: value before}) of the variables `keys` name in a fresh root read from
    `prefix` with expect_partial(), as a user restores a salvaged checkpoint."""
    root = keras_root()
    before = {k: np.array(variable_at(root, k).numpy()) for k in keys}
    root.read(prefix).expect_partial()
    return {k: np.array(variable_at(root, k).numpy()) for k in keys}, before


def restore_tf1(prefix: str, names: list, fill: float = -7.0) -> dict:
    """op name -> value after initializing every variable to `fill` and restoring `names` from `prefix`."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        tf1_graph(v1, v1.constant_initializer(fill))
        variables = {v.op.name: v for v in v1.global_variables()}
        saver = v1.train.Saver(var_list=[v for name, v in variables.items() if name in names])
        with tf1_session(v1) as session:
            session.run(v1.global_variables_initializer())
            saver.restore(session, prefix)
            return {name: np.array(value) for name, value in zip(variables, session.run(list(variables.values())))}


# ---- what a salvaged checkpoint must satisfy ---------------------------------------------------

def offset_of(prefix: str, key: str, shard: int = 0) -> int:
    return next(offset for name, s, offset, _ in stored_tensors(prefix) if name == key and s == shard)


def orphan(prefix: str) -> dict:
    """Delete the index; return its entries, to compare the salvaged index with."""
    from tfbundle import read_index

    with open(prefix + ".index", "rb") as f:
        index = read_index(f.read())
    os.remove(prefix + ".index")
    return index.entries


def check_keras(run, out: str, doc: dict, damaged: set, original_entries: dict) -> None:
    """TensorFlow restores exactly the kept variables, bit for bit, and none of the lost or damaged ones."""
    saved = run.saved()
    kept = manifest_keys(doc, "kept")
    lost = manifest_keys(doc, "lost") | {item["key"] for item in doc["unconfirmed"] if not item["included"]}
    assert kept | lost == set(saved) and not kept & lost
    assert damaged <= manifest_keys(doc, "lost")
    after, before = restore_keras(out, saved)
    for key in kept:
        np.testing.assert_array_equal(after[key], saved[key], err_msg=key)
    for key in lost:
        np.testing.assert_array_equal(after[key], before[key], err_msg=f"{key} is lost but was restored")
    for key in damaged:
        if not np.array_equal(saved[key], before[key]):
            assert not np.array_equal(after[key], saved[key]), key
    check_index(out, original_entries)


def check_index(out: str, original_entries: dict) -> None:
    """One shard; every tensor's dtype, shape, size and CRC equal to the original index's (the graph apart)."""
    from tfbundle import OBJECT_GRAPH_KEY, read_index

    with open(out + ".index", "rb") as f:
        salvaged = read_index(f.read())
    assert salvaged.header.num_shards == 1
    for key, entry in salvaged.entries.items():
        if key == OBJECT_GRAPH_KEY.encode():
            continue
        original = original_entries[key]
        assert (entry.dtype, entry.shape, entry.size, entry.crc32c) == (
            original.dtype, original.shape, original.size, original.crc32c), key


def check_tf1(run, out: str, names: list, lost: set) -> None:
    after = restore_tf1(out, names)
    saved = run.saved()
    assert set(after) == set(names) | lost
    for name in names:
        np.testing.assert_array_equal(after[name], saved[name], err_msg=name)
    for name in lost:
        assert (after[name] == -7.0).all(), f"{name} is lost but was restored"
