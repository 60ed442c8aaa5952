"""Cloud Scheduler -> Cloud Workflows -> Dataflow Flex Template -> `ckpt-rescue status` on Cloud Run.

Google Cloud cannot be reached from here, so each piece is exercised as far as it runs offline:
- cloud-scheduler.sh passes shellcheck and, run with a `gcloud` that records its calls, sets up what the
  workflow needs: the image and template, the status job, the workflow, a nightly trigger whose argument
  names every `args.X` the workflow reads, and an alert on failed executions;
- the workflow launches the template with parameters its metadata.json declares, works out the night's own
  directory, waits for the job to end, and runs a status command the real CLI parser accepts;
- the Flex Template's entry point (main.py) runs with the flags Dataflow's Python launcher injects
  (--template_location among them): Beam's DataflowRunner writes the job where the launcher collects it
  (staging and template on the GCS emulator), the audit's marker lands in the night's directory first, and
  `ckpt-rescue status` on it says the run has not finished (nothing runs the job here).
"""

import json
import os
import re
import stat
import subprocess
import sys

import pytest
import yaml
from nightly_artifacts import NIGHTLY, venv_bin
from repo_paths import REPO
from storage_servers import gcs_bucket, upload_tree  # noqa: F401 - fixture

from pipeline.cli import build_parser
from pipeline.cli import main as cli_main
from recovery import storage
from recovery.listing import REPORT_MARKER
from recovery.records import EXIT_NOT_FINISHED

pytestmark = pytest.mark.slow
WORKFLOW = NIGHTLY / "workflow.yaml"
FLEX = NIGHTLY / "flex-template"
IMAGE = "europe-west4-docker.pkg.dev/my-gcp-project/ckpt-rescue/ckpt-rescue:0.1.0"

FAKE_GCLOUD = """#!{python}
import json, os, shutil, sys
calls = os.environ["GCLOUD_CALLS"]
argv = sys.argv[1:]
for flag in ("--message-body-from-file", "--policy-from-file", "--source", "--metadata-file"):
    if flag in argv:       # keep what the script handed over (its temporary files go when it exits)
        path = argv[argv.index(flag) + 1]
        shutil.copy(path, os.path.join(os.path.dirname(calls), flag.strip("-") + os.path.splitext(path)[1]))
with open(calls, "a") as f:
    f.write(json.dumps(argv) + "\\n")
"""


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> dict:
    return {name: body for step in _workflow()["main"]["steps"] for name, body in step.items()}


def test_the_setup_script_passes_shellcheck():
    checked = subprocess.run([os.path.join(venv_bin(), "shellcheck"), str(NIGHTLY / "cloud-scheduler.sh")],
                             capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout


def test_the_setup_script_builds_what_the_workflow_reads(tmp_path):
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable))
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(["bash", str(NIGHTLY / "cloud-scheduler.sh")], cwd=str(REPO), capture_output=True,
                          text=True, timeout=600,
                          env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GCLOUD_CALLS": str(calls)})
    assert done.returncode == 0, done.stderr
    made = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [call[:3] for call in made] == [
        ["builds", "submit", "--project"], ["dataflow", "flex-template", "build"], ["run", "jobs", "create"],
        ["workflows", "deploy", "ckpt-rescue-nightly"], ["scheduler", "jobs", "create"],
        ["alpha", "monitoring", "policies"]]
    flag = {name: dict(zip(call, call[1:])) for name, call in zip(["build", "template", "run", "workflow",
                                                                  "scheduler", "policy"], made)}
    assert flag["build"]["--tag"] == IMAGE and flag["template"]["--image"] == IMAGE and flag["run"]["--image"] == IMAGE
    assert (REPO / flag["workflow"]["--source"]) == WORKFLOW
    assert (tmp_path / "metadata-file.json").read_bytes() == (FLEX / "metadata.json").read_bytes()

    # The nightly trigger starts an execution of that workflow with the argument the workflow reads.
    assert flag["scheduler"]["--uri"].endswith("/workflows/ckpt-rescue-nightly/executions")
    assert flag["scheduler"]["--schedule"] == "30 2 * * *" and flag["scheduler"]["--time-zone"] == "UTC"
    body = json.loads((tmp_path / "message-body-from-file.json").read_text())
    argument = json.loads(body["argument"])
    read = set(re.findall(r"\bargs\.([a-z_]+)", WORKFLOW.read_text()))
    assert set(argument) == read, (sorted(argument), sorted(read))
    assert argument["template"] == made[1][3]        # `gcloud dataflow flex-template build TEMPLATE`
    assert argument["image"] == IMAGE and argument["report_root"].startswith("gs://")

    # The status step is the Cloud Run job the script made: `ckpt-rescue` with the workflow's arguments.
    run = _steps()["audit_outcome"]["call"], _steps()["audit_outcome"]["args"]
    assert run[0] == "googleapis.run.v2.projects.locations.jobs.run"
    assert run[1]["name"].endswith('"/jobs/ckpt-rescue-status"}') and made[2][3] == "ckpt-rescue-status"
    assert flag["run"]["--command"] == "ckpt-rescue" and flag["run"]["--max-retries"] == "0"
    (override,) = run[1]["body"]["overrides"]["containerOverrides"]
    night_dir = f"{argument['report_root']}/2026-12-06"
    status = [night_dir if part == "${report_dir}" else part for part in override["args"]]
    args = build_parser("status").parse_args(status)
    assert args.report_dir == night_dir and args.wait == 1800

    policy = json.loads((tmp_path / "policy-from-file.json").read_text())
    condition = policy["conditions"][0]["conditionThreshold"]["filter"]
    assert 'workflow_id = "ckpt-rescue-nightly"' in condition and 'status = "FAILED"' in condition


def test_the_workflow_launches_the_template_into_the_nights_directory():
    steps = _steps()
    assigned = {k: v for item in steps["init"]["assign"] for k, v in item.items()}
    assert assigned["night"] == "${text.substring(time.format(sys.now()), 0, 10)}"    # YYYY-MM-DD, UTC
    assert assigned["report_dir"] == '${args.report_root + "/" + night}'
    launch = steps["launch_audit"]
    assert launch["call"] == "googleapis.dataflow.v1b3.projects.locations.flexTemplates.launch"
    parameters = launch["args"]["body"]["launchParameter"]["parameters"]
    declared = {p["name"]: p for p in json.loads((FLEX / "metadata.json").read_text())["parameters"]}
    assert set(parameters) <= set(declared)
    assert {n for n, p in declared.items() if not p["isOptional"]} <= set(parameters)
    assert parameters["report_dir"] == "${report_dir}" and parameters["vault"] == "${args.vault}"
    # What main.py receives for those parameters parses as the audit's own options.
    values = {"roots": "gs://ml-checkpoints/runs,gs://ml-checkpoints/exports",
              "report_dir": "gs://ml-checkpoints/ckpt-rescue-reports/2026-12-06",
              "vault": "gs://ml-checkpoints/ckpt-rescue-vault", "registry": "gs://ml-checkpoints/reg.yaml"}
    args, extra = build_parser("audit").parse_known_args(
        ["audit", "--detach", "--runner=DataflowRunner", *(f"--{name}={values[name]}" for name in parameters)])
    assert args.report_dir == values["report_dir"] and args.vault == values["vault"] and args.detach
    assert extra == ["--runner=DataflowRunner"]
    # It waits for the job to end, whatever the end, before the status step.
    ended = steps["job_ended"]["switch"][0]
    assert ended["next"] == "audit_outcome"
    for state in ("JOB_STATE_DONE", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        assert f'"{state}"' in ended["condition"]
    assert steps["wait"]["next"] == "read_job" and steps["read_job"]["args"]["jobId"] == "${launched.job.id}"


def test_the_flex_template_entry_point_with_the_launchers_flags(gcs_bucket, family_copy, tmp_path):  # noqa: F811
    """What Dataflow's Python launcher runs: main.py with the job's options, then the parameters."""
    family = family_copy("keras3_adam")
    upload_tree(os.path.dirname(family.prefix), f"{gcs_bucket}/runs/exp1")
    night_dir = f"{gcs_bucket}/ckpt-rescue-reports/2026-12-06"
    job_object = f"{gcs_bucket}/staging/template_launches/2026-12-06_02_30_11-4211/job_object"
    launcher = ["--runner=DataflowRunner", "--project=my-gcp-project", "--region=europe-west4",
                "--job_name=ckpt-rescue-2026-12-06", f"--staging_location={gcs_bucket}/staging",
                f"--temp_location={gcs_bucket}/temp", f"--template_location={job_object}",
                f"--sdk_container_image={IMAGE}", "--max_num_workers=32",
                "--service_account_email=ckpt-rescue-worker@p.iam.gserviceaccount.com"]
    parameters = [f"--roots={gcs_bucket}/runs", f"--report_dir={night_dir}", f"--vault={gcs_bucket}/vault"]
    done = subprocess.run([sys.executable, str(FLEX / "main.py"), *launcher, *parameters,
                           "--no_auth"],            # only here: no Google credentials to find
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted run " in done.stdout
    fs, _ = storage.url_to_fs(gcs_bucket)
    job = json.loads(fs.cat_file(job_object.split("://", 1)[1]))     # what the launcher submits
    options = job["environment"]["sdkPipelineOptions"]["options"]
    assert options["sdk_container_image"] == IMAGE and options["job_name"] == "ckpt-rescue-2026-12-06"
    assert options["service_account_email"].startswith("ckpt-rescue-worker@")
    from apache_beam.portability.api import beam_runner_api_pb2

    staged = beam_runner_api_pb2.Pipeline.FromString(fs.cat_file(options["pipelineUrl"].split("://", 1)[1]))
    names = {t.unique_name for t in staged.components.transforms.values()}
    assert {"Roots", "List", "Rebuild", "Report"} <= names
    marker = json.loads(fs.cat_file(f"{night_dir.split('://', 1)[1]}/{REPORT_MARKER}"))
    assert marker["tool"] == "ckpt-rescue"
    assert cli_main(["status", night_dir, "--wait", "0", "--run-id", marker["run_id"]]) == EXIT_NOT_FINISHED
