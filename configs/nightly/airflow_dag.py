"""Nightly ckpt-rescue audit on Dataflow, scheduled by Airflow (apache-airflow-providers-apache-beam
and -google). The worker image is the project's container (docs/running.md); the Airflow worker
that launches it needs `pip install ckpt-rescue` and this file (from the repository) too. The
registry holds layout entries, which need no TensorFlow; builder entries would (`ckpt-rescue[tensorflow]`).

A failing audit (exit code 1: something unrecoverable, corrupt or incomplete) fails the task.
"""

import pendulum
from airflow import DAG
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowConfiguration

PROJECT = "my-gcp-project"
REGION = "europe-west4"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/ckpt-rescue/ckpt-rescue:0.1.0"

with DAG(
    dag_id="ckpt_rescue_nightly",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ml-platform", "checkpoints"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="audit_checkpoints",
        runner="DataflowRunner",
        py_file="/opt/ckpt-rescue/configs/nightly/launch_audit.py",
        pipeline_options={
            "roots": "gs://ml-checkpoints/runs,gs://ml-checkpoints/exports",
            "report_dir": "gs://ml-checkpoints/ckpt-rescue-reports/{{ ds }}",
            "registry": "gs://ml-checkpoints/ckpt-rescue/architectures.yaml",
            "temp_location": "gs://ml-checkpoints/dataflow/temp",
            "sdk_container_image": IMAGE,
            "max_num_workers": "32",
        },
        dataflow_config=DataflowConfiguration(
            job_name="ckpt-rescue-audit", project_id=PROJECT, location=REGION, wait_until_finished=True),
    )
