"""Builders: zero-argument functions that recreate a family's saved root with every variable created.

`samples.families` saves exactly what these return (after changing the values), so a builder is,
by construction, the registry entry that can rebuild that family's index.
"""



MANY_TENSORS_COUNT = 4000
SEED = 1234


def _tf():
    """TensorFlow. Samples run only where it is installed; callers that mind its start-up notices
    (the demo, registry builders) have already imported it quietly (pipeline.tensorflow_env)."""
    import tensorflow

    return tensorflow


def keras3_mlp():
    """The Keras 3 model alone (no optimizer): 8 -> 16 -> 4 with named layers."""
    _tf()
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([
        keras.Input(shape=(8,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(4, name="logits"),
    ], name="mlp")
    return model


def keras3_adam():
    """`tf.train.Checkpoint(model=..., optimizer=Adam)` with the Adam slots built."""
    _tf()
    import keras

    model = keras3_mlp()
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    return _tf().train.Checkpoint(model=model, optimizer=optimizer)


def keras_app_model():
    """A tiny `keras.applications.MobileNet` (alpha 0.25, 32x32 input, 10 classes, random weights)."""
    _tf()
    import keras

    keras.utils.set_random_seed(SEED)
    return keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=10)


def keras_app():
    return _tf().train.Checkpoint(model=keras_app_model())


def tf_keras_weights():
    """A compiled tf_keras (Keras 2) model whose optimizer has its slots: what `save_weights` saves."""
    _tf()
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    model = tf_keras.Sequential([
        tf_keras.Input(shape=(6,)),
        tf_keras.layers.Dense(12, activation="relu", name="hidden"),
        tf_keras.layers.Dense(3, name="out"),
    ], name="k2_mlp")
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _module(variables: dict):
    tf = _tf()
    module = tf.Module()
    for name, value in variables.items():
        setattr(module, name, value)
    return module


def savedmodel_module():
    """The root exported by the `savedmodel` family: a few variables of different dtypes and shapes."""
    tf = _tf()
    return _module({
        "kernel": tf.Variable(tf.zeros([3, 4], tf.float32)),
        "unused": tf.Variable(tf.zeros([0, 4], tf.float32)),     # zero-size tensors in the middle and last
        "bias": tf.Variable(tf.zeros([4], tf.float32)),
        "no_scales": tf.Variable(tf.zeros([0], tf.float16)),
        "scale": tf.Variable(tf.zeros([2], tf.float16)),
        "steps": tf.Variable(tf.constant(0, tf.int64)),
        "mask": tf.Variable(tf.zeros([5], tf.bool)),
        "no_ids": tf.Variable(tf.zeros([2, 0], tf.int32)),
    })


def sharded_module():
    """Variables in an order that, with 2 KiB shards, exercises every sharding quirk.

    `embedding` fills shard 0 exactly, so `table` (6 KiB) starts in shard 1: its full entry then
    carries the merged shard_id 1, and `dense` before it makes `table` split into several slices
    per shard.
    """
    tf = _tf()
    module = _module({
        "embedding": tf.Variable(tf.zeros([32, 16], tf.float32)),
        "dense": tf.Variable(tf.zeros([8, 8], tf.float32)),
        "table": tf.Variable(tf.zeros([96, 16], tf.float32)),
        "bias": tf.Variable(tf.zeros([8], tf.float32)),
        "step": tf.Variable(tf.constant(0, tf.int64)),
    })
    return tf.train.Checkpoint(module=module)


def mixed_dtypes_module():
    """One variable per interesting dtype, including strings (with an empty one) and 0-element tensors
    first, in the middle and last in the write order."""
    tf = _tf()
    return _module({
        "no_ids": tf.Variable(tf.zeros([0], tf.int32)),
        "bf16": tf.Variable(tf.zeros([3], tf.bfloat16)),
        "f16": tf.Variable(tf.zeros([2, 2], tf.float16)),
        "i8": tf.Variable(tf.zeros([4], tf.int8)),
        "u8": tf.Variable(tf.zeros([5], tf.uint8)),
        "flags": tf.Variable(tf.zeros([3], tf.bool)),
        "no_rows": tf.Variable(tf.zeros([0, 2], tf.float64)),
        "c64": tf.Variable(tf.zeros([2], tf.complex64)),
        "f64": tf.Variable(tf.zeros([2], tf.float64)),
        "count": tf.Variable(tf.constant(0, tf.int64)),
        "words": tf.Variable(tf.constant(["", "", ""])),
        "empty": tf.Variable(tf.zeros([0, 4], tf.float32)),
    })


def mixed_dtypes():
    return _tf().train.Checkpoint(module=mixed_dtypes_module())


def many_tensor_names(count: int = MANY_TENSORS_COUNT) -> list[str]:
    """~100-character names that differ early (little prefix sharing), so the index spans several blocks."""
    return [f"layer_{i:05d}_encoder_stack_block_multi_head_attention_output_projection_kernel_weights_and_biases"
            for i in range(count)]


def many_tensors():
    tf = _tf()
    module = tf.Module()
    module.params = {name: tf.Variable(tf.zeros([2], tf.float32)) for name in many_tensor_names()}
    return tf.train.Checkpoint(module=module)
