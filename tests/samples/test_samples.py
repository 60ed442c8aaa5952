"""The builders in samples.models recreate exactly what each family saved (the registry relies on it)."""

import importlib

import pytest

from samples import FAMILY_NAMES

pytestmark = pytest.mark.tf

# `Checkpoint.save()` adds a save counter that belongs to how a root was saved, not to the root.
SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def build(builder: str):
    module_name, function_name = builder.split(":")
    return getattr(importlib.import_module(module_name), function_name)()


@pytest.mark.parametrize("name", [n for n in FAMILY_NAMES if n != "tf1_saver"])
def test_builder_recreates_the_saved_keys_dtypes_and_shapes(name, pristine_family, tmp_path):
    import tensorflow as tf

    family = pristine_family(name)
    assert family.builder, f"{name} should name the builder of its root"
    written = tf.train.Checkpoint(build(family.builder)).write(str(tmp_path / "from-builder"))
    saved, rebuilt = tf.train.load_checkpoint(family.prefix), tf.train.load_checkpoint(written)
    expected_shapes = saved.get_variable_to_shape_map()
    expected_dtypes = saved.get_variable_to_dtype_map()
    for mapping in (expected_shapes, expected_dtypes):
        mapping.pop(SAVE_COUNTER, None)
    assert rebuilt.get_variable_to_shape_map() == expected_shapes
    assert rebuilt.get_variable_to_dtype_map() == expected_dtypes


def test_families_have_the_promised_shape(pristine_family):
    import os

    assert len(pristine_family("keras3_adam").siblings) == 2
    assert pristine_family("keras3_adam").prefix.endswith("ckpt-3")
    tf1 = pristine_family("tf1_saver")
    assert tf1.kind == "tf1" and tf1.prefix.endswith("model.ckpt-200") and os.path.exists(tf1.meta_path)
    saved_model = pristine_family("savedmodel")
    assert os.path.exists(os.path.join(saved_model.savedmodel_dir, "fingerprint.pb"))
    assert saved_model.prefix == os.path.join(saved_model.savedmodel_dir, "variables", "variables")
    sharded = pristine_family("sharded")
    assert len(sharded.siblings) == 1
    assert os.path.exists(sharded.prefix + ".data-00004-of-00005")


def test_family_copy_is_private_and_rewrites_paths(family_copy, pristine_family):
    import os

    copy, original = family_copy("tf1_saver"), pristine_family("tf1_saver")
    assert copy.prefix != original.prefix
    os.remove(copy.prefix + ".index")
    assert os.path.exists(original.prefix + ".index")
    with open(os.path.join(os.path.dirname(copy.prefix), "checkpoint")) as f:
        assert copy.prefix in f.read()
    assert family_copy("tf1_saver").prefix != copy.prefix
