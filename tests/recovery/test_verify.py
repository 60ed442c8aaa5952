"""Bit-rot checks on healthy checkpoints: a flipped bit is found and the tensor named readably."""

from recovery import storage
from recovery.verify import verify_data
from tfbundle import data_filename, index_filename, is_slice_key, read_index


def test_verify_data_is_clean_on_tensorflows_own_checkpoint(pristine_family):
    family = pristine_family("mixed_dtypes")
    fs, path = storage.url_to_fs(family.prefix)
    assert verify_data(fs, path) == []


def test_a_flipped_bit_in_a_slice_is_named_by_tensor_and_extent(family_copy):
    family = family_copy("sharded")
    with open(index_filename(family.prefix), "rb") as f:
        index = read_index(f.read())
    key, entry = next((k, e) for k, e in index.data_entries() if is_slice_key(k) and e.size)
    path = data_filename(family.prefix, entry.shard_id, index.header.num_shards)
    with open(path, "r+b") as f:
        f.seek(entry.offset)
        byte = f.read(1)
        f.seek(entry.offset)
        f.write(bytes([byte[0] ^ 1]))
    fs, prefix = storage.url_to_fs(family.prefix)
    problems = verify_data(fs, prefix)
    assert len(problems) == 1, problems
    assert "table/.ATTRIBUTES/VARIABLE_VALUE[" in problems[0] and "checksum does not match" in problems[0]
    assert "\\x00" not in problems[0] and "\x00" not in problems[0]
