"""The end users care about: after a rebuild, the model from the registry restores from the
checkpoint, every saved value is consumed, and the values are the ones TensorFlow saved."""

import os

import numpy as np
import pytest

from pipeline.builders import resolve_registry
from pipeline.resources import EXAMPLE_REGISTRY
from pipeline.tensorflow_env import import_tensorflow
from pipeline.tf_judge import tf_reads_every_tensor
from recovery import storage
from recovery.context import open_orphan
from recovery.rebuild import REBUILT, rebuild
from tfbundle import data_filename, index_filename, read_index

REGISTRY = str(EXAMPLE_REGISTRY)
# family -> registry entry that rebuilds its model
MODELS = {"keras3_adam": "keras3_adam", "keras_app": "keras_app", "tf_keras_weights": "tf_keras_weights",
          "savedmodel": "savedmodel_module", "mixed_dtypes": "mixed_dtypes"}


def _values(tf, prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.mark.parametrize("family_name", sorted(MODELS))
def test_rebuilt_checkpoint_restores_into_the_registered_model(family_copy, family_name, tmp_path):
    tf = import_tensorflow()
    family = family_copy(family_name)
    index_path = index_filename(family.prefix)
    with open(index_path, "rb") as f:
        original = f.read()
    saved_values = _values(tf, family.prefix)
    os.remove(index_path)

    entry = MODELS[family_name]
    layouts = resolve_registry(REGISTRY, only=entry)
    fs, path = storage.url_to_fs(family.prefix)
    outcome = rebuild(open_orphan(fs, path, registry_layouts=layouts))
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original
    num_shards = read_index(outcome.index_bytes).header.num_shards
    ok, message = tf_reads_every_tensor([data_filename(family.prefix, s, num_shards) for s in range(num_shards)],
                                        outcome.index_bytes)
    assert ok, message
    with open(index_path, "wb") as f:
        f.write(outcome.index_bytes)

    import importlib

    # Restore the way each kind of user does, then save what the model holds and compare values.
    resaved_prefix = str(tmp_path / "resaved")
    if family_name == "savedmodel":
        loaded = tf.saved_model.load(family.savedmodel_dir)
        tf.train.Checkpoint(loaded).write(resaved_prefix)
    else:
        root = getattr(importlib.import_module("samples.models"), entry)()
        if family_name == "tf_keras_weights":
            # save_weights() optimizer slots stay pending until the optimizer first runs
            root.load_weights(family.prefix).assert_existing_objects_matched()
            root.save_weights(resaved_prefix)
        else:
            root.restore(family.prefix).assert_consumed()
            resaved_prefix = root.write(resaved_prefix)
    resaved = _values(tf, resaved_prefix)
    expected = {k: v for k, v in saved_values.items() if not k.startswith("save_counter/")}
    if family_name == "tf_keras_weights":
        expected = {k: v for k, v in expected.items() if "/.OPTIMIZER_SLOT/" not in k}
    assert expected, "nothing to compare"
    missing = sorted(set(expected) - set(resaved))
    assert not missing, f"the restored model lacks {missing[:5]}"
    for key, value in expected.items():
        np.testing.assert_array_equal(resaved[key], value, err_msg=key)
