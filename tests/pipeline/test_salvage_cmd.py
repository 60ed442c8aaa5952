"""`ckpt-rescue salvage` as a user runs it: what it prints and writes (locally, on GCS and on S3, always
create-only), what it refuses, and its exit codes. TensorFlow restores every salvaged checkpoint."""

import os

import pytest
from salvage_checkpoints import (
    check_keras,
    data_path,
    keys_touching,
    offset_of,
    orphan,
    read_manifest,
    truncate,
)
from source_helpers import tree_digest
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server, snapshot, upload_tree  # noqa: F401

from pipeline.cli import main
from recovery import storage

pytestmark = pytest.mark.tf

TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"


def cut_orphan(run) -> tuple:
    """The latest checkpoint with its index lost and its upload stopped inside a trained kernel."""
    end = offset_of(run.latest, TRAINED) + 1000
    damaged = keys_touching(run.latest, 0, end)
    entries = orphan(run.latest)
    truncate(data_path(run.latest), end)
    return damaged, entries


def test_salvage_writes_a_new_checkpoint_and_says_what_is_lost(keras_run, run_copy, tmp_path, capsys):
    run = run_copy(keras_run)
    damaged, entries = cut_orphan(run)
    before = tree_digest(run.directory)
    out = str(tmp_path / "salvaged" / "ckpt-3")
    assert main(["salvage", run.latest, "--output", out]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"salvaged {run.latest} into {out}: 11 of 17 tensors, 64% of bytes"
    assert printed[1] == "  layout: sibling ckpt-2"
    assert "  proven 1 tensor(s): their CRCs equal the ones recorded before the damage (sibling ckpt-2)" in printed
    assert f"  lost {len(damaged)} tensor(s), 159272 bytes:" in printed
    assert any(line.startswith(f"    {TRAINED} float32[128, 256]: only 1000 of its 131072 bytes arrived")
               for line in printed)
    assert printed[-1].startswith(f"wrote {out}.data-00000-of-00001 (")
    restore = "  restore: tf.train.Checkpoint(model=model, optimizer=optimizer).read("
    assert any(line.startswith(restore) for line in printed)
    assert tree_digest(run.directory) == before      # the original is never touched
    check_keras(run, out, read_manifest(out), damaged, entries)


def test_an_existing_output_is_never_overwritten(keras_run, run_copy, tmp_path, capsys):
    run = run_copy(keras_run)
    cut_orphan(run)
    out = tmp_path / "salvaged" / "ckpt-3"
    out.parent.mkdir()
    (tmp_path / "salvaged" / "ckpt-3.index").write_bytes(b"mine")
    assert main(["salvage", run.latest, "--output", str(out)]) == 2    # found before any data is read
    assert "ckpt-3.index already exist(s) and is never overwritten" in capsys.readouterr().err
    assert sorted(os.listdir(out.parent)) == ["ckpt-3.index"]
    assert (tmp_path / "salvaged" / "ckpt-3.index").read_bytes() == b"mine"


@pytest.mark.parametrize("output", ["itself", "not a checkpoint"])
def test_usage_errors_exit_2_before_any_work(keras_run, run_copy, tmp_path, capsys, output):
    run = run_copy(keras_run)
    cut_orphan(run)
    if output == "itself":
        assert main(["salvage", run.latest, "--output", run.latest]) == 2
        assert "--output must be a new prefix" in capsys.readouterr().err
    else:
        assert main(["salvage", run.latest + ".data-00000-of-00001", "--output", str(tmp_path / "new")]) == 2
        err = capsys.readouterr().err
        assert f"try: ckpt-rescue salvage {run.latest} --output {tmp_path / 'new'}" in err
    assert not os.path.exists(tmp_path / "new.index")


def test_refusal_exits_1_and_writes_nothing(keras_run, run_copy, tmp_path, capsys):
    run = run_copy(keras_run)
    truncate(data_path(run.latest), 4)
    out = tmp_path / "salvaged" / "ckpt-3"
    assert main(["salvage", run.latest, "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refused: {run.latest}: nothing provable:") and "nothing written" in err
    assert not out.parent.exists()


def test_include_unconfirmed_is_said_and_kept(keras_run, run_copy, tmp_path, capsys):
    run = run_copy(keras_run)
    slot = "optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE"
    start = (offset_of(run.latest, slot) // 4096 + 2) * 4096
    damaged, entries = cut_orphan(run)
    with open(data_path(run.latest), "r+b") as f:
        f.seek(start)
        f.write(bytes(4096))
    out = str(tmp_path / "salvaged" / "ckpt-3")
    assert main(["salvage", run.latest, "--output", out, "--include-unconfirmed"]) == 0
    printed = capsys.readouterr().out
    assert "unconfirmed 6 tensor(s), included (--include-unconfirmed)" in printed
    doc = read_manifest(out)
    assert doc["summary"]["unconfirmed_included"] is True
    check_keras(run, out, doc, damaged | {slot}, entries)


def _restore_from_bucket(run, bucket_out: str, local_out: str, damaged: set, entries: dict) -> None:
    fs, path = storage.url_to_fs(bucket_out)
    for suffix in (".index", ".data-00000-of-00001", ".salvage.json"):
        with open(local_out + suffix, "wb") as f:
            f.write(storage.read_bytes(fs, path + suffix))
    check_keras(run, local_out, read_manifest(local_out), damaged, entries)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["gcs", "s3"])
def test_salvage_in_a_bucket_is_create_only(keras_run, run_copy, tmp_path, capsys, store, request):
    bucket = request.getfixturevalue(f"{store}_bucket")
    run = run_copy(keras_run)
    damaged, entries = cut_orphan(run)
    upload_tree(run.directory, f"{bucket}/run")
    before = snapshot(bucket)
    out = f"{bucket}/salvaged/ckpt-3"
    assert main(["salvage", f"{bucket}/run/ckpt-3", "--output", out]) == 0
    assert capsys.readouterr().out.startswith(f"salvaged {bucket}/run/ckpt-3 into {out}: 11 of 17 tensors")
    after = snapshot(bucket)
    assert {k: v for k, v in after.items() if not k.startswith("salvaged/")} == before
    assert sorted(k for k in after if k.startswith("salvaged/")) == [
        "salvaged/ckpt-3.data-00000-of-00001", "salvaged/ckpt-3.index", "salvaged/ckpt-3.salvage.json"]
    assert main(["salvage", f"{bucket}/run/ckpt-3", "--output", out]) == 2     # a second run writes nothing
    assert "already exist(s) and is never overwritten" in capsys.readouterr().err
    assert snapshot(bucket) == after
    os.makedirs(tmp_path / "local")
    _restore_from_bucket(run, out, str(tmp_path / "local" / "ckpt-3"), damaged, entries)


def test_the_vault_proves_every_tensor_that_arrived(keras_run, run_copy, tmp_path, capsys):
    from recovery.vault import ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint

    run = run_copy(keras_run)
    vault = str(tmp_path / "vault")
    keep_checkpoint(Vault.open(vault, create=True), run.latest, ORIGIN_SEEN_HEALTHY, 1764901800.0, "night-1")
    damaged, entries = cut_orphan(run)
    out = str(tmp_path / "salvaged" / "ckpt-3")
    assert main(["salvage", run.latest, "--output", out, "--vault", vault]) == 0
    printed = capsys.readouterr().out.splitlines()
    label = "vaulted index of ckpt-3 as it was on 2025-12-05 02:30 UTC"
    assert printed[0] == f"salvaged {run.latest} into {out}: 11 of 17 tensors, 64% of bytes"
    assert printed[1] == f"  layout: {label}"
    assert f"  proven 11 tensor(s): their CRCs equal the ones recorded before the damage ({label})" in printed
    assert not any(line.startswith("  placed ") for line in printed)
    check_keras(run, out, read_manifest(out), damaged, entries)


def test_a_vault_that_is_not_one_is_a_usage_error(keras_run, run_copy, tmp_path, capsys):
    run = run_copy(keras_run)
    cut_orphan(run)
    elsewhere = tmp_path / "not-a-vault"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    out = tmp_path / "salvaged" / "ckpt-3"
    assert main(["salvage", run.latest, "--output", str(out), "--vault", str(elsewhere)]) == 2
    assert f"--vault {elsewhere} is not a vault" in capsys.readouterr().err
    assert not out.parent.exists()


def test_with_no_source_the_hint_says_which_registry_is_in_use(keras_run, run_copy, tmp_path, monkeypatch, capsys):
    run = run_copy(keras_run)
    for prefix in run.prefixes[:2]:
        os.remove(prefix + ".index")
    cut_orphan(run)
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "salvaged" / "ckpt-3")
    assert main(["salvage", run.latest, "--output", out]) == 1
    err = capsys.readouterr().err
    assert "pass --registry FILE (FILE: a registry file of your choice; none is in use: looked for the default " \
           f"configs/architectures.yaml in {tmp_path})" in err
