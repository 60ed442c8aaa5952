"""Transient storage errors are not verdicts, proven against the real emulators behind a proxy
that fails, resets or delays requests (tests/storage_servers.py FaultProxy), not mocks.

- faults that clear up within the clients' retries give the same verdicts as no faults;
- a sibling index that keeps failing gives `error`, never a fall-through to a weaker source
  (here a registry entry that would fit) and never `unrecoverable`; the audit exits 3;
- a permanent refusal (403) on the same read is a refusal, and the weaker source is used;
- `rebuild` of a remote prefix whose store keeps failing says so, exits 3, no traceback;
- classification's own reads (an index, the spot check's ranged reads, the `checkpoint` state file, a
  part index) that keep failing make that item `error`, its neighbours keep their verdicts, and the
  audit exits 3; failing once, the clients' retries recover and the verdict is the calm one; a 403
  there is the prefix's refusal (`unrecoverable`), not an `error`.
"""

import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest
from source_helpers import classify_local, orphan
from storage_servers import snapshot, upload_tree

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.report.readback import read_records, read_summary
from recovery.tasks import OrphanTask

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SIBLING_INDEX = r"ckpt-[12]\.index"


@pytest.fixture(scope="module")
def adam_tree(pristine_family, tmp_path_factory):
    """keras3_adam's three saves with the latest orphaned, and a registry entry captured from a
    sibling (a weaker source that also fits): (local dir, orphan name, original index, registry)."""
    family = pristine_family("keras3_adam")
    base = tmp_path_factory.mktemp("faults")
    directory = str(base / "run")
    shutil.copytree(os.path.dirname(family.prefix), directory)
    name = os.path.basename(family.prefix)
    original = orphan(os.path.join(directory, name))
    registry = str(base / "registry" / "architectures.yaml")
    os.makedirs(os.path.dirname(registry))
    assert cli_main(["register", "adam", "--from-checkpoint", family.siblings[-1], "--registry", registry]) == 0
    return directory, name, original, registry


def _bucket(scheme: str) -> str:
    url = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(url)
    fs.mkdir(path)
    return url


def _audit(root: str, report: str, registry: str | None = None) -> tuple[int, dict]:
    argv = ["audit", root, "--min-age", "0", "--report-dir", report, "--direct_running_mode=in_memory"]
    if registry:
        argv += ["--registry", registry]
    code = cli_main(argv)
    return code, {r.prefix: r for r in read_records(report)}


def _verdicts(records: dict) -> dict:
    return {prefix: (r.status, r.kind, r.source) for prefix, r in records.items()}


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_faults_that_clear_up_give_the_same_verdicts(scheme, adam_tree, request, tmp_path):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    directory, name, original, _ = adam_tree
    bucket = _bucket(scheme)
    root = f"{bucket}/run"
    upload_tree(directory, root)
    calm_code, calm = _audit(root, str(tmp_path / "calm"))
    assert calm[f"{root}/{name}"].status == "rebuilt" and calm_code == 1   # its state file names the orphan

    proxy.fail(503, times=2, method="GET", path=SIBLING_INDEX)
    proxy.fail(429, times=1, path=r"ckpt-3\.data")
    proxy.reset(times=2, path=r"ckpt-1\.")
    proxy.delay(1.0, times=2, method="GET")
    before = snapshot(bucket)
    code, stormy = _audit(root, str(tmp_path / "stormy"))
    assert proxy.hits() >= 6, proxy.log                        # the faults really happened
    assert code == calm_code and _verdicts(stormy) == _verdicts(calm)
    proxy.clear()
    rebuilt = stormy[f"{root}/{name}"]
    with open(rebuilt.index_path, "rb") as f:
        assert f.read() == original
    assert snapshot(bucket) == before


# The object read (not its metadata): S3 GET of the key; GCS media download (gcsfs asks ?alt=media).
INDEX_READ = {"s3": r"ckpt-2\.index$", "gs": r"ckpt-2\.index\?alt=media"}


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_sibling_index_that_keeps_failing_is_an_error_not_a_fall_through(scheme, adam_tree, request, monkeypatch,
                                                                          tmp_path):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")      # botocore's own retries, fewer to keep the test short
    directory, name, _, registry = adam_tree
    bucket = _bucket(scheme)
    root = f"{bucket}/run"
    upload_tree(directory, root)
    storage.url_to_fs(root)[0].rm(storage.url_to_fs(f"{root}/checkpoint")[1])   # its verdict would say 1 first
    before = snapshot(bucket)
    # classification reads ckpt-2.index once (it is healthy); every later read, the rebuild's, fails
    proxy.fail(500, times=None, method="GET", path=INDEX_READ[scheme], after=1)
    code, records = _audit(root, str(tmp_path / "report"), registry)
    assert proxy.hits() > 0
    record = records[f"{root}/{name}"]
    assert record.status == "error", record.reason
    assert "could not check" in record.reason and record.source == "" and not record.index_path
    assert not any(r.status in ("unrecoverable", "corrupt", "incomplete") for r in records.values())
    assert code == 3 and read_summary(str(tmp_path / "report"))["exit_code"] == 3
    proxy.clear()
    assert snapshot(bucket) == before


def test_a_permanent_refusal_is_not_an_error_and_the_next_source_is_used(adam_tree, faulty_s3, tmp_path):
    directory, name, original, registry = adam_tree
    bucket = _bucket("s3")
    root = f"{bucket}/run"
    upload_tree(directory, root)
    faulty_s3.fail(403, times=None, method="GET", path=SIBLING_INDEX, after=2)
    _, records = _audit(root, str(tmp_path / "report"), registry)
    record = records[f"{root}/{name}"]
    assert record.status == "rebuilt" and "registered `adam`" in record.source, record.reason
    with open(record.index_path, "rb") as f:
        assert f.read() == original


@pytest.mark.parametrize("command", ["rebuild", "inspect"])
def test_a_command_on_a_remote_prefix_says_storage_kept_failing(command, adam_tree, faulty_s3):
    directory, name, _, _ = adam_tree
    bucket = _bucket("s3")
    upload_tree(directory, f"{bucket}/run")
    faulty_s3.reset(times=None)
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "2", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "pipeline", command, f"{bucket}/run/{name}"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "could not check: storage kept failing" in done.stderr and "Traceback" not in done.stderr
    faulty_s3.clear()
    fs, path = storage.url_to_fs(f"{bucket}/run/{name}.index")
    assert not fs.exists(path)


# --- classification's own reads (issue 14.6): a store that did not answer is never a verdict ----------

PART_INDEX = "ckpt-2_temp/part-00000-of-00001"


def _object_read(scheme: str, name: str) -> str:
    """The read of an object's bytes (S3: GET of the key, whole or ranged; GCS: the media download), not
    of its metadata: a regular expression for FaultProxy."""
    return rf"run/{re.escape(name)}$" if scheme == "s3" else rf"run/{re.escape(name)}\?alt=media"


# What classification reads of the tree below: ckpt-2's index, the spot check's ranged reads of its data,
# the `checkpoint` state file, and the part index a merge into ckpt-2 left behind (an interrupted clean-up).
CLASSIFICATION_READS = {
    "index": ("ckpt-2.index", "ckpt-2"),
    "spot check ranges": ("ckpt-2.data-00000-of-00001", "ckpt-2"),
    "state file": ("checkpoint", "checkpoint"),
    "part index": (f"{PART_INDEX}.index", "ckpt-2"),
}


def _uploaded(scheme: str, adam_tree) -> tuple[str, str, str]:
    """adam_tree in a new bucket, with the part index of an interrupted merge clean-up beside ckpt-2:
    (root, orphan name, bucket)."""
    directory, name, _, _ = adam_tree
    bucket = _bucket(scheme)
    root = f"{bucket}/run"
    upload_tree(directory, root)
    fs, path = storage.url_to_fs(root)
    with open(os.path.join(directory, "ckpt-2.index"), "rb") as f:
        fs.pipe_file(f"{path}/{PART_INDEX}.index", f.read())
    return root, name, bucket


def _judged(results: dict) -> dict:
    return {prefix: ("orphan", r.stage_only) if isinstance(r, OrphanTask) else (r.status, r.kind)
            for prefix, r in results.items()}


@pytest.mark.parametrize("read", sorted(CLASSIFICATION_READS))
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_classification_read_that_keeps_failing_is_an_error_not_a_verdict(scheme, read, adam_tree, request,
                                                                           monkeypatch):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    root, name, bucket = _uploaded(scheme, adam_tree)
    calm = _judged(classify_local(root))      # the legitimate case: the verdicts without faults
    assert calm[f"{root}/ckpt-2"] == ("healthy", "checkpoint") and calm[f"{root}/{name}"] == ("orphan", False)
    obj, judged = CLASSIFICATION_READS[read]
    before = snapshot(bucket)

    proxy.fail(503, times=None, method="GET", path=_object_read(scheme, obj))
    stormy = classify_local(root)
    assert proxy.hits() > 1, proxy.log                     # the clients retried, and the store kept failing
    failed = stormy[f"{root}/{judged}"]
    assert failed.status == "error", failed.reason
    assert "could not check: classification hit storage errors that persisted after retries" in failed.reason
    assert failed.kind == calm[f"{root}/{judged}"][1] and failed.command == f"ckpt-rescue inspect {root}/{judged}"
    others = {p: v for p, v in _judged(stormy).items() if p != f"{root}/{judged}"}
    assert others == {p: v for p, v in calm.items() if p != f"{root}/{judged}"}   # its neighbours keep theirs
    proxy.clear()
    assert snapshot(bucket) == before


@pytest.mark.parametrize("read", sorted(CLASSIFICATION_READS))
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_a_classification_read_that_fails_once_gets_the_right_verdict(scheme, read, adam_tree, request):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    root, _, _ = _uploaded(scheme, adam_tree)
    calm = _judged(classify_local(root))
    obj, _ = CLASSIFICATION_READS[read]
    proxy.fail(503, times=1, method="GET", path=_object_read(scheme, obj))
    stormy = _judged(classify_local(root))
    assert proxy.hits() == 1, proxy.log
    assert stormy == calm


def test_a_classification_read_refused_for_good_is_that_prefix_refusal_not_an_error(adam_tree, faulty_s3):
    """403 is an answer, not silence: the step's refusal record (unrecoverable), never `error`."""
    root, _, _ = _uploaded("s3", adam_tree)
    faulty_s3.fail(403, times=None, method="GET", path=_object_read("s3", "ckpt-2.index"))
    refused = classify_local(root)[f"{root}/ckpt-2"]
    assert refused.status == "unrecoverable" and "classification failed: PermissionError" in refused.reason


@pytest.mark.parametrize("read", ["index", "spot check ranges"])
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_the_audit_exits_3_when_classification_could_not_read(scheme, read, adam_tree, request, monkeypatch,
                                                               tmp_path):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    directory, _, _, _ = adam_tree
    bucket = _bucket(scheme)
    root = f"{bucket}/run"
    fs, path = storage.url_to_fs(root)
    for name in ("ckpt-1", "ckpt-2"):       # two healthy checkpoints: nothing but classification reads them
        for file in (f"{name}.index", f"{name}.data-00000-of-00001"):
            with open(os.path.join(directory, file), "rb") as f:
                fs.pipe_file(f"{path}/{file}", f.read())
    calm_code, calm = _audit(root, str(tmp_path / "calm"))
    assert calm_code == 0 and {r.status for r in calm.values()} == {"healthy"}

    proxy.fail(500, times=None, method="GET", path=_object_read(scheme, CLASSIFICATION_READS[read][0]))
    code, records = _audit(root, str(tmp_path / "report"))
    assert proxy.hits() > 1, proxy.log
    assert records[f"{root}/ckpt-2"].status == "error" and records[f"{root}/ckpt-1"].status == "healthy"
    assert code == 3 and read_summary(str(tmp_path / "report"))["exit_code"] == 3
