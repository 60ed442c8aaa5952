"""What the nightly artifacts and the docs name must agree with what the project ships: the image tag is
the package's version (pyproject), the Dockerfile's Beam SDK image is the apache-beam version pyproject
pins, on a Python pyproject allows; the Beam, Flink and job server versions the docs name are Beam's own;
and every shell script shipped passes shellcheck. (Each artifact's command lines are parsed with the real
CLI parser by the test of that artifact: test_schedules, test_airflow_dag, test_cloud_workflow.)
"""

import os
import re
import subprocess
from importlib import metadata

import pytest
from nightly_artifacts import NIGHTLY, venv_bin
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from repo_paths import REPO

# pyproject.toml as installed (the editable install of `make install`; Python 3.10 has no tomllib)
VERSION = metadata.version("ckpt-rescue")
DOCS = [REPO / "README.md", REPO / "docs" / "running.md"]
ARTIFACTS = sorted(p for p in NIGHTLY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
IMAGE_TAG = re.compile(r"/ckpt-rescue/ckpt-rescue:([\w.\-]+)")


def _beam_pin() -> str:
    (beam,) = [Requirement(r) for r in metadata.requires("ckpt-rescue") if r.startswith("apache-beam")]
    (spec,) = beam.specifier
    assert spec.operator == "=="
    return spec.version


def test_every_image_reference_is_the_package_version():
    found = {}
    for path in ARTIFACTS + DOCS:
        for tag in IMAGE_TAG.findall(path.read_text()):
            found.setdefault(tag, []).append(str(path.relative_to(REPO)))
    assert set(found) == {VERSION}, found
    assert len({p for paths in found.values() for p in paths}) >= 4     # DAG, script, CronJob, README at least


def test_the_dockerfile_is_the_pinned_beam_on_an_allowed_python():
    dockerfile = (NIGHTLY / "flex-template" / "Dockerfile").read_text()
    bases = re.findall(r"^FROM apache/beam_python(\d)\.(\d+)_sdk:(\S+)", dockerfile, re.M)
    assert bases and {tag for _, _, tag in bases} == {_beam_pin()}
    pythons = {f"{major}.{minor}" for major, minor, _ in bases}
    assert all(v in SpecifierSet(metadata.metadata("ckpt-rescue")["Requires-Python"]) for v in pythons)
    # the Flex Template launcher binary comes from the launcher base of the same Python
    (launcher,) = re.findall(r"dataflow-templates-base/python(\d)(\d+)-template-launcher-base", dockerfile)
    assert {".".join(launcher)} == pythons
    for doc in DOCS:
        for name in re.findall(r"apache/beam_python[\d.]+_sdk:\S+?(?=[`\s])", doc.read_text()):
            assert name.endswith(f":{_beam_pin()}"), (doc, name)


def test_the_flink_versions_and_jar_named_are_beams_own():
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    supported = FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    listed = ", ".join(supported[:-1]) + " and " + supported[-1]
    profile = (REPO / "pipeline" / "resources" / "runners" / "flink.yaml").read_text()
    assert listed in " ".join(profile.replace("#", " ").split())
    for doc in DOCS:
        text = " ".join(doc.read_text().split())
        assert f"assume {supported[-1]}" in text           # Beam's default --flink_version, which we pin
        for jar in re.findall(r"job-server-([\d.]+)\.jar", text):
            assert jar == _beam_pin(), (doc, jar)


SCRIPTS = [NIGHTLY / "cloud-scheduler.sh", REPO / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_pass_shellcheck(script):
    checked = subprocess.run([os.path.join(venv_bin(), "shellcheck"), str(script)], capture_output=True, text=True,
                             timeout=600)
    assert checked.returncode == 0, checked.stdout


def test_shellcheck_finds_what_it_should(tmp_path):
    broken = tmp_path / "broken.sh"
    broken.write_text('#!/usr/bin/env bash\nreport=$1\nls $report/summary.json\n')     # unquoted expansion
    checked = subprocess.run([os.path.join(venv_bin(), "shellcheck"), str(broken)], capture_output=True, text=True,
                             timeout=600)
    assert checked.returncode != 0 and "SC2086" in checked.stdout
