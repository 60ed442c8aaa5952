"""SavedModel source: saved_model.pb sizes the orphaned variables; fingerprint.pb checks the result exactly."""

import os
import random
import shutil

import numpy as np
import pytest
from source_helpers import (
    assert_rebuilt_identically,
    assert_same_layout,
    context,
    orphan,
    tensor_values,
    written_layout,
)

from recovery import storage
from recovery.layout import Refusal
from recovery.rebuild import UNRECOVERABLE, rebuild
from recovery.sources.savedmodel import expected_checkpoint_hash, fingerprint64, savedmodel_dir_of, savedmodel_layouts

pytestmark = pytest.mark.tf


def _export(directory: str, module) -> str:
    import tensorflow as tf

    tf.saved_model.save(module, directory)
    return directory


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """SavedModels the savedmodel family must not be confused with, written by TensorFlow."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("exports")
    other = tf.Module()
    other.weights = tf.Variable(tf.ones([7], tf.float32))
    other.layer = tf.Module()
    other.layer.w = tf.Variable(tf.ones([2, 2], tf.float64))
    other.more = [tf.Variable(float(i)) for i in range(6)]   # as many objects as the family's, or more

    # Same structure as the family's module, but `kernel` is one column wider.
    from samples.models import savedmodel_module
    wider = savedmodel_module()
    wider.kernel = tf.Variable(tf.zeros([3, 5], tf.float32))

    with_table = tf.Module()
    with_table.v = tf.Variable(tf.ones([3], tf.float32))
    with_table.table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1)
    with_table.table.insert(tf.constant(["a", "b"]), tf.constant([1, 2], tf.int64))
    from samples.models import keras3_adam
    keras_run = keras3_adam()
    keras = tf.Module()
    keras.model, keras.optimizer = keras_run.model, keras_run.optimizer
    return {name: _export(str(root / name), module)
            for name, module in (("other", other), ("wider", wider), ("with_table", with_table), ("keras", keras))}


def test_layout_is_what_tensorflow_wrote(family_copy):
    family = family_copy("savedmodel")
    original = orphan(family.prefix)
    ctx = context(family.prefix)
    [layout] = savedmodel_layouts(ctx)
    assert layout.kind == "savedmodel"
    assert_same_layout(layout, written_layout(original, ctx))


def test_rebuild_is_byte_identical_and_checked_by_the_fingerprint(family_copy, pristine_family):
    import tensorflow as tf

    family = family_copy("savedmodel")
    expected_values = tensor_values(pristine_family("savedmodel").prefix)
    original = orphan(family.prefix)
    ctx = context(family.prefix)
    [layout] = savedmodel_layouts(ctx)
    assert layout.expected_fingerprint == tf.saved_model.experimental.read_fingerprint(
        family.savedmodel_dir).checkpoint_hash
    assert_rebuilt_identically(ctx, [savedmodel_layouts], original, expected_values)


def test_a_fingerprint_that_disagrees_stops_the_rebuild(family_copy):
    from tensorflow.core.protobuf import fingerprint_pb2

    family = family_copy("savedmodel")
    path = os.path.join(family.savedmodel_dir, "fingerprint.pb")
    fingerprint = fingerprint_pb2.FingerprintDef()
    with open(path, "rb") as f:
        fingerprint.ParseFromString(f.read())
    fingerprint.checkpoint_hash ^= 1
    with open(path, "wb") as f:
        f.write(fingerprint.SerializeToString())
    orphan(family.prefix)
    outcome = rebuild(context(family.prefix), sources=[savedmodel_layouts])
    assert outcome.status == UNRECOVERABLE and outcome.index_bytes is None
    assert "fingerprint.pb" in outcome.reason


def test_keras_model_with_optimizer_exported_as_savedmodel(tmp_path, exports):
    export_dir = str(tmp_path / "export")
    shutil.copytree(exports["keras"], export_dir)
    prefix = os.path.join(export_dir, "variables", "variables")
    values = tensor_values(prefix)
    original = orphan(prefix)
    ctx = context(prefix)
    [layout] = savedmodel_layouts(ctx)
    assert_same_layout(layout, written_layout(original, ctx))
    assert layout.expected_fingerprint is not None
    assert_rebuilt_identically(ctx, [savedmodel_layouts], original, values)


def test_fingerprint64_is_tensorflows(pristine_family):
    import tensorflow as tf

    export_dir = pristine_family("savedmodel").savedmodel_dir
    with open(os.path.join(export_dir, "variables", "variables.index"), "rb") as f:
        index_bytes = f.read()
    fs, path = storage.url_to_fs(export_dir)
    tf_hash = tf.saved_model.experimental.read_fingerprint(export_dir).checkpoint_hash
    assert fingerprint64(index_bytes) == tf_hash == expected_checkpoint_hash(fs, path)
    for data in (b"", b"x", random.Random(1).randbytes(1000), index_bytes[:100]):
        fingerprint = tf.fingerprint(tf.constant(np.frombuffer(data, np.uint8)[None, :]), "farmhash64")
        assert fingerprint64(data) == int.from_bytes(fingerprint.numpy()[0].tobytes(), "little")


def test_no_fingerprint_means_no_check(family_copy):
    family = family_copy("savedmodel")
    os.remove(os.path.join(family.savedmodel_dir, "fingerprint.pb"))
    fs, path = storage.url_to_fs(family.savedmodel_dir)
    assert expected_checkpoint_hash(fs, path) is None
    orphan(family.prefix)
    [layout] = savedmodel_layouts(context(family.prefix))
    assert layout.expected_fingerprint is None


def test_saved_model_pb_of_another_model_is_refused(family_copy, exports):
    family = family_copy("savedmodel")
    shutil.copy(os.path.join(exports["other"], "saved_model.pb"), os.path.join(family.savedmodel_dir, "saved_model.pb"))
    orphan(family.prefix)
    [refusal] = savedmodel_layouts(context(family.prefix))
    assert isinstance(refusal, Refusal)
    assert "another model" in refusal.reason and "`kernel`" in refusal.reason


def test_a_saved_model_pb_with_one_shape_off_never_yields_an_index(family_copy, exports):
    family = family_copy("savedmodel")
    shutil.copy(os.path.join(exports["wider"], "saved_model.pb"), os.path.join(family.savedmodel_dir, "saved_model.pb"))
    orphan(family.prefix)
    ctx = context(family.prefix)
    [layout] = savedmodel_layouts(ctx)   # the keys match: only the bytes can tell
    assert ("kernel/.ATTRIBUTES/VARIABLE_VALUE", (3, 5)) in [(t.key, t.shape) for t in layout.tensors]
    outcome = rebuild(ctx, sources=[savedmodel_layouts])
    assert outcome.status == UNRECOVERABLE and outcome.index_bytes is None
    assert "saved_model.pb" in outcome.reason or any("saved_model.pb" in str(r) for r in outcome.refusals)


def test_non_variable_state_is_refused_by_name(tmp_path, exports):
    export_dir = str(tmp_path / "export")
    shutil.copytree(exports["with_table"], export_dir)
    orphan(os.path.join(export_dir, "variables", "variables"))
    [refusal] = savedmodel_layouts(context(os.path.join(export_dir, "variables", "variables")))
    assert isinstance(refusal, Refusal)
    assert "table/.ATTRIBUTES/table" in refusal.reason and "resource" in refusal.reason


def test_only_a_saved_models_variables_are_its_business(family_copy):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    assert savedmodel_layouts(context(family.prefix)) == []
    assert savedmodel_dir_of("/a/export/variables/variables") == "/a/export"
    assert savedmodel_dir_of("/a/export/variables/ckpt-1") is None
    assert savedmodel_dir_of("/a/variables") is None
