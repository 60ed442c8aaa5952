"""The rebuild engine on real TensorFlow checkpoints: byte-identical to TF's index, or refused
with nothing written."""

import os
import random
import shutil

import pytest
from source_helpers import classify_local, orphan, tree_digest

from recovery import storage
from recovery.context import NotRebuildable, open_orphan
from recovery.rebuild import REBUILT, UNRECOVERABLE, checksum_range, finalize, prepare, rebuild, split_ranges
from recovery.records import HEALTHY
from recovery.sources.part_index import part_index_layouts
from recovery.sources.sibling import sibling_layouts
from recovery.verify import rehearse
from tfbundle import BundleHeader, data_filename, index_filename, read_index, write_index

SIBLING_FAMILIES = ["keras3_adam", "sharded", "mixed_dtypes", "iterator"]


def rebuild_local(prefix: str, sources=None, **kwargs):
    fs, path = storage.url_to_fs(prefix)
    return rebuild(open_orphan(fs, path, **kwargs), sources)


def tf_reads_all(prefix: str, index_bytes: bytes) -> None:
    import tensorflow as tf

    from pipeline.tf_judge import tf_reads_every_tensor

    shards = sorted(p for p in os.listdir(os.path.dirname(prefix))
                    if p.startswith(os.path.basename(prefix) + ".data-"))
    ok, message = tf_reads_every_tensor([os.path.join(os.path.dirname(prefix), s) for s in shards], index_bytes)
    assert ok, message
    assert tf is not None


@pytest.mark.parametrize("name", SIBLING_FAMILIES)
def test_rebuilt_from_sibling_is_byte_identical(family_copy, name):
    family = family_copy(name)
    original = orphan(family.prefix)
    outcome = rebuild_local(family.prefix, [sibling_layouts])
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.source.startswith("sibling")
    assert outcome.index_bytes == original
    tf_reads_all(family.prefix, outcome.index_bytes)


@pytest.mark.parametrize("name", ["keras3_adam", "many_tensors", "tf1_saver"])
def test_rebuilt_from_part_index_left_by_a_crashed_merge(family_copy, name):
    family = family_copy(name)
    original = orphan(family.prefix)
    # MergeV2Checkpoints renamed the data into place, then died before writing P.index:
    # the part index survives in P_temp/. For one shard it is the merged index byte for byte.
    os.makedirs(family.prefix + "_temp")
    with open(os.path.join(family.prefix + "_temp", "part-00000-of-00001.index"), "wb") as f:
        f.write(original)
    outcome = rebuild_local(family.prefix, [part_index_layouts])
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.source.startswith("part index")
    assert outcome.index_bytes == original


def test_multi_shard_part_indexes_merge_like_tensorflow(tmp_path):
    """Several part indexes (one per shard) merge into TF's merged index, slices and all."""
    import tensorflow as tf

    from tfbundle import read_index

    prefix = str(tmp_path / "run" / "ckpt-7")
    os.makedirs(prefix + "_temp")
    parts = []
    for part in range(2):
        part_prefix = f"{prefix}_temp/part-{part:05d}-of-00002"
        names = [f"p{part}/a", f"p{part}/b", "shared"] if part == 0 else [f"p{part}/a", "z"]
        tensors = [tf.random.normal([3, 4]) for _ in names]
        specs = [""] * len(names)
        if part == 0:
            specs[2], tensors[2] = "4 2 0,2:-", tf.random.normal([2, 2])
        else:
            specs.insert(1, "4 2 2,2:-")
            names.insert(1, "shared")
            tensors.insert(1, tf.random.normal([2, 2]))
        tf.raw_ops.SaveV2(prefix=part_prefix, tensor_names=names, shape_and_slices=specs, tensors=tensors)
        parts.append(part_prefix)
    part_bytes = [open(index_filename(p), "rb").read() for p in parts]
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=prefix, delete_old_dirs=True)
    original = orphan(prefix)
    assert read_index(original).header.num_shards == 2
    os.makedirs(prefix + "_temp", exist_ok=True)
    for i, raw in enumerate(part_bytes):
        with open(f"{prefix}_temp/part-{i:05d}-of-00002.index", "wb") as f:
            f.write(raw)
    outcome = rebuild_local(prefix, [part_index_layouts])
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original
    tf_reads_all(prefix, outcome.index_bytes)


def test_split_ranges_give_the_same_index_as_one_pass(family_copy):
    """Workers checksumming byte ranges of one file and combining CRCs build the same index."""
    family = family_copy("sharded")
    original = orphan(family.prefix)
    fs, path = storage.url_to_fs(family.prefix)
    plan = prepare(open_orphan(fs, path), [sibling_layouts])
    ranges = split_ranges(plan, max_range_bytes=100)
    assert len(ranges) > len(plan.shard_sizes), "the test needs files cut into several ranges"
    results = [checksum_range(fs, plan, shard, start, end) for shard, start, end in reversed(ranges)]
    outcome = finalize(plan, results)
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original


def test_refuses_a_sibling_of_a_different_model(family_copy, tmp_path):
    """Data of step N beside a healthy checkpoint of another model: refused, keys named."""
    keras = family_copy("keras3_adam")
    other = family_copy("mixed_dtypes")
    target = tmp_path / "mixed"
    target.mkdir()
    for name in os.listdir(os.path.dirname(other.prefix)):
        if name.startswith(os.path.basename(other.prefix) + ".data-"):
            shutil.copy(os.path.join(os.path.dirname(other.prefix), name), target / name)
    for name in os.listdir(os.path.dirname(keras.prefix)):
        if name.startswith(os.path.basename(keras.siblings[0])):
            shutil.copy(os.path.join(os.path.dirname(keras.prefix), name), target / name)
    orphan_prefix = str(target / os.path.basename(other.prefix))
    before = tree_digest(str(target))
    outcome = rebuild_local(orphan_prefix, [part_index_layouts, sibling_layouts])
    assert outcome.status == UNRECOVERABLE
    assert "lacks" in outcome.reason and "optimizer" in outcome.reason, outcome.reason
    assert tree_digest(str(target)) == before


@pytest.mark.parametrize("seed, why", [(0, "length checksum does not match"), (904, "does not fit in 64 bits"),
                                       (6034, "longer than 10 bytes")])
def test_refuses_random_bytes_named_like_a_data_file(tmp_path, family_copy, seed, why):
    """Seeded, so a failure reproduces. The decoy is as long as the sibling's data file, so the fit
    reaches the object graph, a string tensor, and reads random bytes as its length: seed 904 draws a
    ten-byte length past 64 bits, which once crashed the rebuild (struct.error) in one CI run in many."""
    family = family_copy("keras3_adam")
    fake = tmp_path / "ckpt-9.data-00000-of-00001"
    fake.write_bytes(random.Random(seed).randbytes(3000))
    for sibling in family.siblings:
        for name in os.listdir(os.path.dirname(sibling)):
            if name.startswith(os.path.basename(sibling) + "."):
                shutil.copy(os.path.join(os.path.dirname(sibling), name), tmp_path / name)
    before = tree_digest(str(tmp_path))
    outcome = rebuild_local(str(tmp_path / "ckpt-9"))
    assert outcome.status == UNRECOVERABLE
    assert "does not fit" in outcome.reason and why in outcome.reason, outcome.reason
    assert tree_digest(str(tmp_path)) == before


def test_refuses_a_truncated_data_file(family_copy):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    data = data_filename(family.prefix, 0, 1)
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) - 100)
    before = tree_digest(os.path.dirname(family.prefix))
    outcome = rebuild_local(family.prefix)
    assert outcome.status == UNRECOVERABLE
    assert tree_digest(os.path.dirname(family.prefix)) == before


def test_refuses_when_the_object_graph_matches_no_source(family_copy, tmp_path):
    """An orphan whose own object graph names keys no sibling has: the mismatch is spelled out."""
    import tensorflow as tf

    family = family_copy("keras3_adam")
    extra = tf.Variable(tf.ones([5]))
    ckpt = tf.train.Checkpoint(unexpected=extra)
    path = ckpt.write(os.path.join(os.path.dirname(family.prefix), "ckpt-4"))
    orphan(path)
    outcome = rebuild_local(path)
    assert outcome.status == UNRECOVERABLE
    assert "unexpected/.ATTRIBUTES/VARIABLE_VALUE" in outcome.reason


def test_missing_shard_is_not_rebuildable(family_copy):
    family = family_copy("sharded")
    orphan(family.prefix)
    os.remove(data_filename(family.prefix, 1, _num_shards(family.prefix)))
    fs, path = storage.url_to_fs(family.prefix)
    with pytest.raises(NotRebuildable, match="missing"):
        open_orphan(fs, path)


def _num_shards(prefix: str) -> int:
    names = [n for n in os.listdir(os.path.dirname(prefix)) if n.startswith(os.path.basename(prefix) + ".data-")]
    return int(names[0].rsplit("-of-", 1)[1])


def test_a_savedmodel_rebuilt_from_a_template_is_proven_by_its_fingerprint(family_copy, pristine_family):
    """Whatever source gives a SavedModel's layout, fingerprint.pb's checkpoint_hash judges the result."""
    family = family_copy("savedmodel")
    original = orphan(family.prefix)
    outcome = rebuild_local(family.prefix, template=pristine_family("savedmodel").prefix)
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.source.startswith("template")
    assert any(check.startswith("Fingerprint64 equals fingerprint.pb") for check in outcome.checks), outcome.checks
    assert outcome.index_bytes == original


@pytest.mark.parametrize("sibling_count,orphan_count", [(2, 3), (3, 2)])
def test_a_variant_whose_length_changed_since_the_sibling_is_counted_from_the_data(tmp_path, sibling_count,
                                                                                  orphan_count):
    """A variant tensor's length can change between saves (a tf.data iterator's state does): the
    sibling's shape is then wrong for the orphan, and the element checksums in its bytes say how many."""
    from pipeline.tensorflow_env import import_tensorflow

    tf = import_tensorflow()

    def variant(count):
        return tf.stack([tf.raw_ops.TensorListFromTensor(tensor=tf.range(i + 2, dtype=tf.float32),
                                                         element_shape=tf.constant([], tf.int32))
                         for i in range(count)])

    prefixes = {}
    for name, count in (("sibling", sibling_count), ("orphan", orphan_count)):
        prefixes[name] = str(tmp_path / f"{name}-{count}")
        tf.raw_ops.SaveV2(prefix=prefixes[name], tensor_names=["a", "state", "z"], shape_and_slices=["", "", ""],
                          tensors=[tf.ones([3]), variant(count), tf.zeros([2], tf.int64)])
    original = orphan(prefixes["orphan"])
    outcome = rebuild_local(prefixes["orphan"], [sibling_layouts])
    assert outcome.status == REBUILT, outcome.reason
    assert any("element(s) in this checkpoint's bytes" in check for check in outcome.checks), outcome.checks
    assert outcome.index_bytes == original
    tf_reads_all(prefixes["orphan"], outcome.index_bytes)


def _leave_part_index(prefix: str, index_bytes: bytes) -> None:
    """What a crash inside MergeV2Checkpoints leaves: the data renamed into place, no P.index, and the
    part index (for one shard, TensorFlow's merged index byte for byte) still in P_temp/."""
    os.makedirs(prefix + "_temp")
    with open(os.path.join(prefix + "_temp", "part-00000-of-00001.index"), "wb") as f:
        f.write(index_bytes)


@pytest.mark.parametrize("name", ["mixed_dtypes", "tf1_saver", "savedmodel"])
def test_zero_size_tensors_three_commands_give_one_answer(family_copy, name):
    """Issue 14.1: empty tensors first, in the middle and last of the write order (TF1's sits at the
    offset of a partitioned variable's first slice, whose key sorts before it). The rehearsal, the
    rebuild from the part index and from the other sources, and the next audit agree."""
    family = family_copy(name)
    directory = os.path.dirname(family.prefix)
    original = open(index_filename(family.prefix), "rb").read()
    empty = {k: e for k, e in read_index(original).entries.items() if e.size == 0 and not e.slices}
    assert len(empty) >= 2 and len({e.offset for e in empty.values()}) == len(empty)   # not all at one place
    fs, path = storage.url_to_fs(family.prefix)
    rehearsal = rehearse(fs, path)
    assert rehearsal.verdict == "byte-identical", rehearsal.detail

    orphan(family.prefix)
    _leave_part_index(family.prefix, original)
    outcome = rebuild_local(family.prefix)
    assert outcome.status == REBUILT and outcome.source.startswith("part index"), outcome.reason
    assert outcome.index_bytes == original
    assert read_index(outcome.index_bytes).entries == read_index(original).entries   # every offset copied

    shutil.rmtree(family.prefix + "_temp")
    outcome = rebuild_local(family.prefix)      # a sibling, the .meta or saved_model.pb
    assert outcome.status == REBUILT and not outcome.source.startswith("part index"), outcome.reason
    assert outcome.index_bytes == original
    tf_reads_all(family.prefix, outcome.index_bytes)

    with open(index_filename(family.prefix), "xb") as f:     # promoted, with the part index still beside it
        f.write(outcome.index_bytes)
    _leave_part_index(family.prefix, original)
    record = classify_local(directory)[family.prefix]
    assert record.status == HEALTHY, record.reason
    assert any("byte-identical to the index" in c for c in record.checks), record.checks


def test_a_part_index_whose_empty_tensor_sits_elsewhere_is_not_copied(family_copy):
    """The part index is the index of these very bytes: held to its every offset, an empty tensor's too."""
    family = family_copy("mixed_dtypes")
    original = orphan(family.prefix)
    index = read_index(original)
    key = b"module/no_rows/.ATTRIBUTES/VARIABLE_VALUE"
    index.entries[key].offset += 1       # inside the next tensor: nowhere BundleWriter could have put it
    _leave_part_index(family.prefix, write_index(BundleHeader(num_shards=1), index.entries))
    outcome = rebuild_local(family.prefix, [part_index_layouts])
    assert outcome.status == UNRECOVERABLE
    assert "not copied exactly" in outcome.reason and "module/no_rows" in outcome.reason
    assert not os.path.exists(index_filename(family.prefix))
