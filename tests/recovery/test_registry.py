"""The registry: its file format, `ckpt-rescue register`, builders resolved with TensorFlow, and the registry source."""

import os

import fsspec
import pytest
from source_helpers import (
    assert_rebuilt_identically,
    assert_same_layout,
    context,
    orphan,
    tensor_values,
    written_layout,
)

from pipeline.builders import resolve_registry
from pipeline.cli import main
from pipeline.resources import EXAMPLE_REGISTRY
from recovery.layout import Layout, Refusal
from recovery.rebuild import UNRECOVERABLE, rebuild
from recovery.registry import RegistryError, add_entry, load_registry, parse_entries
from recovery.sources.registry_source import registry_layouts
from tfbundle import index_filename

SHIPPED_REGISTRY = str(EXAMPLE_REGISTRY)

WIDER_MODELS = '''
import keras
import tensorflow as tf


def adam_wider():
    """keras3_adam's model with 5 logits instead of 4: the same keys, one shape off."""
    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(5, name="logits")], name="mlp")
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    return tf.train.Checkpoint(model=model, optimizer=optimizer)


def not_trackable():
    return 42
'''


def _one_entry(name: str, builder: str) -> str:
    return f"architectures:\n  {name}:\n    builder: {builder}\n"


def _write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# --- the file format ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, complaint", [
    ("architectures:\n  a:\n    builder: m:f\nextra: 1\n", "unknown top-level key(s) extra"),
    ("architectures:\n  a:\n    builder: m:f\n    shape: [1]\n", "unknown key(s) shape"),
    ("architectures:\n  a:\n    builder: m:f\n    layout: layouts/a.json\n", "not builder and layout"),
    ("architectures:\n  a: {}\n", "not neither"),
    ("architectures:\n  a:\n    builder: just_a_module\n", "is not `module:function`"),
    ("architectures:\n  a b:\n    builder: m:f\n", "names may use"),
    ("architectures:\n  - a\n", "must map names to entries"),
    ("architectures: [\n", "not valid YAML"),
    ("architectures:\n  a:\n    layout: layouts/missing.json\n", "layout file"),
])
def test_invalid_registries_say_what_is_wrong(tmp_path, text, complaint):
    path = _write(tmp_path / "architectures.yaml", text)
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    assert complaint in str(raised.value)


def test_missing_registry_file(tmp_path):
    with pytest.raises(RegistryError, match="no registry file"):
        load_registry(str(tmp_path / "nope.yaml"))


def test_add_entry_keeps_comments_and_replaces_only_with_force(tmp_path):
    path = _write(tmp_path / "r.yaml", "# my models\narchitectures:\n  a:      # the first\n"
                                      "    builder: m:a\n  # b follows\n  b:\n    builder: m:b\n")
    add_entry(path, "c", builder="pkg.mod:build_c")
    with pytest.raises(RegistryError, match="already registered"):
        add_entry(path, "a", builder="m:other")
    add_entry(path, "a", layout="layouts/a v2.json", force=True)
    text = open(path).read()
    assert "# my models" in text and "# b follows" in text
    parsed = parse_entries(text)
    assert list(parsed) == ["b", "c", "a"]
    assert parsed["a"].layout == "layouts/a v2.json" and parsed["a"].builder is None
    assert parsed["c"].builder == "pkg.mod:build_c"


def test_add_entry_rewrites_files_it_cannot_edit_in_place(tmp_path):
    flow = _write(tmp_path / "flow.yaml", "architectures: {a: {builder: 'm:a'}}\n")
    add_entry(flow, "b", builder="m:b")
    assert {n: e.builder for n, e in parse_entries(open(flow).read()).items()} == {"a": "m:a", "b": "m:b"}
    mixed = _write(tmp_path / "mixed.yaml", "architectures:\n  a: {builder: 'm:a'}\n  c:\n    builder: m:c\n")
    add_entry(mixed, "a", builder="m:new", force=True)
    text = open(mixed).read()
    assert "m:a" not in text
    assert {n: e.builder for n, e in parse_entries(text).items()} == {"a": "m:new", "c": "m:c"}


# --- register and resolve -------------------------------------------------------------------------

@pytest.fixture
def registry_dir(tmp_path):
    directory = tmp_path / "configs"
    directory.mkdir()
    _write(directory / "wider_models.py", WIDER_MODELS)
    return directory


@pytest.mark.tf
def test_register_from_checkpoint_captures_the_layout(registry_dir, pristine_family, capsys):
    registry = str(registry_dir / "architectures.yaml")
    family = pristine_family("mixed_dtypes")
    assert main(["register", "mixed", "--from-checkpoint", family.prefix, "--registry", registry]) == 0
    assert "layouts/mixed.json" in capsys.readouterr().out
    loaded = load_registry(registry)
    assert loaded.entries["mixed"].layout == "layouts/mixed.json"
    with open(index_filename(family.prefix), "rb") as f:
        captured = loaded.layouts()["mixed"]
        assert_same_layout(captured, written_layout(f.read(), context(family.prefix)))
    assert captured.source == "registered `mixed`"

    # Never clobbered without --force, and a failed call leaves the file as it was.
    before = open(registry).read()
    assert main(["register", "mixed", "--from-checkpoint", family.prefix, "--registry", registry]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["register", "other", "--from-checkpoint", family.prefix + "-nope", "--registry", registry]) == 2
    assert "no checkpoint with prefix" in capsys.readouterr().err   # the shared diagnosis
    assert open(registry).read() == before
    assert main(["register", "mixed", "--from-checkpoint", family.prefix, "--registry", registry, "--force"]) == 0


@pytest.mark.tf
def test_register_from_a_remote_checkpoint(registry_dir, pristine_family):
    family = pristine_family("keras3_adam")
    directory = os.path.dirname(family.prefix)
    memory = fsspec.filesystem("memory")
    for name in os.listdir(directory):
        if name.startswith("ckpt-3."):
            with open(os.path.join(directory, name), "rb") as f:
                memory.pipe(f"/registry-test/{name}", f.read())
    registry = str(registry_dir / "architectures.yaml")
    try:
        assert main(["register", "remote", "--from-checkpoint", "memory://registry-test/ckpt-3",
                     "--registry", registry]) == 0
    finally:
        memory.rm("/registry-test", recursive=True)
    with open(index_filename(family.prefix), "rb") as f:
        expected = written_layout(f.read(), context(family.prefix))
    assert_same_layout(load_registry(registry).layouts()["remote"], expected)


@pytest.mark.tf
def test_register_builder_relative_to_the_registry(registry_dir, capsys):
    registry = str(registry_dir / "architectures.yaml")
    assert main(["register", "wider", "--builder", "wider_models:adam_wider", "--registry", registry]) == 0
    assert "16 tensors" in capsys.readouterr().out
    assert load_registry(registry).entries["wider"].builder == "wider_models:adam_wider"
    before = open(registry).read()
    for builder, complaint in (("wider_models:missing", "cannot be imported"),
                               ("no_such_module:f", "cannot be imported"),
                               ("wider_models:not_trackable", "cannot checkpoint")):
        assert main(["register", "bad", "--builder", builder, "--registry", registry]) == 2
        assert complaint in capsys.readouterr().err
    assert open(registry).read() == before
    with pytest.raises(SystemExit) as exited:
        main(["register", "x", "--registry", registry])
    assert exited.value.code == 2


@pytest.mark.tf
def test_a_broken_builder_is_a_configuration_error(registry_dir):
    registry = _write(registry_dir / "architectures.yaml", _one_entry("bad", "wider_models:nothing"))
    with pytest.raises(RegistryError, match="`bad`.*cannot be imported"):
        resolve_registry(registry)


# --- the source -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_layouts():
    """The example registry shipped in the package, resolved once with TensorFlow."""
    return resolve_registry(SHIPPED_REGISTRY)


def _entry_of(builder: str) -> str:
    return next(name for name, entry in load_registry(SHIPPED_REGISTRY).entries.items() if entry.builder == builder)


@pytest.mark.tf
@pytest.mark.parametrize("family_name", ["keras3_adam", "keras_app", "tf_keras_weights", "savedmodel",
                                         "mixed_dtypes", "many_tensors"])
def test_demo_families_rebuild_from_the_shipped_registry(family_name, family_copy, pristine_family, shipped_layouts):
    family = family_copy(family_name)
    values = tensor_values(pristine_family(family_name).prefix)
    original = orphan(family.prefix)
    ctx = context(family.prefix, registry_layouts=shipped_layouts)
    offered = registry_layouts(ctx)   # no --arch: every entry is tried, only matching ones offered
    assert [x.source for x in offered] == [f"registered `{_entry_of(family.builder)}`"]
    assert (offered[0].expected_fingerprint is not None) == (family.kind == "savedmodel")
    assert_same_layout(offered[0], written_layout(original, ctx))
    assert_rebuilt_identically(ctx, [registry_layouts], original, values)


@pytest.mark.tf
def test_save_counter_is_no_obstacle(tmp_path, shipped_layouts):
    """A builder's root saved as is has no save_counter; the run may have used `Checkpoint(root).save()`."""
    import tensorflow as tf

    from samples.models import tf_keras_weights

    prefix = tf.train.Checkpoint(tf_keras_weights()).save(str(tmp_path / "ckpt"))
    values = tensor_values(prefix)
    assert "save_counter/.ATTRIBUTES/VARIABLE_VALUE" in values
    assert "save_counter/.ATTRIBUTES/VARIABLE_VALUE" not in shipped_layouts["tf_keras_weights"].keys()
    original = orphan(prefix)
    ctx = context(prefix, registry_layouts=shipped_layouts, arch="tf_keras_weights")
    assert_rebuilt_identically(ctx, [registry_layouts], original, values)


@pytest.mark.tf
def test_sharded_checkpoints_need_a_captured_sharded_layout(family_copy, registry_dir):
    family = family_copy("sharded")
    registry = _write(registry_dir / "architectures.yaml", _one_entry("built", "samples.models:sharded_module"))
    assert main(["register", "captured", "--from-checkpoint", family.siblings[0], "--registry", registry]) == 0
    layouts = resolve_registry(registry)
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    built = registry_layouts(context(family.prefix, registry_layouts=layouts, arch="built"))
    assert isinstance(built[0], Refusal) and "single-shard" in built[0].reason
    ctx = context(family.prefix, registry_layouts=layouts)
    [layout] = registry_layouts(ctx)
    assert layout.source == "registered `captured`" and layout.num_shards > 1
    assert_rebuilt_identically(ctx, [registry_layouts], original, values)


@pytest.mark.tf
def test_tf1_checkpoint_from_a_captured_layout(family_copy, registry_dir, shipped_layouts):
    family = family_copy("tf1_saver")
    registry = str(registry_dir / "architectures.yaml")
    assert main(["register", "tf1", "--from-checkpoint", family.prefix, "--registry", registry]) == 0
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    ctx = context(family.prefix, registry_layouts={**shipped_layouts, **resolve_registry(registry)})
    [layout] = registry_layouts(ctx)   # the TF2 entries are not offered for TF1 data
    assert layout.source == "registered `tf1`"
    assert_rebuilt_identically(ctx, [registry_layouts], original, values)
    tf2_only = registry_layouts(context(family.prefix, registry_layouts=shipped_layouts, arch="keras3_adam"))
    assert "without an object graph" in tf2_only[0].reason


@pytest.mark.tf
def test_resolved_layouts_are_plain_data_for_workers(shipped_layouts):
    import pickle

    assert set(shipped_layouts) == set(load_registry(SHIPPED_REGISTRY).entries)
    copied = pickle.loads(pickle.dumps(shipped_layouts))
    assert {n: (x.tensors, x.num_shards, x.source) for n, x in copied.items()} == \
        {n: (x.tensors, x.num_shards, x.source) for n, x in shipped_layouts.items()}


@pytest.mark.tf
def test_an_architecture_nobody_registered(family_copy, shipped_layouts):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    [refusal] = registry_layouts(context(family.prefix, registry_layouts=shipped_layouts, arch="resnet50"))
    assert isinstance(refusal, Refusal)
    assert "no architecture `resnet50`" in refusal.reason and "keras3_adam" in refusal.reason


@pytest.mark.tf
def test_extra_optimizer_slots_are_named(tmp_path, shipped_layouts):
    import tensorflow as tf
    import tf_keras

    from samples.models import keras3_mlp

    # Keras 3: with an optimizer, even the model's variables are keyed under optimizer/ (first BFS path).
    prefix = tf.train.Checkpoint(model=keras3_mlp()).save(str(tmp_path / "keras3" / "ckpt"))
    orphan(prefix)
    [refusal] = registry_layouts(context(prefix, registry_layouts=shipped_layouts, arch="keras3_adam"))
    assert "registered `keras3_adam` has" in refusal.reason
    assert "did this run save without the optimizer?" in refusal.reason
    assert refusal.extra and all(k.startswith("optimizer/") for k in refusal.extra)

    # tf_keras save_weights before compile: the same keys, minus the optimizer's.
    model = tf_keras.Sequential([tf_keras.Input(shape=(6,)),
                                 tf_keras.layers.Dense(12, activation="relu", name="hidden"),
                                 tf_keras.layers.Dense(3, name="out")], name="k2_mlp")
    prefix = str(tmp_path / "k2" / "weights")
    model.save_weights(prefix)
    orphan(prefix)
    [nearest] = registry_layouts(context(prefix, registry_layouts=shipped_layouts))
    assert "none of the" in nearest.reason
    assert "nearest: registered `tf_keras_weights` has" in nearest.reason
    assert "did this run save without the optimizer?" in nearest.reason
    assert not nearest.missing and all(k.startswith("optimizer/") for k in nearest.extra)


@pytest.mark.tf
def test_one_shape_off_fits_nothing_and_writes_nothing(family_copy, registry_dir):
    family = family_copy("keras3_adam")
    registry = _write(registry_dir / "architectures.yaml", _one_entry("wider", "wider_models:adam_wider"))
    orphan(family.prefix)
    ctx = context(family.prefix, registry_layouts=resolve_registry(registry), arch="wider")
    [layout] = registry_layouts(ctx)
    assert isinstance(layout, Layout)   # same keys: only the bytes can tell
    outcome = rebuild(ctx, sources=[registry_layouts])
    assert outcome.status == UNRECOVERABLE and outcome.index_bytes is None
    assert "registered `wider`" in outcome.reason + " ".join(map(str, outcome.refusals))
    assert not os.path.exists(index_filename(family.prefix))


@pytest.mark.tf
def test_rebuild_cli_with_registry_and_arch(family_copy, registry_dir, capsys):
    family = family_copy("tf_keras_weights")
    registry = _write(registry_dir / "architectures.yaml", _one_entry("tf_keras_weights", family.builder))
    original = orphan(family.prefix)
    assert main(["rebuild", family.prefix, "--registry", registry, "--arch", "tf_keras_weights"]) == 0
    assert "from registered `tf_keras_weights`" in capsys.readouterr().out
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == original
