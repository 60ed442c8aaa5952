"""Issue 14.2: a sibling whose layout differs in ways the bytes cannot show.

A directory reused after the model changed holds siblings of another architecture under the same
keys. Each case is written by TensorFlow here: run/ckpt-1 by the model before the change, run/ckpt-2
(the orphan) by the model after it, fresh weights, as a new training run starts. Each check has the
damaged case it must refuse and the legitimate one it must not: the same shapes in one run, a few
steps apart (values move by a small step, as training moves them).
"""

import os
import shlex
import shutil

import numpy as np
import pytest
from source_helpers import context, orphan, tf_restores_all

from pipeline.cli import main
from recovery.rebuild import REBUILT, UNRECOVERABLE, rebuild
from recovery.registry import load_registry
from tfbundle import index_filename

pytestmark = pytest.mark.tf


def _tf():
    from pipeline.tensorflow_env import import_tensorflow

    return import_tensorflow()


def _key(name: str) -> str:
    return f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE"


def _save(path: str, variables: dict) -> str:
    """One checkpoint of a tf.Module holding `variables` (name -> numpy array), written by TensorFlow."""
    tf = _tf()
    module = tf.Module()
    for name, value in variables.items():
        setattr(module, name, tf.Variable(value))
    return tf.train.Checkpoint(model=module).write(path)


def _run(root, before: dict, after: dict) -> tuple[str, bytes]:
    """ckpt-1 with `before`, ckpt-2 with `after` in one directory; ckpt-2 orphaned. (prefix, its index)."""
    run = os.path.join(str(root), "run")
    _save(os.path.join(run, "ckpt-1"), before)
    prefix = _save(os.path.join(run, "ckpt-2"), after)
    return prefix, orphan(prefix)


def _weights(seed: int, shape, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype("float32")


def _trained(values: np.ndarray, seed: int = 99, step: float = 0.01) -> np.ndarray:
    """`values` a few training steps later: every element moved a little."""
    return (values + step * np.random.default_rng(seed).standard_normal(values.shape)).astype(values.dtype)


def _rebuilt_as_tensorflow_wrote(prefix: str, original: bytes):
    outcome = rebuild(context(prefix))
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original
    return outcome


# --- A sibling of another model: its values are unlike the orphan's --------------------------------

RESHAPED = {"[8, 8] where the sibling has [64]": ((64,), (8, 8)),
            "[10, 6] where the sibling has [60]": ((60,), (10, 6)),
            "[64] where the sibling has [8, 8]": ((8, 8), (64,))}


@pytest.mark.parametrize("case", RESHAPED)
def test_a_reused_directorys_sibling_of_another_shape_is_refused_naming_the_tensor(tmp_path, case):
    sibling_shape, orphan_shape = RESHAPED[case]
    prefix, _ = _run(tmp_path, {"w": _weights(1, sibling_shape)}, {"w": _weights(2, orphan_shape)})
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "sibling ckpt-1's values are unlike this checkpoint's" in outcome.reason
    assert f"{_key('w')} float32{list(sibling_shape)}" in outcome.reason
    assert "source that declares the shapes" in outcome.reason
    assert outcome.evidence.unconfirmed_layout == [_key("w")]
    assert not os.path.exists(index_filename(prefix))


@pytest.mark.parametrize("case", RESHAPED)
def test_a_sibling_of_the_same_run_a_few_steps_earlier_is_rebuilt_and_the_layout_named(tmp_path, case):
    _, shape = RESHAPED[case]
    earlier = _weights(1, shape)
    prefix, original = _run(tmp_path, {"w": earlier}, {"w": _trained(earlier)})
    outcome = _rebuilt_as_tensorflow_wrote(prefix, original)
    assert any("values are close to this checkpoint's" in c for c in outcome.evidence.confirmed)
    assert outcome.evidence.unconfirmed_layout == [_key("w")]
    first = outcome.evidence.cannot_confirm[0]
    assert first.startswith("shapes taken from sibling ckpt-1 alone for 1 tensor(s)")
    assert f"{_key('w')} float32{list(shape)}" in first


def test_a_sibling_index_with_no_data_beside_it_is_not_compared(tmp_path):
    """A rebuilt index kept with --output beside the orphan (ckpt-2.kept.index) reads as a sibling whose data
    is missing: its values cannot be read, the others' are."""
    earlier = _weights(1, (8, 8))
    prefix, original = _run(tmp_path, {"w": earlier}, {"w": _trained(earlier)})
    with open(prefix + ".kept.index", "wb") as f:
        f.write(original)
    outcome = _rebuilt_as_tensorflow_wrote(prefix, original)
    assert any("sibling ckpt-1's values are close" in c for c in outcome.evidence.confirmed)


# --- Adjacent float tensors whose boundary moved ----------------------------------------------------

BOUNDARIES = {"[12]/[18] where the sibling has [10]/[20]": ((10, 20), (12, 18)),
              "[10]/[20] where the sibling has [12]/[18]": ((12, 18), (10, 20))}


def _beta_and_gamma(seed: int, sizes) -> dict:
    """Two adjacent float tensors of two distributions, as a batch normalization's beta (near 0) and gamma
    (near 1) are."""
    return {"a": _weights(seed, (sizes[0],), 0.05), "b": 1 + _weights(seed + 1, (sizes[1],), 0.05)}


@pytest.mark.parametrize("case", BOUNDARIES)
def test_a_boundary_that_splits_a_run_of_one_distribution_is_refused(tmp_path, case):
    """The check is statistical: over 3000 draws of these two distributions it catches a 2-value shift 98%
    (one way) and 99.7% (the other) of the time, and flags the true boundary never (the numbers in the
    issue's report); the weights here are one fixed draw."""
    sibling_sizes, orphan_sizes = BOUNDARIES[case]
    prefix, _ = _run(tmp_path, _beta_and_gamma(1, sibling_sizes), _beta_and_gamma(5, orphan_sizes))
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "the data does not hold what it says" in outcome.reason
    assert (f"the boundary between {_key('a')} float32[{sibling_sizes[0]}] and {_key('b')} "
            f"float32[{sibling_sizes[1]}]") in outcome.reason
    assert "rests on sibling ckpt-1 alone" in outcome.reason
    assert set(outcome.evidence.unconfirmed_layout) == {_key("a"), _key("b")}


@pytest.mark.parametrize("case", BOUNDARIES)
def test_a_boundary_between_two_distributions_where_the_sibling_has_it_is_accepted(tmp_path, case):
    _, sizes = BOUNDARIES[case]
    earlier = _beta_and_gamma(1, sizes)
    prefix, original = _run(tmp_path, earlier, {name: _trained(v, step=1e-4) for name, v in earlier.items()})
    outcome = _rebuilt_as_tensorflow_wrote(prefix, original)
    assert any("no boundary inside one run of values" in c for c in outcome.evidence.confirmed)


def test_a_boundary_finding_beside_a_sibling_shown_of_the_same_run_is_named_not_refused(tmp_path):
    """Two values near a boundary can look like the other side by chance; where the largest weights show the
    sibling to be of this run, the finding goes into the evidence instead (here the run was warm-started into
    a changed model: the layout is wrong and the evidence says where)."""
    shared = _weights(9, (64,))
    before = {**_beta_and_gamma(1, (10, 20)), "w": shared}
    prefix, _ = _run(tmp_path, before, {**_beta_and_gamma(5, (12, 18)), "w": _trained(shared)})
    outcome = rebuild(context(prefix))
    assert outcome.status == REBUILT
    named = [c for c in outcome.evidence.cannot_confirm if c.startswith("the boundary between")]
    assert len(named) == 1 and f"{_key('a')} float32[10] and {_key('b')} float32[20]" in named[0]
    assert "sibling ckpt-1's values show it to be of the same run, so this is named, not refused" in named[0]
    assert not any("no boundary inside one run" in c for c in outcome.evidence.confirmed)


# --- An integer tensor where the sibling has a float one --------------------------------------------

def test_an_integer_tensor_where_the_sibling_has_a_float_one_is_refused(tmp_path):
    counts = np.random.default_rng(5).integers(0, 500, 16).astype("int32")
    prefix, _ = _run(tmp_path, {"c": _weights(4, (16,))}, {"c": counts})
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert f"{_key('c')} float32[16]:" in outcome.reason
    assert "subnormal floats, the bit patterns of small integers: an integer tensor read as float32" in outcome.reason


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_a_tensor_of_the_siblings_dtype_is_accepted(tmp_path, dtype):
    if dtype == "float32":
        before = {"c": _weights(4, (16,))}
        after = {"c": _trained(before["c"])}
    else:
        before = {"c": np.arange(16, dtype="int32")}
        after = {"c": np.arange(16, dtype="int32") * 3}
    prefix, original = _run(tmp_path, before, after)
    _rebuilt_as_tensorflow_wrote(prefix, original)


# --- A source that declares the shapes settles it ----------------------------------------------------

def test_a_registered_model_settles_what_the_sibling_alone_cannot(tmp_path):
    """The reused directory's orphan, rebuilt from the registry its own model was registered in: TensorFlow's
    index, and nothing said to rest on the sibling."""
    prefix, original = _run(tmp_path, {"w": _weights(1, (64,))}, {"w": _weights(2, (8, 8))})
    healthy = str(tmp_path / "registered" / "ckpt-2")
    _save(healthy, {"w": _weights(2, (8, 8))})
    registry = str(tmp_path / "architectures.yaml")
    assert main(["register", "model_b", "--from-checkpoint", healthy, "--registry", registry]) == 0
    layouts = load_registry(registry).layouts()
    refused = rebuild(context(prefix, registry_layouts=layouts))
    assert refused.status == UNRECOVERABLE and "sources disagree" in refused.reason
    chosen = rebuild(context(prefix, registry_layouts=layouts, arch="model_b"))
    assert chosen.status == REBUILT and chosen.index_bytes == original
    assert chosen.evidence.unconfirmed_layout == []
    assert not any("alone" in c for c in chosen.evidence.cannot_confirm)


# --- The CLI leads with it ---------------------------------------------------------------------------

def test_the_cli_says_what_rests_on_the_sibling_before_the_checks_that_passed(tmp_path, capsys):
    earlier = _weights(1, (8, 8))
    prefix, original = _run(tmp_path, {"w": earlier}, {"w": _trained(earlier)})
    out_path = tmp_path / "out.index"
    assert main(["rebuild", prefix, "--no-tf-check", "--output", str(out_path)]) == 0
    assert out_path.read_bytes() == original
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"rebuilt {prefix} from sibling ckpt-1"
    assert lines[1].startswith("  !!  shapes taken from sibling ckpt-1 alone for 1 tensor(s)")
    assert all(not line.startswith("  !!") for line in lines[2:])
    assert lines[2].startswith("  ok  ")

    os.remove(out_path)
    shutil.rmtree(os.path.join(os.path.dirname(prefix)))
    prefix, _ = _run(tmp_path, {"w": _weights(1, (64,))}, {"w": _weights(2, (8, 8))})
    assert main(["rebuild", prefix, "--no-tf-check", "--output", str(out_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"refused: {prefix}: sibling ckpt-1 fits, but sibling ckpt-1's values are unlike")
    assert err[1].startswith("  !!  shapes taken from sibling ckpt-1 alone")
    assert not out_path.exists()

    # The person's own word, as the refusal prints it, is taken: the sibling as the template.
    command = err[0].rsplit("`", 2)[1]
    assert command == f"ckpt-rescue rebuild {prefix} --template {os.path.join(os.path.dirname(prefix), 'ckpt-1')}"
    assert main([*shlex.split(command)[1:], "--no-tf-check", "--output", str(out_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("  !!  shapes taken from template ")


# --- Far apart in one real training run ------------------------------------------------------------

def _keras_run(directory: str, steps: tuple, seed: int) -> list:
    """A Keras 3 MLP trained with Adam on a regression task; CheckpointManager saves after each of `steps`."""
    tf = _tf()
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer), directory,
                                         max_to_keep=None)
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((16, 4)).astype("float32")

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - x @ truth))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    saved = []
    for step in range(1, max(steps) + 1):
        train_step(rng.standard_normal((32, 16)).astype("float32"))
        if step in steps:
            saved.append(manager.save())   # ckpt-1, ckpt-2, ...: save_counter is in the name
    return saved


def test_step_500_of_a_real_keras_training_is_rebuilt_from_step_1(tmp_path):
    first, last = _keras_run(str(tmp_path), (1, 500), seed=7)
    shutil.copy(index_filename(last), str(tmp_path / "ckpt-500.index.orig"))
    original = orphan(last)
    outcome = _rebuilt_as_tensorflow_wrote(last, original)
    assert any("values are close to this checkpoint's" in c for c in outcome.evidence.confirmed)
    with open(index_filename(last), "xb") as f:
        f.write(outcome.index_bytes)
    assert tf_restores_all(last)
