"""Entry file for schedulers that run a Python file with named options (Airflow's
BeamRunPythonPipelineOperator): `python launch_audit.py --roots=gs://a,gs://b --report_dir=gs://r ...`.

Without --detach it waits for the pipeline and exits with the audit's exit code. With --detach (what
airflow_dag.py passes: the Beam provider stops reading once Dataflow has created the job) it returns once
the job is submitted, and `ckpt-rescue status REPORT_DIR` gives the outcome when the job has ended.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["audit", *sys.argv[1:]]))
