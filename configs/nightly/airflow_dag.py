"""Nightly ckpt-rescue audit on Dataflow, scheduled by Airflow (3.x; providers apache-beam and google).

Two tasks. `audit_checkpoints` submits the audit (launch_audit.py, `--detach`) into the night's own report
directory and waits, deferred, for the Dataflow job to end: the Beam provider returns as soon as the job is
created and then only follows the job's state, so a job that finds an unrecoverable checkpoint still ends
DONE. `audit_outcome` then runs `ckpt-rescue status` on that directory, which exits with the audit's own
exit code: 0 ok; any other code fails the task and the DAG run (alert on it): 1 needs a person, 2 usage or
configuration, 3 could not check (the store kept failing: clear the audit task to run it again), 4 nothing
checked; 5 means the run had not finished 30 minutes after its job ended (it died: see the job's logs).

Install on the Airflow workers: `pip install ckpt-rescue apache-airflow-providers-apache-beam
apache-airflow-providers-google`, and this directory (for launch_audit.py). The Dataflow workers run the
project's image (configs/nightly/flex-template/Dockerfile). The registry holds layout entries, which need
no TensorFlow. Change PROJECT, REGION and the bucket names; `deferrable=True` needs Airflow's triggerer.
"""

import pendulum
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowConfiguration
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

PROJECT = "my-gcp-project"
REGION = "europe-west4"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/ckpt-rescue/ckpt-rescue:0.1.0"
REPORT_DIR = "gs://ml-checkpoints/ckpt-rescue-reports/{{ ds }}"     # the night's own directory
VAULT = "gs://ml-checkpoints/ckpt-rescue-vault"                       # one vault for every night

with DAG(
    dag_id="ckpt_rescue_nightly",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,                  # nights never overlap
    tags=["ml-platform", "checkpoints"],
) as dag:
    audit = BeamRunPythonPipelineOperator(
        task_id="audit_checkpoints",
        runner="DataflowRunner",
        py_file="/opt/ckpt-rescue/configs/nightly/launch_audit.py",
        pipeline_options={
            "roots": "gs://ml-checkpoints/runs,gs://ml-checkpoints/exports",
            "report_dir": REPORT_DIR,
            "vault": VAULT,
            "registry": "gs://ml-checkpoints/ckpt-rescue/architectures.yaml",
            "temp_location": "gs://ml-checkpoints/dataflow/temp",
            "sdk_container_image": IMAGE,
            "max_num_workers": "32",
            "detach": True,
        },
        dataflow_config=DataflowConfiguration(
            job_name="ckpt-rescue-audit", project_id=PROJECT, location=REGION, wait_until_finished=True),
        deferrable=True,
    )
    outcome = BashOperator(
        task_id="audit_outcome",
        bash_command=f"ckpt-rescue status {REPORT_DIR} --wait 30m",
    )
    audit >> outcome
