"""Usage and configuration problems end the run in seconds, with exit 2 and what to do, before any work:
cloud paths without credentials or network, unwritable outputs, wrong rebuild paths, unknown --arch.

The cloud cases run real gs:// and s3:// URLs against this machine's real (absent) network and
credentials, and the positive paths against real emulators (gcp-storage-emulator, moto).
"""

import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest
from repo_paths import REPO
from storage_servers import fake_gcs_fs, gcs_bucket, gcs_server, s3_bucket, s3_server, upload_tree  # noqa: F401

from pipeline.cli import main
from pipeline.preflight import TOTAL_SECONDS

REPO_ROOT = str(REPO)
# "In seconds rather than minutes" (docs/running.md) is the checks' own deadline (pipeline/preflight.py:
# TOTAL_SECONDS): the tests see it fire in what the message says and in the calls a server received, never by
# timing a process, which a loaded machine slows down at will. Subprocesses get a generous timeout that only
# ends a hang.
SUBPROCESS_TIMEOUT = 600
CLOUD_ENV = ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT",
             "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def cli(args, env=None, cwd=None, timeout=SUBPROCESS_TIMEOUT):
    """Run `python -m pipeline ARGS` in a fresh process; (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env,
                            cwd=cwd or REPO_ROOT, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def bare_env(home, **extra) -> dict:
    """This machine's environment with every cloud credential and endpoint setting removed (HOME too)."""
    env = {k: v for k, v in os.environ.items() if k not in CLOUD_ENV}
    env.update(HOME=str(home), PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def offline(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return True
    return False


# --- cloud paths without credentials or network -----------------------------------------------------

CLOUD_COMMANDS = [
    ("audit", ["audit", "gs://ckpt-rescue-test-bucket/runs", "--report-dir", "gs://ckpt-rescue-test-bucket/reports"]),
    ("inspect", ["inspect", "gs://ckpt-rescue-test-bucket/runs/ckpt-5"]),
    ("rebuild", ["rebuild", "gs://ckpt-rescue-test-bucket/runs/ckpt-5"]),
    ("register", ["register", "m", "--from-checkpoint", "gs://ckpt-rescue-test-bucket/runs/ckpt-5"]),
    ("audit", ["audit", "s3://ckpt-rescue-test-bucket/runs", "--report-dir", "REPORTS"]),
    ("rebuild", ["rebuild", "s3://ckpt-rescue-test-bucket/runs/ckpt-5", "--output", "OUT"]),
    ("salvage", ["salvage", "gs://ckpt-rescue-test-bucket/runs/ckpt-5", "--output", "gs://ckpt-rescue-test-bucket/s/c"]),
]


@pytest.mark.parametrize("command,args", CLOUD_COMMANDS, ids=[" ".join(a[:2]) for _, a in CLOUD_COMMANDS])
def test_cloud_paths_without_credentials_answer_in_seconds(command, args, tmp_path):
    args = [str(tmp_path / "reports") if a == "REPORTS" else str(tmp_path / "out.index") if a == "OUT" else a
            for a in args]
    code, out, err = cli(args, env=bare_env(tmp_path), cwd=tmp_path)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert f"ckpt-rescue {command}: cannot access cloud storage" in err
    gcs = args[1].startswith("gs://") or args[3].startswith("gs://")
    if gcs:
        assert "no Google credentials found" in err and "gcloud auth application-default login" in err
        assert "GOOGLE_APPLICATION_CREDENTIALS" in err
    else:
        assert "no AWS credentials found" in err and "AWS_PROFILE" in err and "AWS_ACCESS_KEY_ID" in err
    host = "storage.googleapis.com" if gcs else "s3.amazonaws.com"
    if offline(host):   # this machine: no DNS, so that is named too, with the emulator/endpoint setting
        assert f"DNS lookup of {host} failed" in err
        assert ("STORAGE_EMULATOR_HOST" if gcs else "AWS_ENDPOINT_URL") in err
    assert not (tmp_path / "reports").exists() and not (tmp_path / "out.index").exists()


def test_wrong_credentials_configuration_is_named(tmp_path):
    code, _, err = cli(["inspect", "gs://b/x"], env=bare_env(
        tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "key.json")))
    assert code == 2
    assert f"{tmp_path / 'key.json'} was not found" in err
    code, _, err = cli(["inspect", "s3://b/x"], env=bare_env(tmp_path, AWS_PROFILE="no-such-profile"))
    assert code == 2
    assert "no-such-profile" in err and "could not be found" in err


class SilentServer(str):
    """The server's URL; `.accepted` holds the connections it took (each a call someone gave up on)."""

    def __new__(cls, url: str, accepted: list):
        made = super().__new__(cls, url)
        made.accepted = accepted
        return made


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a store behind a black hole."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield SilentServer(f"http://127.0.0.1:{listener.getsockname()[1]}", accepted)
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_store_that_never_answers_is_given_up_in_seconds(silent_server, tmp_path):
    env = bare_env(tmp_path, STORAGE_EMULATOR_HOST=silent_server, AWS_ENDPOINT_URL=silent_server,
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    code, _, err = cli(["audit", "gs://b/runs", "s3://b/runs", "--report-dir", str(tmp_path / "r")], env=env)
    assert code == 2, err
    assert err.count("no answer within") == 2 and silent_server in err
    assert len(silent_server.accepted) == 2         # one bounded call per store, given up, never retried


def test_a_metadata_server_that_never_answers_cannot_hold_the_check(silent_server, tmp_path):
    """Outside GCP, google-auth's metadata probe can hang (3 s x 3 tries): the whole check still ends in time."""
    host = silent_server[len("http://"):]
    code, _, err = cli(["inspect", "gs://b/x"], env=bare_env(tmp_path, GCE_METADATA_HOST=host, GCE_METADATA_IP=host))
    assert code == 2, err
    assert f"no answer within {TOTAL_SECONDS:.0f} s while looking for Google credentials" in err   # our deadline


def test_emulators_pass_the_check_and_missing_buckets_are_named(pristine_family, gcs_bucket, s3_bucket,  # noqa: F811
                                                                 capsys):
    family = pristine_family("keras3_adam")
    for bucket in (gcs_bucket, s3_bucket):
        upload_tree(os.path.dirname(family.prefix), f"{bucket}/run")
        remote = f"{bucket}/run/{os.path.basename(family.prefix)}"
        assert main(["inspect", remote]) == 0, capsys.readouterr().err
        assert f"checkpoint {remote}: healthy" in capsys.readouterr().out
        scheme = bucket.split("://")[0]
        assert main(["inspect", f"{scheme}://no-such-bucket-h8/run/ckpt-1"]) == 2
        assert "bucket no-such-bucket-h8 not found" in capsys.readouterr().err


# --- outputs checked before any work --------------------------------------------------------------

def test_unwritable_report_dir_is_refused_before_the_audit_starts(pristine_family, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(os.path.dirname(pristine_family("keras3_adam").prefix), root / "run")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for report_dir, words in ((blocker / "reports", "is a file, so no directory can be made there"),
                              ("/proc/ckpt-rescue-reports", "cannot write in /proc")):
        assert main(["audit", str(root), "--min-age", "0", "--report-dir", str(report_dir)]) == 2
        err = capsys.readouterr().err
        assert words in err and "auditing" not in err   # the pipeline never started
    assert not os.path.exists("/proc/ckpt-rescue-reports")
    # The legitimate case: a report directory that does not exist yet is created and written.
    assert main(["audit", str(root), "--min-age", "0", "--report-dir", str(tmp_path / "new" / "reports")]) == 0
    assert (tmp_path / "new" / "reports" / "report.html").exists()
    assert not [p for p in os.listdir(tmp_path / "new" / "reports") if p.startswith(".ckpt-rescue-probe")]


def test_unwritable_rebuild_output_is_refused_before_the_rebuild(family_copy, tmp_path, capsys):
    from source_helpers import orphan, tree_digest

    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    before = tree_digest(os.path.dirname(family.prefix))
    cases = ((tmp_path / "missing-dir" / "x.index", "no such directory"),
             (tmp_path, "is a directory"),
             ("/proc/ckpt-rescue.index", "cannot write in /proc"))
    for output, words in cases:
        assert main(["rebuild", family.prefix, "--output", str(output)]) == 2
        captured = capsys.readouterr()
        assert words in captured.err and "rebuilt" not in captured.out
    assert tree_digest(os.path.dirname(family.prefix)) == before
    assert not (tmp_path / "missing-dir").exists()
    assert main(["rebuild", family.prefix, "--output", str(tmp_path / "ok.index")]) == 0
    assert (tmp_path / "ok.index").read_bytes() == original


# --- rebuild diagnoses paths like inspect ---------------------------------------------------------

def test_rebuild_diagnoses_wrong_paths_before_any_work(family_copy, tmp_path, capsys):
    from source_helpers import orphan

    family = family_copy("keras3_adam")
    orphan(family.prefix)
    directory = os.path.dirname(family.prefix)
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    data = family.prefix + ".data-00000-of-00001"
    sibling = family.siblings[0]
    cases = [
        (str(readme), "this is a file (unrecognised content), not a checkpoint prefix", None),
        (data, f"you passed the data file; the prefix is {family.prefix}", family.prefix),
        (sibling + ".index", f"you passed the index file; the prefix is {sibling}", sibling),
        (directory, "you passed a directory; pass one checkpoint prefix inside it (3 found)", None),
        (os.path.join(directory, "ckpt-9"), "the nearest prefixes in that directory are listed", None),
        (str(tmp_path / "nowhere" / "ckpt-1"), "no such directory", None),
    ]
    for target, words, suggestion in cases:
        assert main(["rebuild", target]) == 2, target
        captured = capsys.readouterr()
        assert words in captured.err, captured.err
        assert captured.out == "" and "Traceback" not in captured.err
        if suggestion:
            assert f"try: ckpt-rescue rebuild {suggestion}" in captured.err
        assert "ckpt-rescue inspect" not in captured.err
    assert not os.path.exists(family.prefix + ".index")
    # The legitimate prefix still rebuilds.
    assert main(["rebuild", family.prefix]) == 0


def test_nameless_tf1_prefix_is_a_prefix_not_a_directory(pristine_family, tmp_path):
    """`saver.save(sess, "dir/")` writes dir/.index and dir/.data-…: "dir/" names a checkpoint."""
    from recovery.diagnosis import diagnose
    from recovery.inspection import inspect_path

    source = pristine_family("tf1_saver").prefix
    nameless = tmp_path / "dir"
    nameless.mkdir()
    for path in [source + ".index"] + _data_files(source):
        shutil.copy(path, nameless / path[len(source):])   # ".index", ".data-00000-of-00001"
    assert diagnose(str(nameless) + "/") is None
    assert inspect_path(str(nameless) + "/").kind == "healthy"
    # A plain directory of checkpoints is still a directory.
    assert "you passed a directory" in diagnose(os.path.dirname(source)).problem


def _data_files(prefix: str):
    directory, base = os.path.split(prefix)
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(base + ".data-")]


def test_bad_template_and_unregistered_arch_are_usage_errors(family_copy, tmp_path, capsys):
    from source_helpers import orphan

    family = family_copy("keras_app")
    lone = orphan(family.prefix)
    healthy = family_copy("keras_app")
    other = family_copy("keras3_adam")
    orphan(other.prefix)
    registry = tmp_path / "registry" / "architectures.yaml"
    assert main(["register", "app", "--from-checkpoint", healthy.prefix, "--registry", str(registry)]) == 0
    capsys.readouterr()
    for args, words in (
            (["--template", str(tmp_path / "no-such" / "ckpt-1")], "--template"),
            (["--template", healthy.prefix + ".index"], "--template"),
            (["--template", other.prefix], "has no index: a template must be a healthy checkpoint"),
            (["--registry", str(registry), "--arch", "apq"], "--arch apq is not registered")):
        assert main(["rebuild", family.prefix, *args]) == 2, args
        assert words in capsys.readouterr().err
    assert main(["rebuild", family.prefix, "--registry", str(registry), "--arch", "apq"]) == 2
    assert "did you mean app?" in capsys.readouterr().err
    assert not os.path.exists(family.prefix + ".index")
    # The legitimate flags rebuild it.
    assert main(["rebuild", family.prefix, "--registry", str(registry), "--arch", "app",
                 "--output", str(tmp_path / "by-arch.index")]) == 0
    assert main(["rebuild", family.prefix, "--template", healthy.prefix]) == 0
    with open(family.prefix + ".index", "rb") as f:
        assert f.read() == lone


# --- logging flags and quiet runs -----------------------------------------------------------------

def test_verbose_and_debug_work_before_and_after_the_subcommand():
    from pipeline.cli import build_parser

    for argv in (["-v", "inspect", "p"], ["inspect", "p", "-v"], ["inspect", "--verbose", "p"]):
        args, _ = build_parser("inspect").parse_known_args(argv)
        assert (args.verbose, args.debug) == (True, False), argv
    args, extra = build_parser("audit").parse_known_args(["audit", "r", "--report-dir", "d", "--debug", "-v"])
    assert (args.verbose, args.debug, extra) == (True, True, [])
    args, _ = build_parser("inspect").parse_known_args(["inspect", "p"])
    assert (args.verbose, args.debug) == (False, False)


def test_beam_harness_logs_stay_out_unless_debug(pristine_family, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(os.path.dirname(pristine_family("keras3_adam").prefix), root / "run")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = "--direct_running_mode=multi_processing"   # a tree this small would run in the launcher
    code, out, err = cli(["audit", str(root), "--min-age", "0", workers,
                          "--report-dir", str(tmp_path / "r1"), "-v"], env=env)
    assert code == 0, err
    assert "healthy 4" in out   # three checkpoints and the state file
    assert "Worker:" not in err and "sdk_worker" not in err and "control server" not in err, err
    code, _, err = cli(["audit", str(root), "--min-age", "0", workers,
                        "--report-dir", str(tmp_path / "r2"), "--debug"], env=env)
    assert code == 0
    assert "Worker:" in err and "Python sdk harness starting" in err   # the harness, shown only on request


def test_worker_lines_from_our_code_pass_the_filter():
    """Relayed worker lines look like this (copied from a DirectRunner multi_processing run)."""
    import logging

    from pipeline.cli import _OnlyOurWorkerLines

    def relayed(location, message):
        text = (f'Worker: severity: INFO timestamp {{ seconds: 1 nanos: 2 }} message: "{message}" '
                f'log_location: "{location}" thread: "MainThread"')
        return logging.LogRecord("apache_beam.runners.portability.local_job_service", logging.INFO, __file__, 1,
                                 text, None, None)

    keep = _OnlyOurWorkerLines()
    assert keep.filter(relayed("/work/ckpt-rescue/transforms/report.py:31", "progress: this worker has audited 3"))
    assert keep.filter(relayed("/venv/site-packages/recovery/prefix_steps.py:12", "progress"))
    assert not keep.filter(relayed("/venv/site-packages/apache_beam/runners/worker/sdk_worker_main.py:97",
                                   "Logging handler created."))
    assert not keep.filter(relayed("/venv/site-packages/absl/logging/__init__.py:5", "oneDNN custom operations"))


def test_an_audit_that_finds_nothing_warns_what_it_looked_for(pristine_family, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "logs").mkdir(parents=True)
    (empty / "logs" / "train.log").write_text("step 1\n")
    # nothing checked is never a quiet 0 (DESIGN.md, "Nightly operation"): exit 4, and it says what it looked for
    assert main(["audit", str(empty), "--min-age", "0", "--report-dir", str(tmp_path / "r1")]) == 4
    out = capsys.readouterr().out                      # the summary's warnings come first, on the output
    assert out.startswith("WARNING: ") and f"\nWARNING: no checkpoint found under {empty}" in out
    assert "`*.index`" in out and "`*.data-NNNNN-of-NNNNN`" in out and "`checkpoint`" in out
    assert "without following symbolic links to directories" in out
    full = tmp_path / "full"
    shutil.copytree(os.path.dirname(pristine_family("keras3_adam").prefix), full / "run")
    assert main(["audit", str(full), "--min-age", "0", "--report-dir", str(tmp_path / "r2")]) == 0
    assert "no checkpoint found" not in capsys.readouterr().out


def test_register_checks_its_inputs_before_running_anything(family_copy, tmp_path, capsys):
    from source_helpers import orphan

    family = family_copy("keras3_adam")
    orphan(family.prefix)
    sibling = family.siblings[0]
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    registry = str(tmp_path / "registry" / "architectures.yaml")
    cases = (
        (["--from-checkpoint", str(readme)], "not a checkpoint prefix"),
        (["--from-checkpoint", sibling + ".index"], f"try: --from-checkpoint {sibling}"),
        (["--from-checkpoint", family.prefix], "does not exist: --from-checkpoint needs a healthy checkpoint"),
        (["--builder", "no_colon_here"], "write it as MODULE:FUNCTION"),
        (["--from-checkpoint", sibling, "--registry", str(readme / "architectures.yaml")], "is a file"),
    )
    for args, words in cases:
        assert main(["register", "adam", "--registry", registry, *args]) == 2, args
        assert words in capsys.readouterr().err, args
    assert not os.path.exists(registry)
    # Following the suggestion registers it.
    assert main(["register", "adam", "--registry", registry, "--from-checkpoint", sibling]) == 0
    assert os.path.exists(registry)


def test_fake_gcs_server_passes_the_check_and_a_missing_bucket_is_named(fake_gcs_fs, monkeypatch):  # noqa: F811
    """The Go fake-gcs-server answers like GCS (JSON errors); point STORAGE_EMULATOR_HOST at it."""
    from pipeline.cli import UsageError
    from pipeline.preflight import check_access

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_fs._endpoint)
    fake_gcs_fs.mkdir("preflight-bucket")
    fake_gcs_fs.pipe_file("preflight-bucket/run/ckpt-1.index", b"x")
    check_access([("ROOT", "gs://preflight-bucket/run"), ("--report-dir", "gs://preflight-bucket/reports")])
    with pytest.raises(UsageError, match="bucket missing-bucket-h8 not found"):
        check_access([("ROOT", "gs://missing-bucket-h8/run")])
