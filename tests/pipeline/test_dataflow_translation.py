"""Dataflow's side, as far as it runs here: the audit translated into the Dataflow job a real
submission would create (Beam's `--dry_run`, then the runner's own job description with staging on
the GCS emulator), checked the way a reviewer would check it, and the Flex Template's parameters
checked against the CLI they are handed to.

Nothing is submitted: the Dataflow service cannot be reached from here. That is the one thing this
test leaves out (and says so); the translation, the staged pipeline and the options are Beam's own.
"""

import json
import os
import re

import pytest
from repo_paths import REPO
from storage_servers import gcs_server  # noqa: F401 - fixture

from pipeline.cli import build_parser
from pipeline.options import audit_flags, pipeline_options
from recovery.prefix_steps import AuditSettings

pytestmark = pytest.mark.slow

FLEX_DIR = REPO / "configs" / "nightly" / "flex-template"
IMAGE = "europe-docker.pkg.dev/ml-platform-123/ckpt-rescue/worker:0.1.0"
STAGING_BUCKET = "ckpt-rescue-staging"


@pytest.fixture(scope="module")
def dataflow_job(gcs_server):  # noqa: F811 - the fixture above
    """(job description as Dataflow receives it, the staged pipeline proto) for an audit of gs:// roots."""
    import apache_beam as beam
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.dataflow.internal import apiclient
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    from pipeline import audit_pipeline

    client = gcs.Client(project="ml-platform-123", credentials=AnonymousCredentials())
    if client.lookup_bucket(STAGING_BUCKET) is None:
        client.create_bucket(STAGING_BUCKET)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GCP_PROJECT", "ml-platform-123")
        env.setenv("GCP_REGION", "europe-west4")
        env.setenv("GCS_TEMP", f"gs://{STAGING_BUCKET}/ckpt-rescue")
        flags = audit_flags([f"--sdk_container_image={IMAGE}", "--sdk_location=container",
                             "--dry_run=True", "--no_auth"], "dataflow")
    options = pipeline_options(flags)
    pipeline = beam.Pipeline(options=options)
    audit_pipeline.build(pipeline, ["gs://ml-checkpoints/runs"], AuditSettings("gs://ml-checkpoints/reports"), {})
    result = pipeline.run()     # --dry_run: translated, not submitted
    # What DataflowRunner does next on a real submission, short of the API call: stage and describe.
    apiclient.DataflowApplicationClient(options).create_job_description(result.job)
    job = json.loads(result.job.json())
    staged_url = job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    bucket, _, name = staged_url[len("gs://"):].partition("/")
    staged = beam_runner_api_pb2.Pipeline.FromString(client.bucket(bucket).blob(name).download_as_bytes())
    return job, staged


def test_the_job_has_the_audit_steps_on_our_worker_image(dataflow_job):
    job, staged = dataflow_job
    names = {t.unique_name for t in staged.components.transforms.values()}
    for step in ("Roots", "List", "Classify (whole)", "Classify (joined)", "Rebuild", "Report"):
        assert step in names, f"{step} missing from {sorted(n for n in names if '/' not in n)}"
    # Every environment the workers run is the project's image: nothing installed at start-up.
    images = {env["containerImage"] for pool in job["environment"]["workerPools"]
              for env in pool.get("sdkHarnessContainerImages", [])}
    assert images == {IMAGE}
    # Nothing for the workers to pip-install at start-up: only Beam's own session and dependency notes.
    staged_names = {p["name"] for p in job["environment"]["workerPools"][0].get("packages", [])}
    assert staged_names <= {"pickled_main_session", "submission_environment_dependencies.txt"}, staged_names
    options = job["environment"]["sdkPipelineOptions"]["options"]
    assert options["project"] == "ml-platform-123" and options["region"] == "europe-west4"
    assert options["sdk_container_image"] == IMAGE
    assert "use_runner_v2" in options["experiments"]


def test_the_workers_code_references_no_tensorflow(dataflow_job):
    """The pickled DoFns name every module they need; TensorFlow stays on the launcher."""
    _, staged = dataflow_job
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    pickles = []
    for transform in staged.components.transforms.values():
        if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
            payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
            pickles.append(_unpacked(payload.do_fn.payload))
    code = b"".join(pickles)
    assert b"recovery" in code and b"transforms" in code     # the check does see our pickled code
    assert b"tensorflow" not in code and b"keras" not in code


def _unpacked(payload: bytes) -> bytes:
    """The raw pickle inside Beam's base64 + bz2 (or zlib) packing, without unpickling it."""
    import base64
    import bz2
    import zlib

    packed = base64.b64decode(payload)
    try:
        return bz2.decompress(packed)
    except OSError:
        return zlib.decompress(packed)


def test_flex_template_parameters_are_the_audit_options():
    """Each metadata.json parameter reaches `ckpt-rescue audit` as --name=value and parses there."""
    metadata = json.loads((FLEX_DIR / "metadata.json").read_text())
    argv = ["audit", "--detach", "--runner=DataflowRunner"]
    for parameter in metadata["parameters"]:
        example = re.search(r"e\.g\. (\S+)", parameter["helpText"])[1]
        for pattern in parameter.get("regexes", []):
            assert re.fullmatch(pattern, example), (parameter["name"], example, pattern)
        argv.append(f"--{parameter['name']}={example}")
    args, extra = build_parser("audit").parse_known_args(argv)
    assert extra == ["--runner=DataflowRunner"]
    assert args.roots_csv.split(",")[0].startswith("gs://") and args.report_dir.startswith("gs://")
    assert args.split_bytes == 256 << 20 and args.detach
    required = {p["name"] for p in metadata["parameters"] if not p.get("isOptional")}
    assert required == {"roots", "report_dir"}
    main_py = (FLEX_DIR / "main.py").read_text()
    assert "--detach" in main_py and "wait_until_finish" not in main_py
    assert os.path.basename(os.environ.get("FLEX_TEMPLATE_PYTHON_PY_FILE", "main.py")) == "main.py"
