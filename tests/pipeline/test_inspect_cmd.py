"""`ckpt-rescue inspect` on real checkpoints (healthy and orphaned) and on the wrong paths people pass."""

import glob
import json
import os
import subprocess
import sys
import tarfile

import pytest
from repo_paths import REPO

from pipeline.cli import main
from samples import FAMILY_NAMES

pytestmark = pytest.mark.tf

REPO_ROOT = str(REPO)


def run_inspect(capsys, *args) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tensorflow_keys(prefix: str) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {key: (dtypes[key].name, shapes[key]) for key in shapes}


def first_bytes_hex(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(16).hex(" ")


def orphan(family) -> str:
    for path in glob.glob(family.prefix + ".index"):
        os.remove(path)
    return family.prefix


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_healthy_checkpoint_lists_every_tensor(name, pristine_family, capsys):
    prefix = pristine_family(name).prefix
    expected = tensorflow_keys(prefix)
    code, out, err = run_inspect(capsys, prefix)
    assert (code, err) == (0, "")
    assert "healthy" in out.splitlines()[0]
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ") and not line.startswith("    ")}
    assert set(expected) <= listed

    code, out, _ = run_inspect(capsys, "--json", prefix)
    report = json.loads(out)
    assert code == 0 and report["kind"] == "healthy" and report["problems"] == []
    assert {t["key"]: (t["dtype"], t["shape"]) for t in report["tensors"]} == expected
    assert report["num_shards"] == len(glob.glob(prefix + ".data-*"))
    # Every data byte belongs to exactly one tensor or slice: the sizes add up to the files.
    stored = sum(t["size"] for t in report["tensors"])
    assert stored == sum(os.path.getsize(p) for p in glob.glob(prefix + ".data-*"))


@pytest.mark.parametrize("name", ["sharded", "tf1_saver"])
def test_slices_are_shown_under_their_full_tensor(name, pristine_family, capsys):
    prefix = pristine_family(name).prefix
    _, out, _ = run_inspect(capsys, "--json", prefix)
    partitioned = [t for t in json.loads(out)["tensors"] if t["slices"]]
    assert len(partitioned) == 1
    (tensor,) = partitioned
    assert tensor["shard"] is None and len(tensor["slices"]) >= 3
    _, text, _ = run_inspect(capsys, prefix)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [tensor["key"]])
    assert all("slice [" in line for line in lines[start + 1:start + 1 + len(tensor["slices"])])


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_orphan_output_names_every_key(name, family_copy, pristine_family, capsys):
    expected = tensorflow_keys(pristine_family(name).prefix)
    prefix = orphan(family_copy(name))
    code, out, err = run_inspect(capsys, prefix)
    assert (code, err) == (1, "")
    assert "ORPHAN" in out.splitlines()[0]
    listed = {line.strip() for line in out.splitlines()}
    assert set(expected) - {"_CHECKPOINTABLE_OBJECT_GRAPH"} <= listed
    if name == "tf1_saver":
        assert "no object graph (TF1 Saver checkpoint, or not a TensorFlow data file)" in out
        assert ".meta says its Saver wrote" in out

    code, out, _ = run_inspect(capsys, "--json", prefix)
    report = json.loads(out)
    assert report["kind"] == "orphan"
    assert [d["size"] for d in report["data_files"]] == [os.path.getsize(p)
                                                       for p in sorted(glob.glob(prefix + ".data-*"))]
    if name == "tf1_saver":
        assert report["object_graph"] is None
        assert report["meta_keys"] == sorted(expected)   # a TF1 Saver writes in sorted order
    else:
        graph = report["object_graph"]
        assert graph["nodes"] > 1
        assert graph["offset"] + graph["size"] == os.path.getsize(graph["data_file"])
        assert set(graph["keys"]) == set(expected) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_python_dash_m_pipeline_inspect_in_a_fresh_process(pristine_family):
    prefix = pristine_family("mixed_dtypes").prefix
    result = subprocess.run([sys.executable, "-m", "pipeline", "inspect", "--json", prefix], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(tensorflow_keys(prefix)) == {t["key"] for t in report["tensors"]}
    assert {t["dtype"] for t in report["tensors"]} >= {"bfloat16", "float16", "int8", "uint8", "bool", "complex64",
                                                      "float64", "int64", "string"}


# --- wrong paths: a diagnosis, exit 2, never a traceback ------------------------------------------

def assert_diagnosis(capsys, path, *phrases, shows_bytes_of=None):
    code, out, err = run_inspect(capsys, path)
    assert code == 2
    assert out == "" and "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    if shows_bytes_of:
        assert f"first bytes {first_bytes_hex(shows_bytes_of)}" in err
    return err


def test_data_file_given_as_prefix(pristine_family, capsys):
    prefix = pristine_family("keras3_adam").prefix
    data = prefix + ".data-00000-of-00001"
    assert_diagnosis(capsys, data, f"you passed the data file; the prefix is {prefix}", data, shows_bytes_of=data)


def test_index_file_given_as_prefix(pristine_family, capsys):
    prefix = pristine_family("tf_keras_weights").prefix
    assert_diagnosis(capsys, prefix + ".index", f"you passed the index file; the prefix is {prefix}",
                     shows_bytes_of=prefix + ".index")


def test_state_file_given_as_prefix(pristine_family, capsys):
    """A state file is a finding, not a usage error (an audit's record offers this command): exit 0 and
    what it resolves to on stdout when its latest checkpoint exists."""
    family = pristine_family("keras3_adam")
    state = os.path.join(os.path.dirname(family.prefix), "checkpoint")
    code, out, err = run_inspect(capsys, state)
    assert code == 0 and err == ""
    assert "`checkpoint` state file" in out and f"the latest prefix it names is {family.prefix}" in out
    assert f"first bytes {first_bytes_hex(state)}" in out
    assert all(sibling in out for sibling in family.siblings)


def test_a_dangling_state_file_needs_attention_not_a_usage_error(family_copy, capsys):
    family = family_copy("keras3_adam")
    state = os.path.join(os.path.dirname(family.prefix), "checkpoint")
    for name in os.listdir(os.path.dirname(family.prefix)):
        if name.startswith(os.path.basename(family.prefix) + "."):
            os.remove(os.path.join(os.path.dirname(family.prefix), name))
    code, out, err = run_inspect(capsys, state)
    assert code == 1 and err == "" and "Traceback" not in out
    assert f"the latest prefix it names, {family.prefix}, does not exist" in out
    assert f"{family.prefix}  (does not exist" in out and all(sibling in out for sibling in family.siblings)


def test_unparsable_state_file_given_as_prefix(tmp_path, capsys):
    state = tmp_path / "checkpoint"
    state.write_text('model_checkpoint_path: "ckpt-3')
    code, out, err = run_inspect(capsys, str(state))
    assert code == 1 and err == ""
    for phrase in ("`checkpoint` state file", "not a CheckpointState text proto", "TensorFlow ignores it",
                   f"first bytes {first_bytes_hex(str(state))}"):
        assert phrase in out, (phrase, out)


def test_tar_given_as_prefix(pristine_family, tmp_path, capsys):
    family = pristine_family("mixed_dtypes")
    archive = str(tmp_path / "run.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(os.path.dirname(family.prefix), arcname="run")
    assert_diagnosis(capsys, archive, "you passed an archive", f"run/{os.path.basename(family.prefix)}",
                     shows_bytes_of=archive)


LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 973\n")


def test_git_lfs_pointer_instead_of_the_index(family_copy, capsys):
    prefix = family_copy("keras3_adam").prefix
    with open(prefix + ".index", "w") as f:
        f.write(LFS_POINTER)
    assert_diagnosis(capsys, prefix, "git-lfs pointer", prefix + ".index", shows_bytes_of=prefix + ".index")
    assert_diagnosis(capsys, prefix + ".index", "git-lfs pointer", shows_bytes_of=prefix + ".index")


def test_git_lfs_pointer_instead_of_the_data(family_copy, capsys):
    prefix = orphan(family_copy("mixed_dtypes"))
    data = prefix + ".data-00000-of-00001"
    with open(data, "w") as f:
        f.write(LFS_POINTER)
    assert_diagnosis(capsys, prefix, "git-lfs pointer", data, "git lfs pull", shows_bytes_of=data)


def test_missing_prefix_lists_the_nearest(pristine_family, capsys):
    family = pristine_family("keras3_adam")
    directory = os.path.dirname(family.prefix)
    err = assert_diagnosis(capsys, os.path.join(directory, "ckpt-4"), "no checkpoint with prefix", "nearest")
    assert all(p in err for p in [family.prefix, *family.siblings])
    err = assert_diagnosis(capsys, os.path.join(directory, "ckpt"), "nearest")   # Checkpoint.save's own argument
    assert family.prefix in err


def test_missing_directory(tmp_path, capsys):
    assert_diagnosis(capsys, str(tmp_path / "nowhere" / "ckpt-1"), "no such directory")


def test_directory_lists_its_prefixes(pristine_family, capsys):
    family = pristine_family("savedmodel")
    err = assert_diagnosis(capsys, os.path.dirname(family.savedmodel_dir), "you passed a directory")
    assert family.prefix in err


def test_other_file_gets_its_first_bytes_shown(tmp_path, capsys):
    weights = tmp_path / "model.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert_diagnosis(capsys, str(weights), "HDF5", shows_bytes_of=str(weights))


# --- damage that is not a wrong path: exit 1 ------------------------------------------------------

def test_unreadable_index_reports_the_readers_words(family_copy, capsys):
    prefix = family_copy("keras_app").prefix
    with open(prefix + ".index", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, out, _ = run_inspect(capsys, prefix)
    assert code == 1 and "block checksum mismatch" in out


def test_truncated_data_file_is_a_problem(family_copy, capsys):
    prefix = family_copy("mixed_dtypes").prefix
    data = prefix + ".data-00000-of-00001"
    os.truncate(data, os.path.getsize(data) - 10)
    code, out, _ = run_inspect(capsys, prefix)
    assert code == 1 and "truncated" in out


def test_remote_filesystems_work_too(pristine_family, capsys):
    import fsspec

    family = pristine_family("sharded")
    memory = fsspec.filesystem("memory")
    remote = f"/inspect-test-{os.getpid()}/run"
    for path in glob.glob(family.prefix + "*"):
        if not path.endswith(".index"):
            memory.pipe_file(f"{remote}/{os.path.basename(path)}", open(path, "rb").read())
    code, out, _ = run_inspect(capsys, "--json", f"memory://{remote}/{os.path.basename(family.prefix)}")
    report = json.loads(out)
    assert code == 1 and report["kind"] == "orphan"
    assert report["prefix"].startswith("memory://")
    assert len(report["data_files"]) == 5 and report["object_graph"]["nodes"] > 1


def test_inspect_counts_tensors_as_the_audit_and_the_page_do(family_copy, tmp_path, capsys):
    """A partitioned variable is one tensor of several slices: inspect says both, and the stored count is
    the one the audit's evidence and report.html give for the same checkpoint once its index is rebuilt."""
    from source_helpers import orphan

    from recovery.report.readback import read_records, read_summary

    family = family_copy("tf1_saver")          # 8 tensors (3 of them empty); `embedding` in 3 slices
    code, out, _ = run_inspect(capsys, family.prefix)
    assert code == 0
    assert ("8 tensor(s), 1 of them partitioned into 3 slices: 10 stored tensors (as an audit counts them), "
            "11 index entries besides the header:") in out.splitlines()
    orphan(family.prefix)
    report = str(tmp_path / "report")
    assert main(["audit", os.path.dirname(family.prefix), "--report-dir", report, "--min-age", "0"]) in (0, 1)
    capsys.readouterr()
    record = next(r for r in read_records(report) if r.prefix == family.prefix)
    assert record.status == "rebuilt" and record.evidence["reference_total"] == 10
    assert any(c.startswith("index reads back: 11 entries besides the header (10 stored tensors, 1 partitioned")
               for c in record.checks), record.checks
    page = open(os.path.join(report, "report.html")).read()
    assert '<td class="num" data-label="tensors">10</td>' in page
    assert read_summary(report)["bytes_scanned"] == sum(r.bytes_scanned for r in read_records(report)) > 0
