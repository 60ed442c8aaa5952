"""The core installs and runs without TensorFlow: audit, rebuild, register --from-checkpoint and
inspect, in a real Python environment where `import tensorflow` fails, on checkpoints that
TensorFlow wrote in this test session. What needs TensorFlow (registry builders, the demo, the
final TensorFlow read) says that it is skipped or missing and how to install it. The demo needs
TensorFlow but not tf_keras, which the tensorflow extra does not install.

The environments are venvs of the same interpreter whose site-packages link every package of this
one except those left out; the project's code comes from this checkout. (CI does the same with
the wheel in fresh venvs: .ci/run.)
"""

import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest
from repo_paths import REPO
from source_helpers import orphan

from tfbundle import index_filename

TENSORFLOW_PACKAGES = ("tensorflow", "tf_keras", "tf-keras", "keras", "tensorboard", "tf_nightly")


def _needs_tensorflow(entry: str) -> bool:
    name = entry.lower().replace("-", "_")
    return name.startswith(tuple(p.replace("-", "_") for p in TENSORFLOW_PACKAGES))


def _venv_without(root: Path, leave_out) -> str:
    """A venv at `root` with every package of this one for which `leave_out(name)` is false."""
    venv.create(root, with_pip=False, symlinks=True)
    site = next(root.glob("lib/python3*/site-packages"))
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        # the editable install would point at another checkout: PYTHONPATH gives this one
        if leave_out(entry.name) or entry.name.startswith("__editable__"):
            continue
        (site / entry.name).symlink_to(entry)
    return str(root / "bin" / "python")


@pytest.fixture(scope="module")
def python_without_tf(tmp_path_factory) -> str:
    python = _venv_without(tmp_path_factory.mktemp("venv-without-tf"), _needs_tensorflow)
    probe = _run(python, "-c", "import importlib.util as u, apache_beam, yaml; print(u.find_spec('tensorflow'))")
    assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stderr
    return python


def _run(python: str, *args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _cli(python: str, *args, cwd=None) -> subprocess.CompletedProcess:
    return _run(python, "-m", "pipeline", *args, cwd=cwd)


@pytest.mark.slow
def test_audit_without_tensorflow_rebuilds_byte_identical(python_without_tf, family_copy, tmp_path):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    report = tmp_path / "report"
    done = _cli(python_without_tf, "audit", os.path.dirname(family.prefix), "--min-age", "0",
                "--report-dir", str(report),
                "--direct_running_mode", "in_memory", cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]   # the state file names the orphan
    records = [json.loads(line) for line in (report / "records.jsonl").read_text().splitlines()]
    rebuilt = [r for r in records if r["status"] == "rebuilt"]
    assert [r["prefix"] for r in rebuilt] == [family.prefix]
    assert Path(rebuilt[0]["index_path"]).read_bytes() == original


def test_rebuild_without_tensorflow_says_the_check_was_skipped(python_without_tf, family_copy, tmp_path):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    done = _cli(python_without_tf, "rebuild", family.prefix, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TensorFlow check skipped: TensorFlow is not installed" in done.stdout
    assert "pip install 'ckpt-rescue[tensorflow]'" in done.stdout
    assert "read all" not in done.stdout
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == original


def test_layout_entries_work_without_tensorflow_and_builders_say_what_is_missing(python_without_tf, family_copy,
                                                                                 tmp_path):
    """A registry of captured layouts rebuilds without TensorFlow; a builder entry is a usage error
    that names the tensorflow extra and the way that needs none."""
    healthy, lone = family_copy("keras3_adam"), family_copy("keras3_adam")
    registry = tmp_path / "registry" / "architectures.yaml"
    registered = _cli(python_without_tf, "register", "mlp", "--from-checkpoint", healthy.prefix,
                      "--registry", str(registry), cwd=tmp_path)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    for sibling in lone.siblings:                  # nothing but the registry knows this model now
        for name in os.listdir(os.path.dirname(sibling)):
            if name.startswith(os.path.basename(sibling) + "."):
                os.remove(os.path.join(os.path.dirname(sibling), name))
    original = orphan(lone.prefix)
    done = _cli(python_without_tf, "rebuild", lone.prefix, "--registry", str(registry), "--arch", "mlp", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from registered `mlp`" in done.stdout
    with open(index_filename(lone.prefix), "rb") as f:
        assert f.read() == original

    builders = tmp_path / "builders.yaml"
    builders.write_text("architectures:\n  adam:\n    builder: samples.models:keras3_adam\n")
    os.remove(index_filename(lone.prefix))
    refused = _cli(python_without_tf, "rebuild", lone.prefix, "--registry", str(builders), "--arch", "adam",
                   cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "needs TensorFlow, which is not installed here" in refused.stderr
    assert "ckpt-rescue[tensorflow]" in refused.stderr and "--from-checkpoint" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not os.path.exists(index_filename(lone.prefix))


def test_inspect_runs_and_the_demo_says_how_to_get_tensorflow(python_without_tf, pristine_family, tmp_path):
    family = pristine_family("keras3_adam")
    inspected = _cli(python_without_tf, "inspect", family.prefix, cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert ": healthy" in inspected.stdout and "save_counter/.ATTRIBUTES/VARIABLE_VALUE" in inspected.stdout
    demo = _cli(python_without_tf, "demo", "--workdir", str(tmp_path / "demo"), cwd=tmp_path)
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "needs TensorFlow" in demo.stderr and "ckpt-rescue[tensorflow]" in demo.stderr
    assert not (tmp_path / "demo").exists()



@pytest.mark.slow
@pytest.mark.tf
def test_the_demo_needs_tensorflow_but_not_tf_keras(tmp_path):
    """What the tensorflow extra installs (TensorFlow with its Keras 3, no tf_keras) runs the whole demo."""
    python = _venv_without(tmp_path / "venv", lambda name: name.lower().replace("-", "_").startswith("tf_keras"))
    probe = _run(python, "-c", "import importlib.util as u; print(u.find_spec('tf_keras'), u.find_spec('tensorflow'))")
    assert probe.stdout.split()[0] == "None" and probe.stdout.split()[1] != "None", probe.stdout + probe.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _cli(python, "demo", "--workdir", str(tmp_path / "demo"), cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "every planted problem was found" in done.stdout
    registry = (tmp_path / "demo" / "architectures.yaml").read_text()
    assert "keras_app:" in registry and "builder: samples.models:keras_app" in registry
