"""`ckpt-rescue rebuild` as a user runs it: what it writes, what it refuses, its exit codes."""

import os
import subprocess
import sys

from source_helpers import orphan

from pipeline.cli import main
from tfbundle import index_filename


def test_rebuild_writes_the_missing_index_in_place(family_copy, capsys):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    assert main(["rebuild", family.prefix]) == 0
    out = capsys.readouterr().out
    assert "from sibling ckpt-2" in out
    assert "TensorFlow" in out and "parsed the rebuilt index" in out
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == original
    # Re-running is idempotent: the index is there and healthy, nothing to do.
    assert main(["rebuild", family.prefix]) == 0
    assert "nothing to rebuild" in capsys.readouterr().out


def test_output_writes_elsewhere_and_never_overwrites(family_copy, tmp_path, capsys):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    target = tmp_path / "rebuilt.index"
    assert main(["rebuild", family.prefix, "--output", str(target)]) == 0
    assert target.read_bytes() == original
    assert not os.path.exists(index_filename(family.prefix))
    target.write_bytes(b"mine")
    capsys.readouterr()
    assert main(["rebuild", family.prefix, "--output", str(target)]) == 2   # found before any work
    assert target.read_bytes() == b"mine"
    assert "already exists and is never overwritten" in capsys.readouterr().err


def test_a_damaged_index_is_never_overwritten(family_copy, capsys):
    family = family_copy("keras3_adam")
    with open(index_filename(family.prefix), "r+b") as f:
        f.truncate(20)
    assert main(["rebuild", family.prefix]) == 1   # a finding for a person, not a usage error
    err = capsys.readouterr().err
    assert "will not be overwritten" in err and "--output" in err
    assert os.path.getsize(index_filename(family.prefix)) == 20


def test_refusal_exits_1_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "ckpt-3.data-00000-of-00001").write_bytes(os.urandom(500))
    (tmp_path / "empty.yaml").write_text("architectures: {}\n")
    before = sorted(os.listdir(tmp_path))
    assert main(["rebuild", str(tmp_path / "ckpt-3"), "--registry", str(tmp_path / "empty.yaml")]) == 1
    assert "no source of truth" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before


def test_rehearsal_proves_a_healthy_checkpoint_recoverable(family_copy, capsys):
    family = family_copy("keras3_adam")
    with open(index_filename(family.prefix), "rb") as f:
        before = f.read()
    assert main(["rebuild", "--rehearse", family.prefix]) == 0
    assert "byte-identical" in capsys.readouterr().out
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == before


def test_rehearsal_of_a_lone_checkpoint_is_refused_with_the_reason(family_copy, capsys, tmp_path):
    """No sibling, no registry entry: nothing could rebuild it, and the user is told so."""
    family = family_copy("keras_app")
    empty = tmp_path / "empty.yaml"
    empty.write_text("architectures: {}\n")
    assert main(["rebuild", "--rehearse", family.prefix, "--registry", str(empty)]) == 1
    out = capsys.readouterr().out
    assert "refused" in out and "no source of truth" in out
    assert main(["rebuild", "--rehearse", family.prefix, "--registry", str(tmp_path / "missing.yaml")]) == 2


def test_usage_errors_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline", "rebuild"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "prefix" in result.stderr
    (tmp_path / "orphan-1.data-00000-of-00001").write_bytes(os.urandom(100))
    result = subprocess.run([sys.executable, "-m", "pipeline", "rebuild", "--rehearse", str(tmp_path / "orphan-1")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "needs a healthy checkpoint" in result.stderr


def test_tf_check_full_reads_every_tensor_and_off_skips_it(family_copy, capsys):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    assert main(["rebuild", family.prefix, "--tf-check", "full", "--output", family.prefix + ".full.index"]) == 0
    assert "read all" in capsys.readouterr().out
    assert main(["rebuild", family.prefix, "--no-tf-check", "--output", family.prefix + ".off.index"]) == 0
    out = capsys.readouterr().out
    assert "parsed the rebuilt index" not in out and "read all" not in out
