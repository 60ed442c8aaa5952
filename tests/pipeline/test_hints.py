"""Every hint the tool prints is followed here, exactly as printed (placeholders filled in), and must work:
diagnoses' `try:` lines, the orphan's rebuild line, the no-source fixes of `rebuild` and of `audit`,
the commands in audit records, the registry and cloud-endpoint hints."""

import os
import random
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from repo_paths import REPO
from source_helpers import orphan
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server, upload_tree  # noqa: F401

from pipeline.cli import main
from recovery.report.readback import read_records

REPO_ROOT = str(REPO)
NOT_FOUND = ("no checkpoint with prefix", "no such directory")


def run(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def follow(capsys, command: str, **placeholders) -> tuple[int, str, str]:
    """Run a printed `ckpt-rescue ...` command line, placeholders (HEALTHY_PREFIX, NAME, FILE) filled in."""
    for name, value in placeholders.items():
        command = re.sub(rf"\b{name}\b", shlex.quote(value), command)
    argv = shlex.split(command)
    assert argv[0] == "ckpt-rescue", command
    assert not re.search(r"\b[A-Z][A-Z_]{3,}\b", " ".join(argv[1:])), f"unfilled placeholder in {command}"
    return run(capsys, argv[1:])


def try_line(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("try: ")]
    return line[len("try: "):]


def test_inspect_and_rebuild_diagnoses_suggest_commands_that_work(family_copy, capsys):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    directory = os.path.dirname(family.prefix)
    wrong_paths = [family.prefix + ".data-00000-of-00001", family.siblings[0] + ".index",
                   os.path.join(directory, "checkpoint"), os.path.join(directory, "ckpt-33")]
    for wrong in wrong_paths:
        code, out, err = run(capsys, ["inspect", wrong])
        if wrong.endswith("/checkpoint"):      # a state file is a finding (its latest exists: 0), not a usage error
            assert code == 0 and err == "", err
            err = out
        else:
            assert code == 2, err
        code, out, err = follow(capsys, try_line(err))
        assert code in (0, 1) and "checkpoint " in out, err   # healthy (0) or an orphan to rebuild (1)
    code, out, err = run(capsys, ["inspect", family.prefix])
    assert code == 1 and "ORPHAN" in out
    rebuild_line = [line for line in out.splitlines() if line.startswith("to rebuild the index: ")][0]
    code, _, err = run(capsys, ["rebuild", family.prefix + ".data-00000-of-00001"])
    assert code == 2 and try_line(err) == rebuild_line[len("to rebuild the index: "):]
    code, out, err = follow(capsys, try_line(err))
    assert code == 0, err
    with open(family.prefix + ".index", "rb") as f:
        assert f.read() == original


def test_a_state_file_naming_a_missing_checkpoint_suggests_nothing_missing(family_copy, capsys):
    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    for path in [family.prefix + ".index", family.prefix + ".data-00000-of-00001"]:
        os.remove(path)
    code, out, err = run(capsys, ["inspect", os.path.join(directory, "checkpoint")])
    assert code == 1 and err == "" and "does not exist" in out and "try:" not in out     # a finding, not a usage error
    assert f"{family.prefix}  (does not exist" in out and f"{family.siblings[0]}\n" in out


def test_rebuild_no_source_hints_work_when_followed(family_copy, tmp_path, monkeypatch, capsys):
    lone = family_copy("keras_app")
    original = orphan(lone.prefix)
    healthy = family_copy("keras_app")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)   # no configs/ here: no default registry
    code, _, err = run(capsys, ["rebuild", lone.prefix])
    assert code == 1 and "no source of truth" in err
    assert f"none was found (looked for the default {os.path.join('configs', 'architectures.yaml')} in " \
           f"{workdir})" in err
    hint = next(line for line in err.splitlines() if line.startswith("to fix:"))
    assert "--template HEALTHY_PREFIX" in hint

    # First fix: pass --template (to --output, so the second fix still has an orphan to work on).
    code, _, err = run(capsys, ["rebuild", lone.prefix, "--template", healthy.prefix,
                                "--output", str(tmp_path / "by-template.index")])
    assert code == 0, err
    assert (tmp_path / "by-template.index").read_bytes() == original

    # Second fix: the register command exactly as printed, then "run this rebuild again".
    register = re.search(r"`(ckpt-rescue register [^`]+)`", hint)[1]
    code, _, err = follow(capsys, register, NAME="app", HEALTHY_PREFIX=healthy.prefix)
    assert code == 0, err
    code, out, err = run(capsys, ["rebuild", lone.prefix])
    assert code == 0, err
    assert "registered `app`" in out
    with open(lone.prefix + ".index", "rb") as f:
        assert f.read() == original


def test_audit_hints_work_when_followed(family_copy, tmp_path, capsys):
    """The audit's own fix for an orphan nothing describes: `rebuild --template`, or register + re-audit."""
    lone = family_copy("keras_app")
    original = orphan(lone.prefix)
    healthy = family_copy("keras_app")            # elsewhere: not under the audited root
    adam = family_copy("keras3_adam")             # a second architecture for the registry
    audited = os.path.dirname(lone.prefix)       # family_copy gives each copy its own directory
    assert not any(os.path.dirname(other.prefix).startswith(audited) for other in (healthy, adam))
    prefix = lone.prefix
    noise = os.path.join(audited, "noise-1.data-00000-of-00001")
    with open(noise, "wb") as f:
        f.write(random.Random(1).randbytes(3000))
    noise = noise[: -len(".data-00000-of-00001")]
    with open(os.path.join(audited, "checkpoint"), "a") as f:
        f.write('all_model_checkpoint_paths: "ckpt-77"\n')   # names a checkpoint that does not exist

    code, _, _ = run(capsys, ["audit", audited, "--min-age", "0", "--report-dir", str(tmp_path / "reports-1")])
    assert code == 1
    records = {r.prefix: r for r in read_records(str(tmp_path / "reports-1"))}
    reason = records[prefix].reason
    assert "pass --template" not in reason      # the audit has no --template
    rebuild_hint = re.search(r"`(ckpt-rescue rebuild [^`]+)`", reason)[1]
    register_hint = re.search(r"`(ckpt-rescue register [^`]+)`", reason)[1]
    assert "re-run the audit with --registry FILE" in reason

    # Every command recorded for a person points at something inspect can find.
    state = records[os.path.join(audited, "checkpoint")]
    assert state.status == "incomplete" and state.command.startswith("ckpt-rescue inspect ")   # followed below
    assert sum(r.command.startswith("ckpt-rescue inspect") for r in records.values()) >= 3
    for record in records.values():
        if record.command.startswith("ckpt-rescue inspect"):
            code, out, err = follow(capsys, record.command)
            assert not any(words in out + err for words in NOT_FOUND), (record.prefix, err)
            assert code in (0, 1) or "state file" in err, err

    # Fix 1: register the model (and a second one), then re-run the audit with --registry FILE.
    registry = str(tmp_path / "registry" / "architectures.yaml")
    code, _, err = follow(capsys, register_hint, NAME="app", HEALTHY_PREFIX=healthy.prefix, FILE=registry)
    assert code == 0, err
    assert run(capsys, ["register", "adam", "--from-checkpoint", adam.prefix, "--registry", registry])[0] == 0
    run(capsys, ["audit", audited, "--min-age", "0",
                 "--report-dir", str(tmp_path / "reports-2"), "--registry", registry])
    records = {r.prefix: r for r in read_records(str(tmp_path / "reports-2"))}
    assert records[prefix].status == "rebuilt", records[prefix].reason
    # Random bytes are not "nearest" to any registered model.
    assert records[noise].status == "unrecoverable"
    assert "nearest" not in records[noise].reason and "none of the 2 registered" in records[noise].reason

    # Fix 2: the rebuild command exactly as the first audit printed it.
    code, _, err = follow(capsys, rebuild_hint, HEALTHY_PREFIX=healthy.prefix)
    assert code == 0, err
    with open(prefix + ".index", "rb") as f:
        assert f.read() == original


def test_arch_without_registry_hint_works(family_copy, tmp_path, monkeypatch, capsys):
    lone = family_copy("keras_app")
    original = orphan(lone.prefix)
    healthy = family_copy("keras_app")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, ["rebuild", lone.prefix, "--arch", "app"])
    assert code == 2 and "none was found" in err and str(tmp_path) in err and "pass --registry FILE" in err
    registry = str(tmp_path / "elsewhere" / "architectures.yaml")
    assert run(capsys, ["register", "app", "--from-checkpoint", healthy.prefix, "--registry", registry])[0] == 0
    code, _, err = run(capsys, ["rebuild", lone.prefix, "--arch", "app", "--registry", registry])
    assert code == 0, err
    with open(lone.prefix + ".index", "rb") as f:
        assert f.read() == original


@pytest.mark.slow
def test_cloud_endpoint_hints_work_when_followed(pristine_family, gcs_bucket, s3_bucket, tmp_path):  # noqa: F811
    """Without the emulator settings the check names them; set as the hint says, the same command works."""
    family = pristine_family("keras3_adam")
    bare = {k: v for k, v in os.environ.items()
            if k not in ("STORAGE_EMULATOR_HOST", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    bare.update(HOME=str(tmp_path), PYTHONPATH=REPO_ROOT)
    for bucket, settings in ((gcs_bucket, ("STORAGE_EMULATOR_HOST",)),
                             (s3_bucket, ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))):
        upload_tree(os.path.dirname(family.prefix), f"{bucket}/run")
        argv = [sys.executable, "-m", "pipeline", "inspect", f"{bucket}/run/{os.path.basename(family.prefix)}"]
        result = subprocess.run(argv, env=bare, capture_output=True, text=True, timeout=600)
        assert result.returncode == 2
        assert all(name in result.stderr for name in settings), result.stderr
        fixed = {**bare, **{name: os.environ[name] for name in settings}}
        result = subprocess.run(argv, env=fixed, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert "healthy" in result.stdout


def test_ambiguous_registry_hint_works_from_the_audit(pristine_family, tmp_path, capsys):
    """Two registered layouts fit a TF1 orphan's bytes and disagree on a key name: the audit (which has
    no --arch) names the rebuild command that chooses, and that command rebuilds TensorFlow's index."""
    import json

    source = pristine_family("tf1_saver").prefix
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = os.path.basename(source) + ".data-00000-of-00001"
    shutil.copy(source + ".data-00000-of-00001", run_dir / data)   # no index, no .meta, no sibling
    prefix = str(run_dir / os.path.basename(source))
    registry = tmp_path / "registry" / "architectures.yaml"
    assert main(["register", "a", "--from-checkpoint", source, "--registry", str(registry)]) == 0
    layout = json.loads((registry.parent / "layouts" / "a.json").read_text())
    layout["tensors"][0]["key"] += "_renamed"
    (registry.parent / "layouts" / "b.json").write_text(json.dumps(layout))
    with open(registry, "a") as f:
        f.write("  b:\n    layout: layouts/b.json\n")
    capsys.readouterr()

    assert main(["audit", str(run_dir), "--min-age", "0",
                 "--report-dir", str(tmp_path / "reports"), "--registry", str(registry)]) == 1
    (record,) = [r for r in read_records(str(tmp_path / "reports")) if r.prefix == prefix]
    assert "disagree" in record.reason and "pass --arch" not in record.reason
    command = re.search(r"`(ckpt-rescue rebuild [^`]+--registry FILE --arch a)`", record.reason)[1]
    code, _, err = follow(capsys, command, FILE=str(registry))
    assert code == 0, err
    with open(prefix + ".index", "rb") as rebuilt, open(source + ".index", "rb") as original:
        assert rebuilt.read() == original.read()
