"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): submit the audit and return at once.

Dataflow's Python launcher runs this file with the job's options (--runner, --project, --region,
--job_name, --staging_location, --temp_location, --template_location=.../template_launches/JOB/job_object,
and the launch's environment such as --sdk_container_image and --service_account_email) followed by the
template's parameters (--roots, --report_dir, --vault, ...). With --template_location, Beam's DataflowRunner
writes the job there and the launcher submits it: launchers must not wait for the job. The audit writes
its marker in --report_dir first; when the job has ended, `ckpt-rescue status REPORT_DIR` exits with the
audit's exit code (configs/nightly/workflow.yaml runs it).
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    # the runner is named first so a launcher that passes none cannot fall back to a local run
    sys.exit(main(["audit", "--detach", "--runner=DataflowRunner", *sys.argv[1:]]))
