"""A small checkpoint tree for the audit tests, planted from TensorFlow-written families, and what
the audit must find in it (derived from how each prefix was damaged, not from a previous run)."""

import os
import random
import shutil
from dataclasses import dataclass, field

from source_helpers import orphan

from pipeline.cli import main as cli_main

TEMPSTATE_NAME = "ckpt-4.data-00000-of-00001.tempstate8812345"


@dataclass
class Planted:
    root: str
    registry: str
    originals: dict = field(default_factory=dict)   # orphan prefix -> the index bytes TensorFlow wrote
    expected: dict = field(default_factory=dict)    # prefix -> (status, kind, words the source/reason must contain)
    in_place: dict = field(default_factory=dict)    # what differs when the run writes indexes in place

    def expected_for(self, in_place: bool) -> dict:
        return {**self.expected, **self.in_place} if in_place else dict(self.expected)


def copy_family_dir(family, dest: str) -> str:
    shutil.copytree(os.path.dirname(family.prefix), dest)
    return dest


def plant_tree(pristine_family, root: str, registry_dir: str) -> Planted:
    """runs/adam (sibling orphan), runs/weights (part-index orphan), runs/sharded (healthy, 2 shards+),
    runs/registry (an orphan only the registry can explain), decoys (random bytes, stale state file)."""
    planted = Planted(root, os.path.join(registry_dir, "architectures.yaml"))
    exp = planted.expected

    adam = pristine_family("keras3_adam")
    adam_dir = copy_family_dir(adam, os.path.join(root, "runs", "adam"))
    latest = os.path.join(adam_dir, os.path.basename(adam.prefix))
    planted.originals[latest] = orphan(latest)
    exp[latest] = ("rebuilt", "checkpoint", "sibling")
    for sibling in adam.siblings:
        exp[os.path.join(adam_dir, os.path.basename(sibling))] = ("healthy", "checkpoint", "")
    # its latest checkpoint is the orphan: latest_checkpoint() returns None until the index is back
    exp[os.path.join(adam_dir, "checkpoint")] = ("incomplete", "state-file", "ckpt-3 has no index")
    planted.in_place[os.path.join(adam_dir, "checkpoint")] = ("healthy", "state-file", "--in-place")
    with open(os.path.join(adam_dir, TEMPSTATE_NAME), "wb") as f:
        f.write(random.Random(1).randbytes(300))
    exp[os.path.join(adam_dir, TEMPSTATE_NAME)] = ("healthy", "leftover", "never renamed")

    weights = pristine_family("tf_keras_weights")
    weights_dir = copy_family_dir(weights, os.path.join(root, "runs", "weights"))
    prefix = os.path.join(weights_dir, os.path.basename(weights.prefix))
    os.makedirs(prefix + "_temp")
    shutil.copy(prefix + ".index", prefix + "_temp/part-00000-of-00001.index")   # a crash during the merge
    planted.originals[prefix] = orphan(prefix)
    exp[prefix] = ("rebuilt", "checkpoint", "part index")
    exp[prefix + "_temp/part-00000-of-00001"] = ("healthy", "leftover", "merge input")
    if os.path.exists(os.path.join(weights_dir, "checkpoint")):
        exp[os.path.join(weights_dir, "checkpoint")] = ("incomplete", "state-file", "weights has no index")
        planted.in_place[os.path.join(weights_dir, "checkpoint")] = ("healthy", "state-file", "--in-place")

    sharded = pristine_family("sharded")
    sharded_dir = copy_family_dir(sharded, os.path.join(root, "runs", "sharded"))
    for p in (sharded.prefix, *sharded.siblings):
        exp[os.path.join(sharded_dir, os.path.basename(p))] = ("healthy", "checkpoint", "")

    mixed = pristine_family("mixed_dtypes")
    registry_only = os.path.join(root, "runs", "registry")
    os.makedirs(registry_only)
    lone = os.path.join(registry_only, os.path.basename(mixed.prefix))
    shutil.copy(mixed.prefix + ".data-00000-of-00001", lone + ".data-00000-of-00001")
    with open(mixed.prefix + ".index", "rb") as f:
        planted.originals[lone] = f.read()
    exp[lone] = ("rebuilt", "checkpoint", "registered `mixed`")
    os.makedirs(registry_dir, exist_ok=True)
    assert cli_main(["register", "mixed", "--from-checkpoint", mixed.siblings[0], "--registry", planted.registry]) == 0

    decoys = os.path.join(root, "decoys")
    os.makedirs(decoys)
    with open(os.path.join(decoys, "random.data-00000-of-00001"), "wb") as f:
        f.write(random.Random(2).randbytes(4096))
    exp[os.path.join(decoys, "random")] = ("unrecoverable", "checkpoint", "")
    with open(os.path.join(decoys, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-9"\nall_model_checkpoint_paths: "ckpt-9"\n')
    exp[os.path.join(decoys, "checkpoint")] = ("incomplete", "state-file", "ckpt-9")
    return planted

