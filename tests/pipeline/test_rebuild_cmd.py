"""`ckpt-rescue rebuild` as a user runs it: what it writes, what it refuses, its exit codes."""

import os
import random
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
    (tmp_path / "ckpt-3.data-00000-of-00001").write_bytes(random.Random(1).randbytes(500))
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
    (tmp_path / "orphan-1.data-00000-of-00001").write_bytes(random.Random(2).randbytes(100))
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


# --- --vault -------------------------------------------------------------------------------------

VAULTED_ON = 1764901800.0    # 2025-12-05 02:30 UTC


def _vaulted(family, tmp_path) -> str:
    """A vault holding the family's healthy indexes, as a nightly audit would have left it."""
    from recovery.vault import ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint

    url = str(tmp_path / "vault")
    vault = Vault.open(url, create=True)
    for prefix in [family.prefix, *family.siblings]:
        keep_checkpoint(vault, prefix, ORIGIN_SEEN_HEALTHY, VAULTED_ON, "night-1")
    return url


def test_rebuild_with_the_vault_brings_back_a_lone_checkpoints_index(family_copy, tmp_path, capsys):
    """No sibling, no registry entry: only the vault knows this checkpoint, and it gives it back whole."""
    family = family_copy("keras_app")
    vault = _vaulted(family, tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("architectures: {}\n")
    original = orphan(family.prefix)
    assert main(["rebuild", family.prefix, "--registry", str(empty)]) == 1
    capsys.readouterr()
    assert main(["rebuild", family.prefix, "--registry", str(empty), "--vault", vault]) == 0
    out = capsys.readouterr().out
    assert "from vaulted index of ckpt-1 as it was on 2025-12-05 02:30 UTC" in out
    assert "tensors confirmed by the index as it was on 2025-12-05 02:30 UTC: the rebuilt index is byte-identical" \
        in out
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == original


def test_rebuild_with_the_vault_over_damaged_data_writes_nothing(family_copy, tmp_path, capsys):
    from tfbundle import dtype, read_index

    family = family_copy("keras3_adam")
    vault = _vaulted(family, tmp_path)
    original = orphan(family.prefix)
    data_file = family.prefix + ".data-00000-of-00001"
    key, entry = max(((k, e) for k, e in read_index(original).data_entries() if dtype(e.dtype).name == "float32"),
                     key=lambda item: item[1].size)
    stat = os.stat(data_file)
    with open(data_file, "r+b") as f:       # bit rot: one bit, in place, the file's times kept
        f.seek(entry.offset + 4)
        byte = f.read(1)[0]
        f.seek(entry.offset + 4)
        f.write(bytes([byte ^ 0x01]))
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(["rebuild", family.prefix, "--vault", vault]) == 1
    err = capsys.readouterr().err
    assert "the data changed after the index of 2025-12-05 02:30 UTC was vaulted" in err
    assert key.decode() in err and f"changed after the index of 2025-12-05 02:30 UTC was vaulted: {key.decode()}" in err
    assert not os.path.exists(index_filename(family.prefix))


def test_a_rehearsal_with_the_vault_ignores_the_checkpoints_own_copy(family_copy, tmp_path, capsys):
    family = family_copy("keras_app")
    vault = _vaulted(family, tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("architectures: {}\n")
    assert main(["rebuild", "--rehearse", family.prefix, "--registry", str(empty), "--vault", vault]) == 1
    out = capsys.readouterr().out
    assert "refused" in out and "no source of truth" in out
    assert "the vault's copies of this prefix's index were ignored" in out


def test_a_vault_url_that_is_not_a_vault_is_a_usage_error(family_copy, tmp_path, capsys):
    import json

    family = family_copy("keras3_adam")
    orphan(family.prefix)
    run = os.path.dirname(family.prefix)
    before = sorted(os.listdir(run))
    assert main(["rebuild", family.prefix, "--vault", run]) == 2
    assert f"--vault {run} is not a vault" in capsys.readouterr().err
    assert main(["rebuild", family.prefix, "--vault", str(tmp_path / "nowhere")]) == 2
    assert "no vault there" in capsys.readouterr().err
    other = tmp_path / "other-tool"
    other.mkdir()
    (other / "ckpt-rescue-vault.json").write_text(json.dumps({"format": "someone-else/2"}))
    assert main(["rebuild", family.prefix, "--vault", str(other)]) == 2
    assert "says format 'someone-else/2'" in capsys.readouterr().err
    assert sorted(os.listdir(run)) == before and not (tmp_path / "nowhere").exists()


def test_rebuild_with_the_vault_as_a_user_runs_it(family_copy, tmp_path):
    """The installed command, in its own process, from a vault an earlier run filled."""
    family = family_copy("tf1_saver")
    vault = _vaulted(family, tmp_path)
    original = orphan(family.prefix)
    result = subprocess.run([sys.executable, "-m", "pipeline", "rebuild", family.prefix, "--vault", vault,
                             "--no-tf-check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "10 of 10 tensors confirmed by the index as it was on 2025-12-05 02:30 UTC" in result.stdout   # 7 + 3 empty
    with open(index_filename(family.prefix), "rb") as f:
        assert f.read() == original
