"""Verdicts that must not be wrong on checkpoints that look healthy (issue 7, points 4-7 and 11), on
checkpoints TensorFlow writes here: a stale index after a merge TensorFlow really failed to finish,
saves still in progress, `checkpoint` state files whose latest has no index, an index entry of the
wrong wire type beside a healthy sibling, and report directories inside a root.

Each check is run on the damaged input it must catch and on the legitimate input it must accept.
"""

import os
import shlex
import shutil
import time

import pytest
from command_helpers import run_printed
from source_helpers import orphan, tree_digest
from storage_servers import gcs_bucket, gcs_server, s3_bucket, s3_server  # noqa: F401

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.classify import classify_directory
from recovery.discovery import checkpoint_directory, group_directory
from recovery.listing import REPORT_MARKER, everything_under, top_level
from recovery.records import CORRUPT, HEALTHY, IN_PROGRESS, INCOMPLETE, STALE, STATE_FILE
from recovery.report.readback import read_records, read_summary
from recovery.spot_check import spot_check
from recovery.tasks import OrphanTask
from samples import FAMILY_NAMES
from tfbundle import BundleEntry, read_index
from tfbundle.protos import tensor_bundle_pb2
from tfbundle.table import build_table, read_table
from tfbundle.varint import encode_varint

pytestmark = pytest.mark.tf
HOUR = 3600.0


def classify(directory: str, **options) -> dict:
    """display prefix -> Record or OrphanTask for one local directory, as the pipeline would see it."""
    fs, path = storage.url_to_fs(directory)
    files = [f for f in everything_under(fs, path) if checkpoint_directory(f[0]) == path]
    results = classify_directory(fs, group_directory(path, files), directory, **options)
    return {getattr(r, "display_prefix", None) or r.prefix: r for r in results}


# The moment every age in these tests is measured at (2026-12-07T12:53:20Z): classification gets it as
# `now=`, an audit as CKPT_RESCUE_NOW. Files get their times from it explicitly; nothing waits for time to pass.
NOW = 1_796_648_000.0


def backdate(root: str, seconds: float = HOUR) -> None:
    """Set every file under root to `seconds` before NOW (0: a save that just finished)."""
    when = NOW - seconds
    for directory, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(directory, name), (when, when))


def audit_at_now(root: str, report: str, monkeypatch, *extra) -> tuple:
    """`audit` with its clock at NOW (the CKPT_RESCUE_NOW it documents)."""
    monkeypatch.setenv("CKPT_RESCUE_NOW", str(NOW))
    return audit(root, report, *extra)


def audit(root: str, report: str, *extra) -> tuple:
    code = cli_main(["audit", root, "--report-dir", report, "--direct_running_mode=in_memory", *extra])
    return code, {r.prefix: r for r in read_records(report)}


# --- 4. stale index ------------------------------------------------------------------------------------

def _module(tf, step: int, seed: int):
    module = tf.Module()
    module.step = tf.Variable(step, dtype=tf.int64)
    module.w = tf.Variable(tf.random.stateless_normal([16, 8], seed=[seed, 1]))
    module.b = tf.Variable(tf.random.stateless_normal([8], seed=[seed, 2]))
    return module


def crashed_merge(directory: str) -> tuple:
    """TensorFlow saves to one prefix twice; the second save's merge really fails after it renamed the
    new data into place and before it wrote the index (P.index is made a directory, so TensorFlow's
    open of it fails right there). Putting the first save's index back gives what a crash at that
    point leaves: new data, the old index (same sizes), and the part index in P_temp/.

    Returns (prefix, the first save's index, the part index TensorFlow left)."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    prefix = os.path.join(directory, "latest")
    module = _module(tf, 1, 1)
    checkpoint = tf.train.Checkpoint(model=module)
    checkpoint.write(prefix)
    old_index = orphan(prefix)
    os.mkdir(prefix + ".index")
    module.step.assign(2)
    module.w.assign(tf.random.stateless_normal([16, 8], seed=[2, 1]))
    module.b.assign(tf.random.stateless_normal([8], seed=[2, 2]))
    with pytest.raises(tf.errors.OpError, match="Is a directory"):
        checkpoint.write(prefix)
    os.rmdir(prefix + ".index")
    with open(prefix + ".index", "wb") as f:
        f.write(old_index)
    part = os.path.join(prefix + "_temp", "part-00000-of-00001.index")
    with open(part, "rb") as f:
        part_index = f.read()
    assert read_index(part_index).entries.keys() == read_index(old_index).entries.keys()   # same keys, sizes
    return prefix, old_index, part_index


def tensorflow_rejects(prefix: str, key: str = "model/step/.ATTRIBUTES/VARIABLE_VALUE") -> bool:
    import tensorflow as tf

    try:
        tf.train.load_checkpoint(prefix).get_tensor(key)
    except tf.errors.OpError:
        return True
    return False


def test_a_stale_index_after_a_crashed_merge_is_stale_not_healthy(tmp_path):
    import tensorflow as tf

    prefix, old_index, _ = crashed_merge(str(tmp_path / "run"))
    assert tensorflow_rejects(prefix)                   # the damage is real: TensorFlow's CRC check fails
    with open(tmp_path / "run" / "checkpoint", "w") as f:
        f.write('model_checkpoint_path: "latest"\nall_model_checkpoint_paths: "latest"\n')
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == prefix   # it finds the stale index
    results = classify(str(tmp_path / "run"))
    state = results[str(tmp_path / "run" / "checkpoint")]
    assert state.status == INCOMPLETE and "index that is stale" in state.reason and "fails" in state.reason
    task = results[prefix]
    assert isinstance(task, OrphanTask) and task.stage_only and task.status_if_staged == STALE
    assert "stale index" in task.finding and "part index" in task.finding and "model/step" in task.finding
    part = results[prefix + "_temp/part-00000-of-00001"]
    assert part.status == HEALTHY and "stale" in part.reason


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_every_family_tensorflow_writes_passes_the_spot_check(pristine_family, name):
    family = pristine_family(name)
    results = classify(os.path.dirname(family.prefix))
    for prefix in [family.prefix, *family.siblings]:
        record = results[prefix]
        assert record.status == HEALTHY, (prefix, getattr(record, "finding", ""), record.reason)
        assert any(c.startswith("spot check: ") for c in record.checks), record.checks


def test_a_stale_index_without_its_part_index_is_caught_by_the_spot_check(tmp_path):
    prefix, _, _ = crashed_merge(str(tmp_path / "run"))
    shutil.rmtree(prefix + "_temp")
    task = classify(str(tmp_path / "run"))[prefix]
    assert isinstance(task, OrphanTask) and task.status_if_staged == STALE and task.stage_only
    assert "does not describe the data" in task.finding and "model/step" in task.finding


def test_one_damaged_tensor_beside_matching_ones_is_corrupt_data_not_a_stale_index(tmp_path):
    prefix, _, part_index = crashed_merge(str(tmp_path / "run"))
    shutil.rmtree(prefix + "_temp")
    with open(prefix + ".index", "wb") as f:
        f.write(part_index)                  # the completed save
    entry = read_index(part_index).entries[b"model/b/.ATTRIBUTES/VARIABLE_VALUE"]
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + 5)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x04]))     # one flipped bit: bit rot
    assert tensorflow_rejects(prefix, "model/b/.ATTRIBUTES/VARIABLE_VALUE")
    record = classify(str(tmp_path / "run"))[prefix]
    assert not isinstance(record, OrphanTask) and record.status == CORRUPT
    assert "tensor model/b/.ATTRIBUTES/VARIABLE_VALUE (" in record.reason and "checksum does not match" in record.reason
    deferred = classify(str(tmp_path / "run"), verify_data=True)[prefix]   # --verify-data will report it
    assert deferred.status == HEALTHY and any("--verify-data follows" in c for c in deferred.checks)


def _resaved_in_place(prefix: str, save, change) -> tuple:
    """`save()` to one prefix twice with `change()` between; the second save really stops after TensorFlow
    renamed its data into place and before it wrote the index (P.index is a directory then), and its part
    directory is gone (a sync that skips temp directories, a clean-up): new data under the old index.
    Returns (the old index, the index the second save would have written)."""
    import tensorflow as tf

    save()
    old_index = orphan(prefix)
    os.mkdir(prefix + ".index")
    change()
    with pytest.raises(tf.errors.OpError, match="Is a directory"):
        save()
    os.rmdir(prefix + ".index")
    with open(os.path.join(prefix + "_temp", "part-00000-of-00001.index"), "rb") as f:
        new_index = f.read()
    shutil.rmtree(prefix + "_temp")
    with open(prefix + ".index", "wb") as f:
        f.write(old_index)
    return old_index, new_index


def _keras_weights_run(directory: str):
    """tf_keras `save_weights` to one path every epoch, a model without its optimizer in the checkpoint (so
    no counter): two bias-free layers trained, two small ones after them frozen."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(5)
    model = tf_keras.Sequential([tf_keras.Input(shape=(16,)),
                                 tf_keras.layers.Dense(64, use_bias=False, name="encoder"),
                                 tf_keras.layers.Dense(32, use_bias=False, name="projection"),
                                 tf_keras.layers.Dense(2, name="head", trainable=False),
                                 tf_keras.layers.Dense(2, name="calibration", trainable=False)])
    optimizer = tf_keras.optimizers.SGD(0.1)
    prefix = os.path.join(directory, "weights")

    def epoch():
        x = tf.random.stateless_normal([32, 16], seed=[1, 2])
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return prefix, lambda: model.save_weights(prefix), epoch


def _checkpoint_write_run(directory: str):
    """`tf.train.Checkpoint(model=...).write(path)` each epoch (write() saves no save_counter); the model's
    small tensors are frozen, its two large ones trained."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(tf.ones([4]), trainable=False)
    module.offset = tf.Variable(tf.zeros([4]), trainable=False)
    module.vocab_ids = tf.Variable(tf.range(8), trainable=False)
    module.embedding = tf.Variable(tf.random.stateless_normal([256, 32], seed=[3, 1]))
    module.kernel = tf.Variable(tf.random.stateless_normal([32, 64], seed=[3, 2]))
    checkpoint = tf.train.Checkpoint(model=module)
    prefix = os.path.join(directory, "latest")

    def epoch():
        module.embedding.assign_add(tf.fill([256, 32], 0.01))
        module.kernel.assign_add(tf.fill([32, 64], 0.01))
    return prefix, lambda: checkpoint.write(prefix), epoch


@pytest.mark.parametrize("run", [_keras_weights_run, _checkpoint_write_run], ids=["save_weights", "Checkpoint.write"])
def test_a_stale_index_over_new_weights_with_no_counter_to_show_it_is_not_healthy(tmp_path, run):
    """Issue 14.4: the counters do not change (there are none), the smallest tensors neither; the weights did.
    The spot check reads the largest model tensor, so the old index over the new data is found stale."""
    directory = str(tmp_path / "run")
    os.makedirs(directory)
    prefix, save, epoch = run(directory)
    old_index, new_index = _resaved_in_place(prefix, save, epoch)
    fs, path = storage.url_to_fs(prefix)
    old = spot_check(fs, path, read_index(old_index), weight_budget=0)      # what the spot check read before
    assert not old.mismatches and old.checked, "the damage must be one the small tensors do not show"
    now = spot_check(fs, path, read_index(old_index))
    assert now.weight and tensorflow_rejects(prefix, now.weight)     # TensorFlow's own CRC check fails there
    task = classify(directory)[prefix]
    assert isinstance(task, OrphanTask) and task.status_if_staged == STALE and task.stage_only, task
    assert "does not describe the data" in task.finding

    with open(prefix + ".index", "wb") as f:     # the legitimate input: the save that completed
        f.write(new_index)
    record = classify(directory)[prefix]
    assert record.status == HEALTHY, record.reason
    spot = spot_check(fs, path, read_index(new_index))
    assert spot.weight and spot.weight in [c for c in record.checks if c.startswith("spot check: ")][0]


def test_one_model_tensor_that_differs_beside_another_that_matches_is_damage_not_staleness(tmp_path):
    directory = str(tmp_path / "run")
    os.makedirs(directory)
    prefix, save, _ = _checkpoint_write_run(directory)
    save()
    entry = read_index(open(prefix + ".index", "rb").read()).entries[b"model/embedding/.ATTRIBUTES/VARIABLE_VALUE"]
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.seek(entry.offset + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))       # bit rot in the largest model tensor; the next largest matches
    record = classify(directory)[prefix]
    assert not isinstance(record, OrphanTask) and record.status == CORRUPT, record
    assert "tensor model/embedding/.ATTRIBUTES/VARIABLE_VALUE (shard" in record.reason


def test_a_model_tensor_over_the_budget_is_left_to_verify_data_and_the_record_says_so(tmp_path):
    import tensorflow as tf

    from recovery.spot_check import WEIGHT_BUDGET

    module = tf.Module()
    module.big = tf.Variable(tf.zeros([WEIGHT_BUDGET // 4 + 256]))          # one float32 row over the budget
    module.kernel = tf.Variable(tf.random.stateless_normal([64, 64], seed=[4, 1]))
    prefix = tf.train.Checkpoint(model=module).write(str(tmp_path / "run" / "latest"))
    record = classify(str(tmp_path / "run"))[prefix]
    assert record.status == HEALTHY
    [note] = [c for c in record.checks if "left to --verify-data" in c]
    assert "model/big/.ATTRIBUTES/VARIABLE_VALUE" in note and "model/kernel/.ATTRIBUTES/VARIABLE_VALUE" in note
    assert record.bytes_scanned < WEIGHT_BUDGET
    verified = classify(str(tmp_path / "run"), verify_data=True)[prefix]
    assert not any("left to --verify-data" in c for c in verified.checks)    # it follows: nothing left


def test_healthy_indexes_pass_the_spot_check_and_an_older_part_index_is_only_a_note(tmp_path):
    import tensorflow as tf

    prefix, old_index, part_index = crashed_merge(str(tmp_path / "run"))
    with open(prefix + ".index", "wb") as f:
        f.write(part_index)                  # what the merge would have written: the save completed
    assert not tensorflow_rejects(prefix)
    results = classify(str(tmp_path / "run"))
    record = results[prefix]
    assert record.status == HEALTHY and any("byte-identical to the index" in c for c in record.checks)
    # the step counter, the largest model tensor, the object graph, the smallest other: here all 4 (a tiny model)
    assert any(c.startswith("spot check: 4 tensor(s)") for c in record.checks), record.checks
    assert 0 < record.bytes_scanned <= record.data_bytes

    # a part index an earlier save left (older than the data): the data follows the index
    with open(os.path.join(prefix + "_temp", "part-00000-of-00001.index"), "wb") as f:
        f.write(old_index)
    record = classify(str(tmp_path / "run"))[prefix]
    assert record.status == HEALTHY and any("earlier interrupted save" in c for c in record.checks), record.checks

    fs, path = storage.url_to_fs(prefix)
    spot = spot_check(fs, path, read_index(part_index))
    assert len(spot.checked) == 4 and not spot.mismatches and spot.weight == "model/w/.ATTRIBUTES/VARIABLE_VALUE"
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in spot.checked and tf.train.load_checkpoint(prefix)


def test_a_sharded_stale_index_is_compared_with_every_part_index(tmp_path):
    """MaxShardSizePolicy: several part indexes, slices across shards, a merged shard_id on full entries.
    TensorFlow's own merged index beside its parts is healthy; the first save's index beside them is stale."""
    import tensorflow as tf

    from samples.families import SHARD_SIZE_LIMIT
    from samples.models import sharded_module

    checkpoint = sharded_module()
    options = tf.train.CheckpointOptions(experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
        max_shard_size=SHARD_SIZE_LIMIT))
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    prefix = str(run / "sharded")
    checkpoint.module.step.assign(1)
    checkpoint.write(prefix, options=options)
    old_index = orphan(prefix)
    for variable in [v for v in checkpoint.module.trainable_variables if v.dtype.is_floating]:
        variable.assign(tf.random.stateless_normal(variable.shape, seed=[7, variable.shape.num_elements()]))
    checkpoint.module.step.assign(2)
    merged = checkpoint.write(str(elsewhere / "sharded"), options=options)   # what the merge at prefix writes
    os.mkdir(prefix + ".index")
    with pytest.raises(tf.errors.OpError, match="Is a directory"):
        checkpoint.write(prefix, options=options)
    os.rmdir(prefix + ".index")
    parts = sorted(os.listdir(prefix + "_temp"))
    assert len(parts) > 2 and all(p.endswith(".index") for p in parts)
    with open(merged + ".index", "rb") as f:
        merged_index = f.read()

    with open(prefix + ".index", "wb") as f:
        f.write(merged_index)                       # the merge finished; only its clean-up was cut short
    record = classify(str(run))[prefix]
    assert record.status == HEALTHY, getattr(record, "finding", record.reason)
    assert any("describe the same tensors" in c for c in record.checks), record.checks

    with open(prefix + ".index", "wb") as f:
        f.write(old_index)
    task = classify(str(run))[prefix]
    assert isinstance(task, OrphanTask) and task.status_if_staged == STALE and "stale index" in task.finding
    code, records = audit(str(run), str(tmp_path / "report"), "--min-age", "0")
    assert code == 1 and records[prefix].status == STALE
    with open(records[prefix].index_path, "rb") as f:
        assert f.read() == merged_index              # byte for byte what TensorFlow's merge writes


@pytest.mark.slow
def test_the_audit_stages_the_right_index_for_a_stale_one_and_overwrites_nothing(tmp_path):
    prefix, old_index, part_index = crashed_merge(str(tmp_path / "tree" / "run"))
    before = tree_digest(str(tmp_path / "tree"))
    code, records = audit(str(tmp_path / "tree"), str(tmp_path / "report"), "--min-age", "0", "--in-place")
    assert code == 1
    record = records[prefix]
    assert record.status == STALE and record.staged and record.source.startswith("part index")
    with open(record.index_path, "rb") as f:
        assert f.read() == part_index               # the index TensorFlow would have written
    assert record.command == shlex.join(["ckpt-rescue", "promote", str(tmp_path / "report"), prefix, "--replace"])
    assert tree_digest(str(tmp_path / "tree")) == before   # --in-place never replaces an index
    with open(prefix + ".index.stale", "wb") as f:         # an earlier copy aside: nothing is moved over it
        f.write(b"a person's")
    refused = run_printed(record.command)
    assert refused.returncode == 1 and "look at it and move it away first" in refused.stdout, refused.stdout
    assert open(prefix + ".index", "rb").read() == old_index
    assert open(prefix + ".index.stale", "rb").read() == b"a person's"
    os.remove(prefix + ".index.stale")
    done = run_printed(record.command)                     # as printed: the stale one kept aside, create-only
    assert done.returncode == 0 and f"replaced: {prefix}.index" in done.stdout, done.stdout + done.stderr
    assert open(prefix + ".index.stale", "rb").read() == old_index
    assert not tensorflow_rejects(prefix)
    again = run_printed(record.command)                    # run twice: nothing more happens
    assert again.returncode == 0 and "already had an index" in again.stdout
    assert open(prefix + ".index.stale", "rb").read() == old_index
    assert read_summary(str(tmp_path / "report"))["counts"][STALE] == 1


# --- 5. saves in progress ---------------------------------------------------------------------------

def test_young_findings_are_in_progress_and_young_complete_checkpoints_are_healthy(family_copy):
    """A complete, self-consistent checkpoint is healthy at any age; only a finding on files younger than
    --min-age (here the orphan, and the state file that names it) is deferred, and nothing is rebuilt."""
    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    orphan(family.prefix)
    backdate(directory, 60)         # a save that finished a minute before NOW
    young = classify(directory, min_age=600, now=NOW)
    assert not any(isinstance(r, OrphanTask) for r in young.values())
    assert all(young[s].status == HEALTHY for s in family.siblings)
    latest = young[family.prefix]
    assert latest.status == IN_PROGRESS
    assert "still being written" in young[os.path.join(directory, "checkpoint")].reason
    assert latest.mtime == NOW - 60 and "written 60 s ago, less than --min-age (10.0 min)" in latest.reason
    assert "looks like an orphan (no index)" in latest.reason and "--min-age 0" in latest.reason
    assert latest.mtime == os.path.getmtime(family.prefix + ".data-00000-of-00001")

    backdate(directory, 601)        # a second past --min-age: judged
    old = classify(directory, min_age=600, now=NOW)
    assert isinstance(old[family.prefix], OrphanTask) and old[family.prefix].mtime == NOW - 601
    assert all(old[s].status == HEALTHY for s in family.siblings)
    backdate(directory, 0)
    assert classify(directory, min_age=0, now=NOW)[family.siblings[0]].status == HEALTHY   # 0 disables the check


def test_a_young_part_directory_makes_its_reused_prefix_in_progress(tmp_path):
    prefix, _, _ = crashed_merge(str(tmp_path / "run"))
    backdate(str(tmp_path / "run"))
    part = os.path.join(prefix + "_temp", "part-00000-of-00001.index")
    os.utime(part, (NOW - 5, NOW - 5))        # the next save is writing its temp bundle right now
    results = classify(str(tmp_path / "run"), min_age=600, now=NOW)
    assert results[prefix].status == IN_PROGRESS and results[prefix + "_temp/part-00000-of-00001"].status == IN_PROGRESS
    os.utime(part, (NOW - HOUR, NOW - HOUR))  # the same part, an hour old: both judged
    results = classify(str(tmp_path / "run"), min_age=600, now=NOW)
    assert IN_PROGRESS not in {getattr(r, "status", "judged") for r in results.values()}


@pytest.mark.slow
def test_the_nightly_default_reports_a_fresh_save_in_progress_and_rebuilds_nothing(family_copy, tmp_path,
                                                                                   monkeypatch):
    family = family_copy("keras3_adam")
    root = os.path.dirname(family.prefix)
    orphan(family.prefix)
    backdate(root, 60)              # a save that finished a minute before the audit's clock
    code, records = audit_at_now(root, str(tmp_path / "report"), monkeypatch)
    assert code == 0                                      # never an alarm: half of it is deferred, not most
    deferred = {p for p, r in records.items() if r.status == IN_PROGRESS}
    assert deferred == {family.prefix}
    assert {records[s].status for s in family.siblings} == {HEALTHY}
    assert not os.path.exists(tmp_path / "report" / "rebuilt")
    assert all(r.mtime == NOW - 60 for r in records.values())
    backdate(root)
    code, records = audit_at_now(root, str(tmp_path / "report2"), monkeypatch)
    assert records[family.prefix].status == "rebuilt" and records[family.prefix].mtime == NOW - HOUR


def test_the_audit_clock_must_be_a_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CKPT_RESCUE_NOW", "yesterday")
    assert cli_main(["audit", str(tmp_path), "--report-dir", str(tmp_path / "report")]) == 2
    assert "CKPT_RESCUE_NOW='yesterday': give the time as seconds since the epoch" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()            # found before any work


@pytest.mark.slow
def test_a_fresh_upload_with_a_lost_index_defers_only_the_finding(pristine_family, gcs_bucket, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    from storage_servers import upload_tree

    family = pristine_family("keras3_adam")
    root = f"{gcs_bucket}/run"
    upload_tree(os.path.dirname(family.prefix), root)
    fs, path = storage.url_to_fs(root)
    fs.rm_file(f"{path}/{os.path.basename(family.prefix)}.index")     # the upload lost the latest index
    store = storage.stores.store_for_fs(fs)
    uploaded = {e["name"]: store.mtime(e) for e in fs.ls(path, detail=True)}
    newest = max(uploaded.values())                       # the emulator's own object times
    reports = f"{gcs_bucket}/reports"
    monkeypatch.setenv("CKPT_RESCUE_NOW", str(newest + 60))
    code, records = audit(root, reports)
    latest = f"{root}/{os.path.basename(family.prefix)}"
    assert code == 0 and records[latest].status == IN_PROGRESS
    assert {records[f"{root}/{os.path.basename(s)}"].status for s in family.siblings} == {HEALTHY}   # at any age
    assert {r.mtime for r in records.values()} <= set(uploaded.values())
    monkeypatch.setenv("CKPT_RESCUE_NOW", str(newest + 601))
    code, records = audit(root, reports)
    assert records[latest].status == "rebuilt" and {r.status for r in records.values()} <= {HEALTHY, "rebuilt",
                                                                                          "incomplete"}


def test_listings_carry_modification_times_on_every_store(tmp_path, gcs_bucket, s3_bucket):  # noqa: F811
    """Local files carry the times set on them; a store's objects the time it stored them, which lies
    between the moments before the upload and after the listing (a second either side: the stores keep
    whole seconds or milliseconds), however long those took."""
    from storage_servers import upload_tree

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x.index").write_bytes(b"12345")
    (tmp_path / "d" / "top.index").write_bytes(b"1")
    backdate(str(tmp_path / "d"))
    for url in (str(tmp_path / "d"), "memory://mtimes/d", f"{gcs_bucket}/d", f"{s3_bucket}/d"):
        before = time.time()
        if "://" in url:
            upload_tree(str(tmp_path / "d"), url)
        fs, path = storage.url_to_fs(url)
        files, children, _ = top_level(fs, path)
        below = everything_under(fs, children[0])
        after = time.time()
        for name, _, mtime, _ in files + below:
            assert isinstance(mtime, float), (url, name, mtime)
            assert mtime == NOW - HOUR if "://" not in url else before - 1 <= mtime <= after + 1, (url, name, mtime)


# --- 6. `checkpoint` state files ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_state_file_whose_latest_has_no_index_says_training_restarts_and_what_fixes_it(family_copy, tmp_path):
    import tensorflow as tf

    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    state = os.path.join(directory, "checkpoint")
    assert tf.train.latest_checkpoint(directory) == family.prefix
    older = family.siblings[0]
    original_older = orphan(older)
    record = classify(directory)[state]
    assert record.status == HEALTHY and any("older checkpoint(s) without an index" in c for c in record.checks)
    assert tf.train.latest_checkpoint(directory) == family.prefix       # an older orphan does not matter to it
    with open(older + ".index", "wb") as f:
        f.write(original_older)

    orphan(family.prefix)
    assert tf.train.latest_checkpoint(directory) is None                 # no fall back to ckpt-2: a fresh start
    staged_run = classify(directory)[state]
    assert staged_run.kind == STATE_FILE and staged_run.status == INCOMPLETE
    assert "latest_checkpoint() returns None" in staged_run.reason and "from scratch" in staged_run.reason
    assert "until it is promoted" in staged_run.reason and "ckpt-2" in staged_run.reason
    in_place_run = classify(directory, in_place=True)[state]
    assert in_place_run.status == HEALTHY and "--in-place" in in_place_run.reason

    # what the record says, done: the staged index fixes it once promoted ...
    code, records = audit(directory, str(tmp_path / "staged"), "--min-age", "0")
    assert code == 1 and records[state].status == INCOMPLETE and tf.train.latest_checkpoint(directory) is None
    done = run_printed(records[family.prefix].command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert tf.train.latest_checkpoint(directory) == family.prefix
    # ... and an in-place run fixes it by itself
    orphan(family.prefix)
    code, records = audit(directory, str(tmp_path / "in-place"), "--min-age", "0", "--in-place")
    assert code == 0 and records[state].status == HEALTHY and records[family.prefix].status == "rebuilt"
    assert tf.train.latest_checkpoint(directory) == family.prefix


# --- 7. one bad index does not hide its directory ----------------------------------------------------

def wrong_wire_type(index_path: str) -> str:
    """Rewrite one entry of a TensorFlow-written index with `size` as a length-delimited field (wire type
    2 instead of 0); the table is rebuilt with tfbundle's writer, so every block CRC is valid."""
    with open(index_path, "rb") as f:
        items, _ = read_table(f.read())
    position, (key, value) = next((i, kv) for i, kv in enumerate(items) if kv[0] and BundleEntry.decode(kv[1]).size)
    entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
    size = entry.size
    entry.ClearField("size")
    entry.MergeFromString(encode_varint(5 << 3 | 2) + encode_varint(len(encode_varint(size))) + encode_varint(size))
    bad = entry.SerializeToString()
    items[position] = (key, bad)
    with open(index_path, "wb") as f:
        f.write(build_table(items))
    return key.decode()


def test_an_entry_of_the_wrong_wire_type_gets_its_own_record_and_its_sibling_stays_healthy(family_copy):
    family = family_copy("keras3_adam")
    bad_prefix = family.prefix
    key = wrong_wire_type(bad_prefix + ".index")
    assert tensorflow_rejects(bad_prefix, key)      # TensorFlow cannot use it either
    results = classify(os.path.dirname(bad_prefix))
    assert all(results[s].status == HEALTHY for s in family.siblings)
    task = results[bad_prefix]
    assert isinstance(task, OrphanTask) and task.stage_only and task.status_if_staged == CORRUPT
    assert "index unreadable" in task.finding and "size" in task.finding
    state = results[os.path.join(os.path.dirname(bad_prefix), "checkpoint")]
    assert state.kind == STATE_FILE and state.status in (HEALTHY, INCOMPLETE)


def test_a_read_error_on_one_index_is_that_prefix_record_alone(family_copy):
    """A storage fault while judging one prefix (an index the filesystem cannot read: EIO) is its record;
    the rest of the directory is judged as usual."""
    family = family_copy("keras3_adam")
    os.remove(family.prefix + ".index")
    os.symlink("/proc/self/mem", family.prefix + ".index")     # listed as a file; reading it fails with EIO
    results = classify(os.path.dirname(family.prefix))
    failed = results[family.prefix]
    assert failed.status == "unrecoverable" and "classification failed: OSError" in failed.reason
    assert failed.command == f"ckpt-rescue inspect {family.prefix}"
    assert all(results[s].status == HEALTHY for s in family.siblings)


@pytest.mark.slow
def test_the_audit_gives_the_bad_index_its_own_staged_record(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    with open(family.prefix + ".index", "rb") as f:
        original = f.read()
    wrong_wire_type(family.prefix + ".index")
    root = os.path.dirname(family.prefix)
    code, records = audit(root, str(tmp_path / "report"), "--min-age", "0")
    assert code == 1
    for sibling in family.siblings:
        assert records[sibling].status == HEALTHY
    bad = records[family.prefix]
    assert bad.status == CORRUPT and bad.staged and "index unreadable" in bad.reason
    with open(bad.index_path, "rb") as f:
        assert f.read() == original                 # rebuilt from a sibling, byte for byte
    assert bad.command == shlex.join(["ckpt-rescue", "promote", str(tmp_path / "report"), family.prefix, "--replace"])


# --- 11. report directories inside a root --------------------------------------------------------------

def test_earlier_reports_are_left_out_of_a_listing_by_their_marker_alone(tmp_path):
    """A report's marker hides its `rebuilt/`; a training job's own summary.json and records.jsonl beside a
    `rebuilt/` directory of checkpoints do not (tests/pipeline/test_hostile_names.py audits such a tree)."""
    names = ["run/ckpt-1.index", "job/summary.json", "job/records.jsonl", "job/rebuilt/ckpt-1.index",
             "crashed/" + REPORT_MARKER, "crashed/rebuilt/local/x.index", "mine/rebuilt/ckpt-2.index"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"1")
    fs, root = storage.url_to_fs(str(tmp_path))
    kept = sorted(os.path.relpath(f.path, root) for f in everything_under(fs, root))
    assert kept == sorted(["run/ckpt-1.index", "job/summary.json", "job/records.jsonl", "job/rebuilt/ckpt-1.index",
                           "crashed/" + REPORT_MARKER, "mine/rebuilt/ckpt-2.index"])


@pytest.mark.slow
def test_an_earlier_report_inside_the_root_never_becomes_findings(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    root = os.path.dirname(os.path.dirname(family.prefix))
    orphan(family.prefix)
    first = os.path.join(root, "audit-monday")
    code, records = audit(root, first, "--min-age", "0")
    assert records[family.prefix].staged and os.path.exists(records[family.prefix].index_path)
    os.remove(os.path.join(first, "summary.json"))     # as if Monday's run had stopped before its summary
    os.remove(os.path.join(first, "records.jsonl"))
    code, records = audit(root, os.path.join(root, "audit-tuesday"), "--min-age", "0")
    assert not [p for p in records if "audit-monday" in p]
    assert records[family.prefix].status == "rebuilt"


def test_a_report_dir_that_would_hide_checkpoints_is_a_usage_error(family_copy, tmp_path, capsys):
    family = family_copy("keras3_adam")
    run = os.path.dirname(family.prefix)
    root = os.path.dirname(run)
    assert cli_main(["audit", root, "--report-dir", root]) == 2
    assert "is the root" in capsys.readouterr().err
    assert cli_main(["audit", run, "--report-dir", root]) == 2
    assert "contains the root" in capsys.readouterr().err
    hiding = os.path.join(root, "reports")
    shutil.copytree(run, os.path.join(hiding, "copied-run"))
    assert cli_main(["audit", root, "--report-dir", hiding]) == 2
    err = capsys.readouterr().err
    assert "holds checkpoint files that are not staged indexes" in err and "copied-run" in err
    assert not os.path.exists(os.path.join(hiding, REPORT_MARKER))     # nothing was done
