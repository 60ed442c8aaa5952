"""What the spot check's weight read costs: classification of a tree of healthy checkpoints, the
spot check reading the largest model tensor of at most BUDGET bytes (0: none, as before issue 14.4).

`python -m benchmarks.spot_check_budget prepare DIR [COUNT]` lets TensorFlow write COUNT (default 20)
healthy checkpoints into DIR, each with model tensors of 32, 16, 4 and 1 MiB, a bias and a step counter.
`python -m benchmarks.spot_check_budget classify DIR BUDGET_BYTES` classifies them all in one process
(the work an audit does per healthy checkpoint, no Beam) and prints the bytes the spot checks read.
Time two budgets against each other with farm-bench, e.g.
    farm-bench --vs 'python -m benchmarks.spot_check_budget classify DIR 0' -- \\
        python -m benchmarks.spot_check_budget classify DIR 16777216
"""

import os
import sys

MIB = 1 << 20
TENSOR_MIB = (32, 16, 4, 1)


def prepare(directory: str, count: int) -> None:
    from pipeline.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    for i in range(count):
        module = tf.Module()
        for mib in TENSOR_MIB:
            setattr(module, f"w{mib}", tf.Variable(tf.random.stateless_normal([mib * MIB // 4], seed=[i, mib])))
        module.bias = tf.Variable(tf.zeros([64]))
        module.step = tf.Variable(i, dtype=tf.int64)
        tf.train.Checkpoint(model=module).write(os.path.join(directory, f"run-{i:03d}", "latest"))


def classify(directory: str, budget: int) -> None:
    from recovery import spot_check, storage
    from recovery.classify import classify_directory
    from recovery.discovery import checkpoint_directory, group_directory
    from recovery.listing import everything_under

    spot_check.WEIGHT_BUDGET = budget
    spot_check.spot_check.__defaults__ = (spot_check.SPOT_CHECK_TENSORS, spot_check.SPOT_CHECK_BYTES, budget)
    fs, root = storage.url_to_fs(directory)
    by_directory = {}
    for found in everything_under(fs, root):
        by_directory.setdefault(checkpoint_directory(found[0]), []).append(found)
    scanned = healthy = 0
    for path, files in sorted(by_directory.items()):
        for record in classify_directory(fs, group_directory(path, files), directory):
            scanned += getattr(record, "bytes_scanned", 0)
            healthy += getattr(record, "status", "") == "healthy"
    print(f"{healthy} healthy, {scanned} bytes read by spot checks")


if __name__ == "__main__":
    command, target, *rest = sys.argv[1:]
    if command == "prepare":
        prepare(target, int(rest[0]) if rest else 20)
    else:
        classify(target, int(rest[0]))
