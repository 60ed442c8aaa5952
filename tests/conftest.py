"""Session-wide fixtures: checkpoint families written once by TensorFlow, and private copies to damage."""

import dataclasses
import itertools
import os
import shutil

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from samples import Family, write_family  # noqa: E402

# Property tests must not depend on how fast the machine is: no per-example deadline (hypothesis's default
# 200 ms fails a loaded machine), and no health check that times data generation. `make test` (and CI)
# draws the same examples every run, so a red run is the code's doing and replays; `make fuzz` draws new
# ones, many more, to find what the fixed draw does not (a case it finds goes in as an @example).
_PATIENT = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ckpt-rescue", derandomize=True, **_PATIENT)
settings.register_profile("fuzz", max_examples=2000, **_PATIENT)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ckpt-rescue"))

pytest_plugins = ["storage_servers", "salvage_checkpoints"]   # emulator/fault-proxy fixtures; salvage test runs


@dataclasses.dataclass
class _Written:
    root: str
    family: Family


@pytest.fixture(scope="session")
def _written_families(tmp_path_factory):
    """name -> _Written; each family is written by TensorFlow at most once per session."""
    written = {}

    def get(name: str) -> _Written:
        if name not in written:
            root = str(tmp_path_factory.mktemp(f"family-{name}"))
            written[name] = _Written(root, write_family(name, root))
        return written[name]

    return get


@pytest.fixture(scope="session")
def pristine_family(_written_families):
    """`pristine_family(name) -> Family`, shared by the whole session: read it, never change it."""
    return lambda name: _written_families(name).family


def _rebase(family: Family, old_root: str, new_root: str) -> Family:
    def move(path):
        return None if path is None else new_root + path[len(old_root):]

    return dataclasses.replace(
        family, prefix=move(family.prefix), siblings=[move(p) for p in family.siblings],
        savedmodel_dir=move(family.savedmodel_dir), meta_path=move(family.meta_path))


@pytest.fixture
def family_copy(_written_families, tmp_path):
    """`family_copy(name) -> Family` in a fresh directory of this test's own, free to damage.

    `checkpoint` state files are rewritten too, since TF1 Savers record absolute paths in them.
    """
    copies = itertools.count()

    def copy(name: str) -> Family:
        original = _written_families(name)
        new_root = str(tmp_path / f"family-copy-{next(copies)}-{name}")
        shutil.copytree(original.root, new_root)
        for directory, _, files in os.walk(new_root):
            if "checkpoint" in files:
                state = os.path.join(directory, "checkpoint")
                with open(state) as f:
                    text = f.read()
                with open(state, "w") as f:
                    f.write(text.replace(original.root, new_root))
        return _rebase(original.family, original.root, new_root)

    return copy
