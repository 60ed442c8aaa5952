"""Checkpoints saved under a prefix that ends in "/" (TF1 `saver.save(sess, "model_dir/")` writes
`model_dir/.index`, `model_dir/.data-00000-of-00001`, `model_dir/.meta`, as published pretrained
models ship). Every command takes them as typed, with the slash; normal prefixes keep working.
The `tf1_dir_prefix` family is written by TensorFlow in the session."""

import contextlib
import io
import os
import shutil

import pytest
from source_helpers import orphan
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server, upload_tree  # noqa: F401

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.inspection import Healthy, Orphan, inspect_path
from recovery.report.readback import read_records
from recovery.writeout import staged_path
from tfbundle import index_filename

pytestmark = pytest.mark.tf


def run_cli(*argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def dir_prefix(family_copy):
    family = family_copy("tf1_dir_prefix")
    assert family.prefix.endswith("/model_dir/") and os.path.exists(family.prefix + ".data-00000-of-00001")
    return family.prefix


def test_split_prefix_keeps_the_slash_on_every_filesystem():
    for url, path in (("runs/model_dir/", os.path.abspath("runs/model_dir") + "/"), ("memory://b/model_dir/", None),
                      ("s3://b/model_dir/", "b/model_dir/"), ("gs://b/model_dir/", "b/model_dir/"),
                      ("runs/ckpt-1", os.path.abspath("runs/ckpt-1"))):
        fs, prefix = storage.split_prefix(url)
        assert prefix.endswith("/") == url.endswith("/"), url
        if path:
            assert prefix == path
        assert storage.prefix_directory(prefix) == (prefix.rstrip("/") if url.endswith("/") else storage.parent(prefix))
    assert storage.prefix_name("/a/model_dir/") == "model_dir/" and storage.prefix_name("/a/ckpt-1") == "ckpt-1"


def test_rebuild_of_an_orphan_is_tensorflows_index_byte_for_byte(dir_prefix):
    original = orphan(dir_prefix)
    code, out, err = run_cli("rebuild", dir_prefix)
    assert code == 0, err
    assert read(dir_prefix + ".index") == original
    assert "from TF1 graph model_dir/.meta" in out and "TensorFlow" in out


def test_rehearse_is_byte_identical(dir_prefix):
    code, out, err = run_cli("rebuild", "--rehearse", dir_prefix)
    assert code == 0, err
    assert f"rehearsal of {dir_prefix}: byte-identical" in out


def test_template_and_output_and_register_take_dir_prefixes(dir_prefix, tmp_path):
    original = read(dir_prefix + ".index")
    other = str(tmp_path / "other" / "model_dir") + "/"
    shutil.copytree(dir_prefix, other)
    os.remove(other + ".index")
    os.remove(other + ".meta")     # only the template can say what these bytes are

    out_path = str(tmp_path / "from-template.index")
    code, out, err = run_cli("rebuild", other, "--template", dir_prefix, "--output", out_path)
    assert code == 0, err
    assert read(out_path) == original and f"from template {dir_prefix}" in out

    registry = str(tmp_path / "registry" / "architectures.yaml")
    code, out, err = run_cli("register", "dirmodel", "--from-checkpoint", dir_prefix, "--registry", registry)
    assert code == 0, err
    code, out, err = run_cli("rebuild", other, "--registry", registry, "--arch", "dirmodel")
    assert code == 0, err
    assert read(other + ".index") == original


def test_inspect_healthy_orphan_and_the_directory_itself(dir_prefix):
    healthy = inspect_path(dir_prefix)
    assert isinstance(healthy, Healthy) and healthy.prefix == dir_prefix and healthy.exit_code == 0
    assert [t.key for t in healthy.tensors] == ["conv/bias", "conv/kernel", "logits/kernel"]

    # The directory itself names the same checkpoint: it holds dir/.index, so it is the prefix "dir/".
    bare = inspect_path(dir_prefix.rstrip("/"))
    assert isinstance(bare, Healthy) and bare.prefix == dir_prefix

    orphan(dir_prefix)
    found = inspect_path(dir_prefix)
    assert isinstance(found, Orphan) and found.prefix == dir_prefix
    assert found.meta_graph == dir_prefix + ".meta" and found.meta_keys == ["conv/bias", "conv/kernel", "logits/kernel"]


def test_staged_path_mirrors_the_prefix():
    assert staged_path("/reports", "/data/run/model_dir/") == "/reports/rebuilt/local/data/run/model_dir%2F.index"
    assert staged_path("/reports", "/data/run/model_dir") == "/reports/rebuilt/local/data/run/model_dir.index"


def test_audit_finds_verifies_rehearses_and_rebuilds_them_beside_a_normal_prefix(family_copy, tmp_path):
    root = tmp_path / "root"
    healthy_family, orphan_family, normal = (family_copy("tf1_dir_prefix"), family_copy("tf1_dir_prefix"),
                                             family_copy("tf1_saver"))
    moved = {}
    for name, family in (("healthy", healthy_family), ("orphan", orphan_family), ("normal", normal)):
        run_dir = os.path.dirname(family.prefix.rstrip("/"))
        shutil.move(run_dir, root / name)
        moved[name] = str(root / name) + family.prefix[len(run_dir):]
        state = os.path.join(storage.prefix_directory(moved[name]), "checkpoint")   # TF1 paths are absolute
        with open(state) as f:
            text = f.read()
        with open(state, "w") as f:
            f.write(text.replace(run_dir, str(root / name)))
    originals = {name: orphan(moved[name]) for name in ("orphan", "normal")}

    report = str(tmp_path / "report")
    code, out, err = run_cli("audit", str(root), "--min-age", "0",
                             "--report-dir", report, "--verify-data", "--rehearse")
    records = {r.prefix: r for r in read_records(report)}
    healthy = records[moved["healthy"]]
    assert healthy.status == "healthy", healthy.reason
    # the nightly memory dates the line (recovery/memory/rotation.py: when it was last verified)
    assert any(c.startswith("every tensor's bytes match the CRC in its index (--verify-data") for c in healthy.checks)
    assert healthy.rehearsal == "byte-identical"
    for name in ("orphan", "normal"):
        rebuilt = records[moved[name]]
        assert rebuilt.status == "rebuilt", rebuilt.reason
        assert read(rebuilt.index_path) == originals[name]
    assert records[moved["orphan"]].index_path.endswith("/orphan/model_dir%2F.index")
    state = records[moved["healthy"] + "checkpoint"]
    assert state.status == "healthy" and "exist" in state.reason, state.reason
    # The orphan's state file names model_dir/ as latest: latest_checkpoint() is None until promotion.
    state = records[moved["orphan"] + "checkpoint"]
    assert state.status == "incomplete" and "latest_checkpoint() returns None" in state.reason, state.reason
    assert not os.path.exists(index_filename(moved["orphan"]))

    code, out, err = run_cli("audit", str(root), "--min-age", "0",
                             "--report-dir", str(tmp_path / "report-2"), "--in-place")
    assert read(index_filename(moved["orphan"])) == originals["orphan"]
    assert read(index_filename(moved["normal"])) == originals["normal"]


@pytest.mark.parametrize("store", ["gcs", "s3"])
def test_rebuild_and_inspect_on_object_stores(dir_prefix, request, store):
    bucket = request.getfixturevalue(f"{store}_bucket")
    original = orphan(dir_prefix)
    upload_tree(os.path.dirname(dir_prefix.rstrip("/")), f"{bucket}/run")
    url = f"{bucket}/run/model_dir/"
    found = inspect_path(url)
    assert isinstance(found, Orphan) and found.prefix == url, found
    code, out, err = run_cli("rebuild", url, "--no-tf-check")
    assert code == 0, err
    fs, prefix = storage.split_prefix(url)
    assert storage.read_bytes(fs, prefix + ".index") == original
    assert isinstance(inspect_path(url), Healthy)
    code, out, err = run_cli("rebuild", "--rehearse", url)
    assert code == 0 and "byte-identical" in out, out + err


def test_rebuild_of_the_directory_itself_rebuilds_the_nameless_prefix(family_copy, capsys):
    """`rebuild model_dir` (no slash) means the checkpoint model_dir/ that directory holds, as inspect says."""
    from pipeline.cli import main

    family = family_copy("tf1_dir_prefix")
    original = orphan(family.prefix)
    assert main(["rebuild", family.prefix.rstrip("/"), "--no-tf-check"]) == 0, capsys.readouterr().err
    with open(family.prefix + ".index", "rb") as f:
        assert f.read() == original
