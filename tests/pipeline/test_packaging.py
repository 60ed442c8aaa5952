"""The wheel works without the checkout: it carries the runtime data (runner profiles, the example
registry, the report template), requires no TensorFlow unless the `tensorflow` extra is asked for,
and the Flex Template image installs exactly that wheel, not an editable checkout.

The wheel is built from a copy of the source tree (the files pyproject.toml names), so the build
cannot lean on anything else in the checkout. CI (.ci/run) also installs it in fresh venvs.
"""

import email.parser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from repo_paths import REPO

DOCKERFILE = REPO / "configs" / "nightly" / "flex-template" / "Dockerfile"
SOURCES = ["pyproject.toml", "README.md", "pipeline", "recovery", "tfbundle", "transforms", "samples"]
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tf-nightly-cpu",
                            "tf-keras", "tensorflow-intel", "tensorflow-macos"}
PROFILES = ("direct", "portable", "dataflow", "flink")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (REPO / name).is_dir() else {}))
    # this venv's setuptools where it has one (no index needed); CI builds with build isolation, as users do
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                            "--wheel-dir", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = dist.glob("ckpt_rescue-*.whl")
    return found


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return zf.read(name).decode("utf-8")


def tensorflow_requirements(metadata: str, extras: tuple[str, ...] = ()) -> list[str]:
    """The TensorFlow distributions that `pip install ckpt-rescue[extras]` would pull in on Linux x86_64."""
    environment = {"sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux"}
    pulled = []
    for line in email.parser.Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.name.lower() not in TENSORFLOW_DISTRIBUTIONS:
            continue
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras))
        if wanted:
            pulled.append(requirement.name.lower())
    return pulled


def test_the_wheel_requires_no_tensorflow_unless_the_extra_is_asked_for(wheel):
    metadata = _metadata(wheel)
    assert tensorflow_requirements(metadata) == []
    assert tensorflow_requirements(metadata, ("tensorflow",)) == ["tensorflow-cpu"]
    assert set(tensorflow_requirements(metadata, ("test",))) == {"tensorflow", "tf-keras"}


def test_the_requirement_check_catches_a_hard_tensorflow_dependency():
    """The check above on the metadata of today's main (tensorflow-cpu a hard dependency)."""
    hard = "Metadata-Version: 2.1\nName: ckpt-rescue\nRequires-Dist: apache-beam[gcp]==2.77.0\n" \
           "Requires-Dist: tensorflow-cpu==2.21.*\nRequires-Dist: tf-keras==2.21.*; extra == \"test\"\n"
    assert tensorflow_requirements(hard) == ["tensorflow-cpu"]


def test_the_wheel_carries_its_runtime_data_and_nothing_of_the_checkout(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for profile in PROFILES:
        assert f"pipeline/resources/runners/{profile}.yaml" in names
    assert {"pipeline/resources/architectures.yaml", "samples/models.py", "samples/families.py"} <= names
    templates = {str(path.relative_to(REPO)) for path in (REPO / "recovery" / "templates").iterdir()}
    assert templates >= {"recovery/templates/report.html", "recovery/templates/report.js",
                         "recovery/templates/promote.sh.j2"}
    assert templates <= names             # every template the report renders ships in the wheel
    assert not [n for n in names if n.startswith(("tests/", "configs/", "benchmarks/", "docs/"))]


def test_an_installed_wheel_finds_profiles_and_registry_from_another_directory(wheel, tmp_path):
    """Installed into a fresh target (this venv supplies the dependencies), run from elsewhere:
    the code, the profiles, the example registry and the report's templates all come from the
    installed package."""
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    probe = """
import pipeline, pipeline.options as options
from pipeline.resources import EXAMPLE_REGISTRY
from recovery.registry import load_registry
print(pipeline.__file__)
print(options.profile_names())
print(options.load_profile("portable"))
print(sorted(load_registry(str(EXAMPLE_REGISTRY)).entries))
from recovery.records import Record
from recovery.report.files import write_reports
from recovery.report.templates import TEMPLATES
staged = Record("/d/ckpt-1", "rebuilt", "", "/d", staged=True, index_path="/rep/ckpt-1.index")
write_reports("report", [staged], {"run_id": "installed"}, 0.0)
page, script = open("report/report.html").read(), open("report/promote.sh").read()
line = "promote rebuilt /rep/ckpt-1.index /d/ckpt-1.index 0"
print(TEMPLATES, "addEventListener" in page, script.splitlines().count(line))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    location, profiles, portable, entries, report = done.stdout.splitlines()
    assert location.startswith(str(target))
    assert report == f"{target / 'recovery' / 'templates'} True 1"
    assert profiles == repr(sorted(PROFILES))
    assert "--runner=PortableRunner" in portable
    assert "keras_app" in entries


# --- the Flex Template image ------------------------------------------------------------------------

def dockerfile_problems(text: str, repo: Path) -> list[str]:
    """What keeps a Dockerfile from installing the ckpt-rescue wheel, without TensorFlow, not editable."""
    text = re.sub(r"\\\n", " ", text)            # join continuation lines
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    commands = [c.strip() for i in instructions if i.upper().startswith("RUN ") for c in re.split(r"&&|;", i[4:])]
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    problems = []
    if not any(re.search(r"\bckpt_rescue-\S*\.whl(\s|$)", c) for c in installs):
        problems.append("no `pip install` of the ckpt_rescue wheel")
    for command in installs:
        if re.search(r"\s(-e|--editable)\s", command + " "):
            problems.append(f"editable install: {command}")
        if re.search(r"tensorflow|tf-keras|\[test\]", command):
            problems.append(f"installs TensorFlow: {command}")
    for instruction in instructions:
        parts = instruction.split()
        if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts[1:]):
            for source in parts[1:-1]:
                if not (repo / source).exists():
                    problems.append(f"COPY source {source} is not in the repository")
    entry = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", text)
    copied = [i.split()[-1] for i in instructions if i.upper().startswith("COPY ")]
    if entry is None or entry.group(1) not in copied:
        problems.append("FLEX_TEMPLATE_PYTHON_PY_FILE names no file the image copies")
    return problems


def test_the_flex_template_image_installs_the_wheel_without_tensorflow():
    assert dockerfile_problems(DOCKERFILE.read_text(), REPO) == []
    assert (REPO / "configs" / "nightly" / "flex-template" / "main.py").is_file()


def test_the_dockerfile_check_catches_an_editable_install_with_tensorflow():
    """Today's main: the checkout copied in and installed editable (TensorFlow came with the hard
    dependency that the metadata test above catches)."""
    editable = """FROM apache/beam_python3.11_sdk:2.77.0
WORKDIR /template
COPY pyproject.toml README.md ./
COPY configs configs
RUN pip install --no-cache-dir -e . && python -c "import tensorflow"
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/configs/nightly/flex-template/main.py
"""
    problems = dockerfile_problems(editable, REPO)
    assert "no `pip install` of the ckpt_rescue wheel" in problems
    assert any(p.startswith("editable install") for p in problems)
    assert "COPY source configs is not in the repository" not in problems    # configs/ still exists
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE names no file the image copies" in problems
    with_extra = DOCKERFILE.read_text().replace("ckpt_rescue-*.whl", "'ckpt_rescue-*.whl[tensorflow]'")
    assert [p for p in dockerfile_problems(with_extra, REPO) if p.startswith("installs TensorFlow")]
