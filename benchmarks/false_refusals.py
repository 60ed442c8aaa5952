"""False refusals of the plausibility checks (issue 14.2): `python -m benchmarks.false_refusals [--steps N]`.

Not a speed benchmark (`make bench` leaves it out): it counts legitimate rebuilds that are refused.
Every family samples/families.py writes is orphaned and rebuilt with every source, and where it has
siblings with its siblings alone (the layout then rests on them, and every check of
recovery/plausibility.py runs); then real Keras trainings save after step 1 and after step N, and each
save is rebuilt from the other alone. Each line says rebuilt or the refusal; the last line the tally.
"""

import os
import sys
import tempfile

import numpy as np

from recovery import storage
from recovery.context import open_orphan
from recovery.rebuild import NO_SOURCE, REBUILT, rebuild
from recovery.sources import sibling_layouts
from samples.families import _WRITERS, write_family
from tfbundle import index_filename


def _orphan(prefix: str) -> bytes:
    with open(index_filename(prefix), "rb") as f:
        original = f.read()
    os.remove(index_filename(prefix))
    return original


def _attempt(name: str, prefix: str, original: bytes, sources=None) -> bool | None:
    """True: rebuilt byte-identical; False: refused or other bytes; None: no source but a registry applies."""
    fs, _ = storage.url_to_fs(prefix)
    outcome = rebuild(open_orphan(fs, prefix), sources=sources)
    if outcome.reason == NO_SOURCE:
        print(f"| {name} | - | not applicable: only a registry describes it (its builder, in the tests) |")
        return None
    fine = outcome.status == REBUILT and outcome.index_bytes == original
    rests = len(outcome.evidence.unconfirmed_layout) if outcome.evidence else 0
    said = "byte-identical" if fine else f"{outcome.status}: {outcome.reason[:300]}"
    print(f"| {name} | {rests} | {said} |")
    return fine


def families(root: str) -> list:
    results = []
    for name in _WRITERS:
        family = write_family(name, os.path.join(root, name))
        original = _orphan(family.prefix)
        results.append(_attempt(f"{name}, every source", family.prefix, original))
        if family.siblings:
            results.append(_attempt(f"{name}, its siblings alone", family.prefix, original, [sibling_layouts]))
    return results


def _model(kind: str):
    import keras

    if kind == "mlp":
        return keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                                 keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]), (16,), 4
    if kind == "mobilenet":
        return keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=10), \
            (32, 32, 3), 10
    return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3), keras.layers.BatchNormalization(),
                             keras.layers.ReLU(), keras.layers.Conv2D(16, 3, strides=2), keras.layers.Flatten(),
                             keras.layers.Dense(10)]), (12, 12, 3), 10


def training(directory: str, kind: str, seed: int, steps: int) -> tuple[str, str]:
    """Keras 3 with Adam on a synthetic task; CheckpointManager saves after step 1 and after step `steps`."""
    from pipeline.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    model, shape, outputs = _model(kind)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer), directory,
                                         max_to_keep=None)
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((int(np.prod(shape)), outputs)).astype("float32")

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            target = tf.reshape(x, (x.shape[0], -1)) @ truth
            loss = tf.reduce_mean(tf.square(model(x, training=True) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    saved = []
    for n in range(1, steps + 1):
        step(rng.standard_normal((32, *shape)).astype("float32"))
        if n in (1, steps):
            saved.append(manager.save())
    return saved[0], saved[1]


def trainings(root: str, steps: int) -> list:
    results = []
    for kind, seeds in (("mlp", (1, 2, 3)), ("cnn", (1, 2, 3)), ("mobilenet", (1,))):
        for seed in seeds:
            first, last = training(os.path.join(root, f"{kind}-{seed}"), kind, seed, steps)
            for orphaned, other in ((last, "step 1"), (first, f"step {steps}")):
                original = _orphan(orphaned)
                results.append(_attempt(f"{kind} seed {seed}: step {1 if orphaned == first else steps} from {other}",
                                        orphaned, original, [sibling_layouts]))
                with open(index_filename(orphaned), "xb") as f:
                    f.write(original)
    return results


# Two adjacent float tensors: (name, first's scale and offset, second's, sizes)
DRAWS = (("beta 0.05 / gamma 1 + 0.05, 12+18", (0.05, 0), (0.05, 1), (12, 18)),
         ("kernel 0.3 / bias 1e-3, 12+18", (0.3, 0), (1e-3, 0), (12, 18)),
         ("kernel 0.05 / bias 1e-3, 300+300", (0.05, 0), (1e-3, 0), (300, 300)),
         ("one distribution 0.3, 12+18", (0.3, 0), (0.3, 0), (12, 18)),
         ("relu outputs, 300+300", None, None, (300, 300)))


def boundary_rates(draws: int = 3000) -> None:
    """How often plausibility.boundary_shift flags a boundary moved by 2 values (either way), and the true one,
    on synthetic draws (the statistics behind README's "Safety"; no checkpoint involved)."""
    from recovery.plausibility import boundary_shift

    print("\n| two tensors | flagged: layout's boundary 2 values early | 2 values late | at the true boundary "
          "|\n|---|---|---|---|")
    for name, first, second, sizes in DRAWS:
        rates = []
        for shift in (-2, 2, 0):
            flagged = 0
            for seed in range(draws):
                rng = np.random.default_rng(seed)
                if first is None:
                    a, b = (np.maximum(0, rng.standard_normal(n)) for n in sizes)
                else:
                    a, b = (scale * rng.standard_normal(n) + offset
                            for (scale, offset), n in zip((first, second), sizes))
                values = np.concatenate([a, b]).astype("float32").astype("float64")
                cut = sizes[0] + shift
                flagged += boundary_shift(values[:cut], values[cut:]) is not None
            rates.append(f"{100 * flagged / draws:.2f}%")
        print(f"| {name} | {' | '.join(rates)} |")


def main(argv: list) -> int:
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else 500
    print("| case | tensors resting on siblings alone | outcome |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        results = families(os.path.join(root, "families")) + trainings(os.path.join(root, "runs"), steps)
    boundary_rates()
    judged = [r for r in results if r is not None]
    print(f"\nfalse refusals: {judged.count(False)} of {len(judged)} legitimate rebuilds")
    return 1 if False in judged else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
