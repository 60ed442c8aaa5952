"""TensorFlow as the final judge: it must accept TF's own index and reject one with a wrong CRC."""

import os

import pytest

from pipeline.tf_judge import tf_reads, tf_reads_every_tensor
from tfbundle import (
    DT_STRING,
    DT_VARIANT,
    data_filename,
    decode_slice_key,
    index_filename,
    is_slice_key,
    read_index,
    write_index,
)


def _data_paths(prefix: str, num_shards: int) -> list[str]:
    return [data_filename(prefix, shard, num_shards) for shard in range(num_shards)]


@pytest.mark.parametrize("name,pick_variant", [("keras3_adam", False), ("iterator", True)])
def test_judge_accepts_the_true_index_and_rejects_a_wrong_crc(pristine_family, name, pick_variant):
    family = pristine_family(name)
    with open(index_filename(family.prefix), "rb") as f:
        true_bytes = f.read()
    index = read_index(true_bytes)
    paths = _data_paths(family.prefix, index.header.num_shards)
    ok, message = tf_reads_every_tensor(paths, true_bytes)
    assert ok, message

    key = next(k for k, e in index.data_entries() if (e.dtype == DT_VARIANT) == pick_variant and e.size)
    index.entries[key].crc32c ^= 0x10
    ok, message = tf_reads_every_tensor(paths, write_index(index.header, index.entries))
    assert not ok
    assert "Checksum does not match" in message or "checksum" in message.lower(), message
    assert os.path.exists(index_filename(family.prefix))


def _crc_damaged(index, key) -> bytes:
    index.entries[key].crc32c ^= 0x10
    return write_index(index.header, index.entries)


@pytest.mark.parametrize("name", ["mixed_dtypes", "sharded", "tf1_saver", "iterator"])
def test_the_sample_covers_strings_every_dtype_and_every_shard_end(pristine_family, name):
    from pipeline.tf_judge import choose_sample

    family = pristine_family(name)
    with open(index_filename(family.prefix), "rb") as f:
        true_bytes = f.read()
    index = read_index(true_bytes)
    sample = choose_sample(true_bytes)
    names = {}
    for key, entry in index.data_entries():
        names.setdefault(decode_slice_key(key)[0] if is_slice_key(key) else key.decode(), []).append(entry)
    assert {n for n, es in names.items() if es[0].dtype in (DT_STRING, DT_VARIANT)} <= set(sample.keys)
    assert {es[0].dtype for n, es in names.items() if n in sample.keys} == {es[0].dtype for es in names.values()}
    for shard in range(index.header.num_shards):
        placed = sorted((e.offset, n) for n, es in names.items() for e in es if e.shard_id == shard)
        assert {placed[0][1], placed[-1][1]} <= set(sample.keys), shard
    ok, message = tf_reads(_data_paths(family.prefix, index.header.num_shards), true_bytes)
    assert ok and "read" in message, message


def test_the_sample_reads_far_less_than_everything_and_still_catches_a_sampled_crc(pristine_family):
    """many_tensors has 4000 float tensors: the sample reads a handful, and a wrong CRC on one of them fails."""
    from pipeline.tf_judge import choose_sample

    family = pristine_family("many_tensors")
    with open(index_filename(family.prefix), "rb") as f:
        true_bytes = f.read()
    index = read_index(true_bytes)
    sample = choose_sample(true_bytes)
    assert len(sample.keys) < len(index.entries) // 100
    paths = _data_paths(family.prefix, index.header.num_shards)
    ok, message = tf_reads(paths, _crc_damaged(read_index(true_bytes), sample.keys[-1].encode()))
    assert not ok and "checksum" in message.lower(), message
    # A tensor outside the sample is the full check's to catch.
    outside = next(k for k, e in index.data_entries() if k.decode() not in sample.keys and e.size)
    damaged = _crc_damaged(read_index(true_bytes), outside)
    assert tf_reads(paths, damaged)[0]
    assert not tf_reads(paths, damaged, "full")[0]


def test_the_background_judge_gives_the_same_verdicts(pristine_family):
    """TensorFlow imported in a child process while the rebuild runs: same answers as in-process."""
    from pipeline.tf_judge import BackgroundJudge

    family = pristine_family("sharded")
    with open(index_filename(family.prefix), "rb") as f:
        true_bytes = f.read()
    index = read_index(true_bytes)
    paths = _data_paths(family.prefix, index.header.num_shards)
    ok, message = BackgroundJudge().judge(paths, true_bytes)
    assert ok and "parsed the rebuilt index" in message, message
    key = next(k for k, e in index.data_entries() if e.size)
    ok, message = BackgroundJudge("full").judge(paths, _crc_damaged(read_index(true_bytes), key))
    assert not ok and "checksum" in message.lower(), message
    idle = BackgroundJudge()
    idle.cancel()
    assert idle._child.returncode is not None
