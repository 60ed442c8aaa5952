"""--in-place, --verify-data, --rehearse and range splitting: indexes written beside their data only
where none exists, exactly once even when two audits race, and never over an unreadable one."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import repo_paths
from audit_trees import plant_tree
from command_helpers import run_printed
from source_helpers import tree_digest

from pipeline.cli import main as cli_main
from recovery.report.readback import read_records
from tfbundle import data_filename, is_slice_key, read_index

pytestmark = [pytest.mark.tf, pytest.mark.slow]
REPO = str(repo_paths.REPO)


@pytest.fixture(scope="module")
def planted(pristine_family, tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-inplace")
    return plant_tree(pristine_family, str(base / "tree"), str(base / "registry"))


def tf_reads_every_tensor(prefix: str) -> None:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)


def test_two_audits_at_once_leave_exactly_one_correct_index(planted, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(planted.root, tree)
    originals = {str(tree) + p[len(planted.root):]: b for p, b in planted.originals.items()}
    before = tree_digest(str(tree))
    runs = [subprocess.Popen([sys.executable, "-m", "pipeline", "audit", str(tree), "--in-place",
                              "--report-dir", str(tmp_path / f"report-{i}"), "--registry", planted.registry,
                              "--min-age", "0",
                              "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 1, err[-3000:]   # the decoys, nothing else
        assert "Traceback" not in err, err[-3000:]

    after = tree_digest(str(tree))
    new = {path for path in after if path not in before}
    assert new == {os.path.relpath(p + ".index", tree) for p in originals}     # the indexes and nothing else
    assert {p: after[p] for p in before} == before
    for prefix, original in originals.items():
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original
        tf_reads_every_tensor(prefix)

    wrote = {}
    for i in range(2):
        for record in read_records(str(tmp_path / f"report-{i}")):
            if record.prefix in originals:
                assert record.status in ("rebuilt", "healthy"), record.reason
                assert not record.staged and record.index_path == record.prefix + ".index"
                if "written in place" in record.reason:
                    wrote[record.prefix] = wrote.get(record.prefix, 0) + 1
                else:
                    assert record.status == "healthy" or "identical bytes" in record.reason, record.reason
    assert wrote == dict.fromkeys(originals, 1)   # exactly one run created each index


def flip_byte_in_a_float_tensor(prefix: str) -> str:
    """Damage one byte of the first whole float32 tensor's data (bit rot); return its key."""
    with open(prefix + ".index", "rb") as f:
        index = read_index(f.read())
    key, entry = next((k, e) for k, e in index.data_entries() if e.dtype == 1 and e.size >= 4 and not is_slice_key(k))
    path = data_filename(prefix, entry.shard_id, index.header.num_shards)
    with open(path, "r+b") as f:
        f.seek(entry.offset + entry.size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    return key.decode("utf-8", "surrogateescape")


def test_in_place_with_checks_and_ranges_never_touches_an_unreadable_index(planted, tmp_path):
    import tensorflow as tf

    tree = tmp_path / "tree"
    shutil.copytree(planted.root, tree)
    sharded = sorted(str(tree / "runs" / "sharded" / n[: -len(".index")])
                     for n in os.listdir(tree / "runs" / "sharded") if n.endswith(".index"))
    rotten, broken = sharded
    rotten_key = flip_byte_in_a_float_tensor(rotten)
    with open(broken + ".index", "rb") as f:
        broken_original = f.read()
    with open(broken + ".index", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x00")                         # bad magic number
    before = tree_digest(str(tree))
    report = tmp_path / "report"

    code = cli_main(["audit", str(tree), "--report-dir", str(report), "--registry", planted.registry, "--in-place",
                     "--min-age", "0",
                     "--verify-data", "--rehearse", "--split-bytes", "1KiB", "--direct_running_mode=in_memory"])
    assert code == 1
    records = {r.prefix: r for r in read_records(str(report))}

    corrupt = records[broken]
    assert corrupt.status == "corrupt" and "magic" in corrupt.reason and corrupt.staged
    with open(corrupt.index_path, "rb") as f:
        assert f.read() == broken_original    # rebuilt from its sibling, staged only
    assert corrupt.command == shlex.join(["ckpt-rescue", "promote", str(report), broken, "--replace"])

    rot = records[rotten]
    assert rot.status == "corrupt" and "checksum does not match" in rot.reason
    assert f"tensor {rotten_key} (" in rot.reason            # its name as a person reads it, not a Python repr
    assert rot.rehearsal == "refused"        # its only sibling's index is unreadable
    with pytest.raises(tf.errors.OpError, match="Checksum does not match"):
        tf.train.load_checkpoint(rotten).get_tensor(rotten_key)

    for prefix, original in planted.originals.items():
        prefix = str(tree) + prefix[len(planted.root):]
        record = records[prefix]
        assert record.status == "rebuilt" and not record.staged and "written in place" in record.reason
        with open(prefix + ".index", "rb") as f:
            assert f.read() == original
        assert record.bytes_scanned == record.data_bytes   # the ranges cover each file exactly once
    adam = [p for p in records if "/runs/adam/ckpt-" in p and records[p].kind == "checkpoint"
            and records[p].status == "healthy"]
    assert len(adam) == 2 and all(records[p].rehearsal == "byte-identical" for p in adam)
    assert all(records[p].bytes_scanned >= 2 * records[p].data_bytes for p in adam)   # verified + rehearsed

    after = tree_digest(str(tree))
    assert {p: after[p] for p in before} == before
    summary = json.load(open(report / "summary.json"))
    assert summary["written_in_place"] == len(planted.originals) and summary["staged_indexes"] == 1

    # The record's command, as printed: the unreadable index kept aside (create-only), the rebuilt one in place.
    with open(broken + ".index", "rb") as f:
        unreadable = f.read()
    done = run_printed(corrupt.command)
    assert done.returncode == 0 and f"replaced: {broken}.index" in done.stdout, done.stdout + done.stderr
    assert open(broken + ".index.unreadable", "rb").read() == unreadable
    assert open(broken + ".index", "rb").read() == broken_original
    assert tf.train.load_checkpoint(broken).get_variable_to_shape_map()


def test_split_rebuilds_show_in_the_metrics(planted, tmp_path, capsys):
    tree = tmp_path / "tree"
    shutil.copytree(planted.root, tree)
    code = cli_main(["audit", str(tree), "--report-dir", str(tmp_path / "r"), "--registry", planted.registry,
                     "--min-age", "0", "--split-bytes", "1024", "--direct_running_mode=in_memory"])
    assert code == 1
    out = capsys.readouterr().out
    metrics = dict(item.split("=", 1) for item in out.split("metrics: ", 1)[1].splitlines()[0].split(", ")
                   if "=" in item and " " not in item)
    sizes = [os.path.getsize(str(tree) + p[len(planted.root):] + ".data-00000-of-00001") for p in planted.originals]
    assert int(metrics["split_orphans"]) == sum(size > 1024 for size in sizes) == len(planted.originals)
    assert int(metrics["ranges_checksummed"]) >= 2 * len(sizes)   # every split orphan spread over 2+ ranges
    for record in read_records(str(tmp_path / "r")):
        if record.status == "rebuilt":
            original = planted.originals[str(planted.root) + record.prefix[len(str(tree)):]]
            with open(record.index_path, "rb") as f:
                assert f.read() == original
