"""configs/nightly/airflow_dag.py imported by real Airflow with the apache-beam and google providers, in a
virtualenv of its own (tests/nightly/airflow-requirements.txt; made once into a cache directory, ~3.5 min
on 2 cores, then reused): the task graph is the audit, then its status; the audit task's command line, as
the Beam provider builds it, is accepted by the real CLI and Beam parsers; and the status task, executed by
Airflow's own BashOperator against a real audit's report directory on the GCS emulator, succeeds for a
night that needs nobody and fails for one that needs a person.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nightly_artifacts import NIGHTLY, venv_bin
from repo_paths import REPO
from source_helpers import orphan

from pipeline.cli import build_parser
from pipeline.cli import main as cli_main
from pipeline.options import audit_flags
from recovery import storage
from recovery.records import EXIT_ATTENTION, EXIT_OK

pytestmark = [pytest.mark.tf, pytest.mark.slow]
REQUIREMENTS = REPO / "tests" / "nightly" / "airflow-requirements.txt"
DAG_FILE = NIGHTLY / "airflow_dag.py"
NIGHTS = {"2026-12-05": EXIT_OK, "2026-12-06": EXIT_ATTENTION}

# Runs inside the Airflow virtualenv: the DAG as Airflow parses it, the audit task's command line built by
# the Beam provider's own code, and (with nights given) the status task executed by Airflow for each night.
AIRFLOW_SCRIPT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.beam.hooks.beam import beam_options_to_args

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}
dag = bag.dags["ckpt_rescue_nightly"]
out["tasks"] = {t.task_id: {"type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                            "downstream": sorted(t.downstream_task_ids)} for t in dag.tasks}
out["max_active_runs"], out["catchup"] = dag.max_active_runs, dag.catchup
audit, outcome = dag.get_task("audit_checkpoints"), dag.get_task("audit_outcome")
out["deferrable"], out["wait_until_finished"] = audit.deferrable, audit.dataflow_config.wait_until_finished
night = {"ds": sys.argv[2]}
audit.render_template_fields(night)
audit._cast_dataflow_config()
_, job_name, options, _, _ = audit._init_pipeline_options(format_pipeline_options=True,
                                                          job_name_variable_key="job_name")
out["audit_argv"] = [audit.py_file, f"--runner={audit.runner}", *beam_options_to_args(options)]
template = outcome.bash_command          # rendering replaces it in place
outcome.render_template_fields(night)
out["status_command"] = outcome.bash_command
out["executed"] = {}
for ds in sys.argv[3:]:
    outcome.bash_command = template
    outcome.render_template_fields({"ds": ds})
    try:
        outcome.execute(context={})
        out["executed"][ds] = "success"
    except Exception as exc:
        out["executed"][ds] = f"failed: {exc}"
print("AIRFLOW-RESULT " + json.dumps(out))
"""


def _cache_root() -> Path:
    return Path(os.environ.get("CKPT_RESCUE_TEST_CACHE") or Path.home() / ".cache" / "ckpt-rescue-tests")


@pytest.fixture(scope="session")
def airflow_python() -> str:
    """The Airflow virtualenv's python, made on first use (pip, from tests/nightly/airflow-requirements.txt)."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = _cache_root() / f"airflow-{key}"
    python, stamp = venv / "bin" / "python", venv / ".complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"airflow-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)              # one maker at a time; the others wait and reuse it
        if not stamp.exists():
            shutil.rmtree(venv, ignore_errors=True)   # an interrupted make leaves no stamp: start again
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
            with open(venv.parent / f"airflow-{key}.log", "w") as log:
                made = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                                       "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                                      stdout=log, stderr=subprocess.STDOUT, timeout=1800)
            assert made.returncode == 0, Path(log.name).read_text()[-3000:]
            stamp.write_text(f"made in {time.monotonic() - started:.0f} s from {REQUIREMENTS.name}\n")
    return str(python)


def _airflow(python: str, tmp_path, night: str, *execute: str) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           # the provider reads the project from the Google connection; no credentials are used
           "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps({"conn_type": "google_cloud_platform",
                                                           "extra": {"project": "my-gcp-project"}}),
           "PATH": f"{venv_bin()}{os.pathsep}{os.environ['PATH']}"}       # ckpt-rescue, installed on the worker
    done = subprocess.run([python, "-c", AIRFLOW_SCRIPT, str(DAG_FILE), night, *execute], env=env,
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    lines = [line for line in done.stdout.splitlines() if line.startswith("AIRFLOW-RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1].split(" ", 1)[1])


def test_airflow_imports_the_dag_audit_then_status(airflow_python, tmp_path):
    found = _airflow(airflow_python, tmp_path, "2026-12-06")
    assert found["import_errors"] == {}
    assert found["tasks"] == {
        "audit_checkpoints": {"type": "BeamRunPythonPipelineOperator", "upstream": [], "downstream": ["audit_outcome"]},
        "audit_outcome": {"type": "BashOperator", "upstream": ["audit_checkpoints"], "downstream": []}}
    assert found["max_active_runs"] == 1 and found["catchup"] is False
    assert found["deferrable"] is True and found["wait_until_finished"] is True

    # The audit task's command line, as the provider runs it: launch_audit.py + the options, into the night's dir.
    py_file, *argv = found["audit_argv"]
    assert Path(py_file).name == "launch_audit.py" and (NIGHTLY / "launch_audit.py").is_file()
    args, beam = build_parser("audit").parse_known_args(["audit", *argv])
    assert args.roots == [next(a for a in argv if a.startswith("--labels="))]   # argparse's take; run() moves it
    beam += args.roots
    assert args.detach and args.report_dir == "gs://ml-checkpoints/ckpt-rescue-reports/2026-12-06"
    assert args.vault == "gs://ml-checkpoints/ckpt-rescue-vault"
    assert args.roots_csv.split(",") == ["gs://ml-checkpoints/runs", "gs://ml-checkpoints/exports"]
    flags = audit_flags(beam, args.profile)          # every Beam flag the provider adds is one Beam knows
    assert "--runner=DataflowRunner" in flags and any(f.startswith("--labels=") for f in flags)
    status = found["status_command"].split()
    assert status[:3] == ["ckpt-rescue", "status", args.report_dir]
    parsed = build_parser("status").parse_args(status[1:])
    assert parsed.wait == 1800 and parsed.run_id is None


def test_a_beam_flag_whose_value_holds_a_space_reaches_beam_not_the_roots(family_copy, tmp_path, capsys):
    """The provider's `--labels={"airflow-version": ...}` (argparse takes it for a ROOT): the audit runs."""
    family = family_copy("keras3_adam")
    assert cli_main(["audit", os.path.dirname(family.prefix), "--report-dir", str(tmp_path / "r"), "--min-age", "0",
                     '--labels={"airflow-version": "v3-3-2"}']) == EXIT_OK
    assert "labels" not in capsys.readouterr().out


def test_the_status_task_fails_the_night_that_needs_a_person(airflow_python, gcs_server, family_copy, tmp_path):
    fs, _ = storage.url_to_fs("gs://ml-checkpoints")
    if not fs.exists("ml-checkpoints"):
        fs.mkdir("ml-checkpoints")
    for night, code in NIGHTS.items():     # what the Dataflow job would have written into each night's directory
        family = family_copy("keras3_adam")
        if code == EXIT_ATTENTION:
            orphan(family.prefix)
        assert cli_main(["audit", os.path.dirname(family.prefix), "--report-dir",
                         f"gs://ml-checkpoints/ckpt-rescue-reports/{night}", "--min-age", "0",
                         "--vault", str(tmp_path / "vault")]) == code
    found = _airflow(airflow_python, tmp_path, "2026-12-06", *NIGHTS)
    assert found["executed"]["2026-12-05"] == "success"
    assert found["executed"]["2026-12-06"].startswith("failed:") and "exit code 1" in found["executed"]["2026-12-06"]
