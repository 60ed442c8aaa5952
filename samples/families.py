"""Checkpoint families that TensorFlow itself writes: the real artifacts every test and demo stands on.

Each family is one way people save checkpoints (CheckpointManager, Keras applications, tf_keras
`save_weights`, a TF1 Saver, a SavedModel, a sharded save, odd dtypes, thousands of tensors). The
roots come from `samples.models`, so a family's `builder` recreates exactly what was saved.
"""

import os
from dataclasses import dataclass

from . import models  # noqa: E402
from .models import _tf

TF1_STEP = 200
SHARD_SIZE_LIMIT = 2048   # bytes per shard for MaxShardSizePolicy: slices `table` across shards


@dataclass
class Family:
    name: str
    prefix: str                 # the checkpoint prefix to orphan (for manager runs: the LATEST one)
    siblings: list[str]         # other healthy prefixes of the same run in the same dir ([] if none)
    kind: str                   # "tf2" (object-based), "tf1" (Saver), "savedmodel"
    savedmodel_dir: str | None = None   # for kind savedmodel: the export dir
    meta_path: str | None = None        # for tf1: the .meta graph written beside the checkpoint
    builder: str | None = None          # "samples.models:FUNC" that recreates the saved root


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def _randomize(variables, seed: int):
    """Give float variables fresh values, so checkpoints of one run differ in their bytes."""
    import numpy as np

    rng = _rng(seed)
    for var in variables:
        current = np.asarray(var.numpy())
        if np.issubdtype(current.dtype, np.floating):
            var.assign(rng.standard_normal(current.shape).astype(current.dtype))


def _train(variables, seed: int, rate: float = 0.01):
    """Move float variables by a small step, as training does between two saves of one run: every byte
    changes, and the values stay close element by element (recovery/plausibility.py relies on it)."""
    import numpy as np

    rng = _rng(seed)
    for var in variables:
        current = np.asarray(var.numpy())
        if np.issubdtype(current.dtype, np.floating):
            var.assign((current + rate * rng.standard_normal(current.shape)).astype(current.dtype))


def _keras3_adam(directory: str) -> Family:
    tf = _tf()
    ckpt = models.keras3_adam()
    model, optimizer = ckpt.model, ckpt.optimizer
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=5)
    rng = _rng(3)
    saved = []
    for _ in range(3):
        x = tf.constant(rng.standard_normal((16, 8)), tf.float32)
        y = tf.constant(rng.standard_normal((16, 4)), tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        saved.append(manager.save())
    return Family("keras3_adam", saved[-1], saved[:-1], "tf2", builder="samples.models:keras3_adam")


def _keras_app(directory: str) -> Family:
    ckpt = models.keras_app()
    _randomize(ckpt.model.non_trainable_variables, seed=5)   # BatchNorm statistics, not just 0/1
    prefix = ckpt.save(os.path.join(directory, "ckpt"))
    return Family("keras_app", prefix, [], "tf2", builder="samples.models:keras_app")


def _tf_keras_weights(directory: str) -> Family:
    model = models.tf_keras_weights()
    rng = _rng(7)
    model.train_on_batch(rng.standard_normal((8, 6)).astype("float32"), rng.standard_normal((8, 3)).astype("float32"))
    prefix = os.path.join(directory, "weights")
    model.save_weights(prefix)
    return Family("tf_keras_weights", prefix, [], "tf2", builder="samples.models:tf_keras_weights")


def _tf1_saver(directory: str) -> Family:
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        init = v1.random_normal_initializer(seed=11)
        # Zero-size variables first ("Aempty" < "Counts"), in the middle (right before the slices of the
        # partitioned "embedding", at the same offset) and last, in the Saver's sorted write order.
        v1.get_variable("Aempty", [0, 3], initializer=init)
        v1.get_variable("e_empty", [0], initializer=init)
        v1.get_variable("zz_empty", [4, 0], dtype=tf.int32, initializer=v1.zeros_initializer())
        v1.get_variable("dense/kernel", [4, 3], initializer=init)
        v1.get_variable("dense/bias", [3], initializer=init)
        v1.get_variable("embedding", [10, 5], initializer=init, partitioner=v1.fixed_size_partitioner(3))
        v1.get_variable("Counts", [2], dtype=tf.int32, initializer=v1.ones_initializer())
        global_step = v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(global_step.assign(TF1_STEP))
            prefix = saver.save(session, os.path.join(directory, "model.ckpt"), global_step=TF1_STEP)
    return Family("tf1_saver", prefix, [], "tf1", meta_path=prefix + ".meta")


def _savedmodel(directory: str) -> Family:
    tf = _tf()
    module = models.savedmodel_module()
    _randomize(module.trainable_variables, seed=13)
    module.steps.assign(42)
    module.mask.assign([True, False, True, True, False])
    export_dir = os.path.join(directory, "export")
    tf.saved_model.save(module, export_dir)
    if not os.path.exists(os.path.join(export_dir, "fingerprint.pb")):
        raise RuntimeError(f"TensorFlow wrote no fingerprint.pb in {export_dir}")
    return Family("savedmodel", os.path.join(export_dir, "variables", "variables"), [], "savedmodel",
                  savedmodel_dir=export_dir, builder="samples.models:savedmodel_module")


def _sharded(directory: str) -> Family:
    tf = _tf()
    ckpt = models.sharded_module()
    options = tf.train.CheckpointOptions(experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
        max_shard_size=SHARD_SIZE_LIMIT))
    prefixes = []
    _randomize(ckpt.module.trainable_variables, seed=0)
    for step in (100, 200):
        _train(ckpt.module.trainable_variables, seed=step)
        ckpt.module.step.assign(step)
        prefixes.append(ckpt.write(os.path.join(directory, f"sharded-{step}"), options=options))
    return Family("sharded", prefixes[-1], prefixes[:-1], "tf2", builder="samples.models:sharded_module")


def _mixed_dtypes(directory: str) -> Family:
    tf = _tf()
    ckpt = models.mixed_dtypes()
    m = ckpt.module
    prefixes = []
    for step, words in ((1, ["", "alpha", "a rather longer string, for the length varints"]),
                        (2, ["beta", "", "\u00fcnicode \u2713"])):
        m.bf16.assign(tf.constant([1.5 * step, -2.0, 0.25], tf.bfloat16))
        m.f16.assign(tf.constant([[0.5, step], [-1.0, 65504.0]], tf.float16))
        m.i8.assign(tf.constant([-128, 127, step, 0], tf.int8))
        m.u8.assign(tf.constant([0, 255, step, 7, 9], tf.uint8))
        m.flags.assign([True, step % 2 == 0, False])
        m.c64.assign(tf.constant([1 + 2j, -step * 1j], tf.complex64))
        m.f64.assign(tf.constant([3.141592653589793, step], tf.float64))
        m.count.assign(10 ** 12 + step)
        m.words.assign(words)
        prefixes.append(ckpt.save(os.path.join(directory, "ckpt")))
    return Family("mixed_dtypes", prefixes[-1], prefixes[:-1], "tf2", builder="samples.models:mixed_dtypes")


def _many_tensors(directory: str) -> Family:
    import numpy as np

    ckpt = models.many_tensors()
    for i, var in enumerate(ckpt.module.params.values()):
        var.assign(np.array([i, -i], np.float32))
    prefix = ckpt.save(os.path.join(directory, "ckpt"))
    return Family("many_tensors", prefix, [], "tf2", builder="samples.models:many_tensors")


def _iterator(directory: str) -> Family:
    """A tf.data iterator: its state is a DT_VARIANT tensor (not in FAMILY_NAMES; for variant tests)."""
    tf = _tf()
    iterator = iter(tf.data.Dataset.range(100).shuffle(10, seed=1).batch(3))
    ckpt = tf.train.Checkpoint(it=iterator)
    prefixes = []
    for _ in range(2):
        next(iterator)
        prefixes.append(ckpt.save(os.path.join(directory, "ckpt")))
    return Family("iterator", prefixes[-1], prefixes[:-1], "tf2")


# Shapes chosen so the embedding's 256-byte rows start 0 mod 256 in the data file: every 16th row
# boundary is 4 KiB-aligned, the case where untouched rows look most like a zeroed block.
TF1_KERNEL_SHAPE = (301, 722)
TF1_EMBEDDING_SHAPE = (2000, 64)
TF1_TRAINED_IDS = (4, 37, 1000)    # rows 5..36 stay zero: both edges of that run fall 4 KiB-aligned
TF1_ADAM_STEPS = 3


def _tf1_adam(directory: str) -> Family:
    """A TF1 Saver run with Adam, saved before training (step 0: zero slots, zero embedding) and after
    3 sparse steps (untouched embedding rows and their Adam slots stay zero; a frozen bias of zeros).
    Not in FAMILY_NAMES: for the zero-fill checks."""
    import numpy as np

    tf = _tf()
    v1 = tf.compat.v1
    rng = _rng(17)
    with tf.Graph().as_default():
        kernel = v1.get_variable("dense/kernel", TF1_KERNEL_SHAPE, initializer=v1.random_normal_initializer(seed=19))
        embedding = v1.get_variable("embedding", TF1_EMBEDDING_SHAPE, initializer=v1.zeros_initializer())
        v1.get_variable("frozen/bias", [TF1_KERNEL_SHAPE[1]], initializer=v1.zeros_initializer(), trainable=False)
        global_step = v1.train.get_or_create_global_step()
        x = tf.constant(rng.standard_normal((4, TF1_KERNEL_SHAPE[0])).astype(np.float32))
        weights = tf.constant(rng.standard_normal((len(TF1_TRAINED_IDS), TF1_EMBEDDING_SHAPE[1])).astype(np.float32))
        loss = (tf.reduce_sum(tf.square(tf.matmul(x, kernel)))
                + tf.reduce_sum(tf.gather(embedding, list(TF1_TRAINED_IDS)) * weights))
        train = v1.train.AdamOptimizer(0.01).minimize(loss, global_step=global_step)
        saver = v1.train.Saver(max_to_keep=5)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            untrained = saver.save(session, os.path.join(directory, "model.ckpt"), global_step=0)
            for _ in range(TF1_ADAM_STEPS):
                session.run(train)
            prefix = saver.save(session, os.path.join(directory, "model.ckpt"), global_step=TF1_ADAM_STEPS)
    return Family("tf1_adam", prefix, [untrained], "tf1", meta_path=prefix + ".meta")


def _tf1_dir_prefix(directory: str) -> Family:
    """`saver.save(sess, "model_dir/")`, as published pretrained models ship: files `model_dir/.index`,
    `model_dir/.data-00000-of-00001`, `model_dir/.meta`. The prefix keeps its trailing "/"."""
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        init = v1.random_normal_initializer(seed=23)
        v1.get_variable("conv/kernel", [3, 3, 2, 4], initializer=init)
        v1.get_variable("conv/bias", [4], initializer=init)
        v1.get_variable("logits/kernel", [4, 5], initializer=init)
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            prefix = saver.save(session, os.path.join(directory, "model_dir") + "/")
    if not prefix.endswith("/"):
        raise RuntimeError(f"TensorFlow saved to {prefix!r}, not to a prefix ending in '/'")
    return Family("tf1_dir_prefix", prefix, [], "tf1", meta_path=prefix + ".meta")


_WRITERS = {
    "keras3_adam": _keras3_adam,
    "keras_app": _keras_app,
    "tf_keras_weights": _tf_keras_weights,
    "tf1_saver": _tf1_saver,
    "savedmodel": _savedmodel,
    "sharded": _sharded,
    "mixed_dtypes": _mixed_dtypes,
    "many_tensors": _many_tensors,
    "iterator": _iterator,
    "tf1_adam": _tf1_adam,
    "tf1_dir_prefix": _tf1_dir_prefix,
}
EXTRA_FAMILY_NAMES: list[str] = ["iterator", "tf1_adam", "tf1_dir_prefix"]
FAMILY_NAMES: list[str] = [name for name in _WRITERS if name not in EXTRA_FAMILY_NAMES]


def write_family(name: str, directory: str) -> Family:
    """Let TensorFlow write family `name` into `directory` (created if needed; an empty one, since a
    CheckpointManager would count on from checkpoints it finds there)."""
    try:
        writer = _WRITERS[name]
    except KeyError:
        raise ValueError(f"unknown checkpoint family {name!r}; known: {', '.join(_WRITERS)}") from None
    os.makedirs(directory, exist_ok=True)
    return writer(os.path.abspath(directory))
