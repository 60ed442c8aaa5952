"""Format details checked against TensorFlow itself: damaged tables, the dtype table, slice keys,
indexes written by raw SaveV2 calls (including TF's flush before an overly large entry)."""

import struct

import google_crc32c
import pytest
from source_helpers import local_source

from tfbundle import (
    BundleEntry,
    BundleHeader,
    FormatError,
    TensorSlice,
    checksummer,
    data_filename,
    decode_slice_key,
    dtype,
    encode_slice_key,
    is_slice_key,
    measure,
    read_index,
    scan_spans,
    write_index,
)

pytestmark = pytest.mark.tf


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def save_v2(prefix: str, names, tensors, slice_specs=None) -> bytes:
    """Let TensorFlow's SaveV2 kernel write one bundle; return its index bytes."""
    import tensorflow as tf

    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=tf.constant(names, tf.string),
                      shape_and_slices=tf.constant(slice_specs or [""] * len(names), tf.string),
                      tensors=list(tensors))
    return read_bytes(prefix + ".index")


def entries_from_data(prefix: str, names, dtypes_and_shapes) -> dict:
    """What a rebuild does: offsets in SaveV2 order, sizes and CRCs measured from the data file."""
    entries, offset = {}, 0
    with local_source(data_filename(prefix, 0, 1)) as source:
        for name, (dt, shape) in zip(names, dtypes_and_shapes):
            size = measure(source, offset, dt, shape)
            summer = checksummer(dt, shape)
            scan_spans(source, [(offset, size, summer)])
            entries[name] = BundleEntry(dt, tuple(shape), 0, offset, size, summer.masked_crc())
            offset += size
        assert offset == source.size
    return entries


# --- damaged tables --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def healthy_index(pristine_family) -> bytes:
    return read_bytes(pristine_family("keras3_adam").prefix + ".index")


def test_short_file_is_reported_as_too_short(healthy_index):
    with pytest.raises(FormatError, match="too short"):
        read_index(healthy_index[-40:])


def test_bad_magic_is_reported(healthy_index):
    damaged = healthy_index[:-1] + bytes([healthy_index[-1] ^ 0xFF])
    with pytest.raises(FormatError, match="bad magic"):
        read_index(damaged)


def test_flipped_byte_in_a_data_block_is_a_block_checksum_mismatch(healthy_index):
    block = read_index(healthy_index).blocks[0]
    position = block.offset + block.size // 2
    damaged = healthy_index[:position] + bytes([healthy_index[position] ^ 0x01]) + healthy_index[position + 1:]
    with pytest.raises(FormatError, match="block checksum mismatch"):
        read_index(damaged)


# --- dtypes ---------------------------------------------------------------------------------------

def test_dtype_table_matches_tensorflows_types_proto():
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    checked = 0
    for proto_name, number in types_pb2.DataType.items():
        if number == 0 or number >= 100:   # DT_INVALID and the *_REF variants never reach a checkpoint
            continue
        ours, theirs = dtype(number), tf.dtypes.as_dtype(number)
        assert ours.number == number
        assert ours.name == theirs.name, proto_name
        assert dtype(ours.name) is ours
        if proto_name in ("DT_STRING", "DT_VARIANT", "DT_RESOURCE"):
            assert ours.itemsize is None
        else:
            assert ours.itemsize == theirs.size, proto_name
        checked += 1
    assert checked >= 33


def test_narrow_dtypes_are_stored_one_byte_per_element(tmp_path):
    """float8/int4/int2/float4 elements each take a whole byte on disk (checked, not assumed)."""
    import numpy as np
    import tensorflow as tf

    numbers = list(range(24, 34))
    prefix = str(tmp_path / "narrow")
    tensors = [tf.constant(np.arange(5).astype(tf.dtypes.as_dtype(n).as_numpy_dtype)) for n in numbers]
    original = save_v2(prefix, [f"t{n}".encode() for n in numbers], tensors)
    assert all(e.size == 5 for e in read_index(original).entries.values())
    rebuilt = entries_from_data(prefix, [f"t{n}".encode() for n in numbers], [(n, (5,)) for n in numbers])
    assert write_index(BundleHeader(), rebuilt) == original


# --- slice keys -----------------------------------------------------------------------------------

SLICED_SAVES = [
    # (name, full shape, slice spec as TF writes it, extents we expect, stored tensor shape)
    (b"part", "10 5", "0,4:-", ((0, 4), None), (4, 5)),
    (b"we\x00ird\xffname", "6 2", "3,3:-", ((3, 3), None), (3, 2)),
    (b"big/start", "3000000000 2", "2999999990,3:-", ((2999999990, 3), None), (3, 2)),
    (b"rank3", "4 6 8", "1,2:0,6:3,5", ((1, 2), (0, 6), (3, 5)), (2, 6, 5)),
    (b"columns", "4 3", "-:1,2", (None, (1, 2)), (4, 2)),
]


def test_slice_keys_equal_the_keys_tensorflow_writes(tmp_path):
    import tensorflow as tf

    prefix = str(tmp_path / "sliced")
    names = [case[0] for case in SLICED_SAVES]
    specs = [f"{full} {spec}" for _, full, spec, _, _ in SLICED_SAVES]
    tensors = [tf.ones(shape, tf.float32) for *_, shape in SLICED_SAVES]
    original = save_v2(prefix, names, tensors, specs)
    index = read_index(original)
    for name, full, _, extents, _ in SLICED_SAVES:
        key = encode_slice_key(name, TensorSlice(extents))
        assert key in index.entries, (name, key)
        assert decode_slice_key(key) == (name.decode("utf-8", "surrogateescape"), TensorSlice(extents))
        full_entry = index.entries[name]
        assert full_entry.shape == tuple(int(d) for d in full.split())
        assert full_entry.slices == (TensorSlice(extents),)
    assert write_index(index.header, index.entries) == original


def test_slice_keys_of_the_sharded_family_re_encode_identically(pristine_family):
    for family in ("sharded", "tf1_saver"):
        index = read_index(read_bytes(pristine_family(family).prefix + ".index"))
        keys = [k for k in index.entries if is_slice_key(k)]
        assert len(keys) >= 3
        for key in keys:
            assert encode_slice_key(*decode_slice_key(key)) == key


# --- indexes TensorFlow writes from raw SaveV2 ----------------------------------------------------

def test_entry_larger_than_two_blocks_is_flushed_into_its_own_block_like_tensorflow(tmp_path):
    """TF flushes the current block before an entry of >= 2 x 256 KiB (a 600 KB tensor name here)."""
    import tensorflow as tf

    prefix = str(tmp_path / "huge_name")
    names = [b"alpha", b"m" * 600_000, b"omega"]
    tensors = [tf.constant([1.0, 2.0]), tf.constant([3], tf.int64), tf.constant([b"x", b""])]
    original = save_v2(prefix, names, tensors)
    index = read_index(original)
    assert len(index.blocks) == 3
    rebuilt = entries_from_data(prefix, names, [(1, (2,)), (9, (1,)), (7, (2,))])
    assert write_index(BundleHeader(), rebuilt) == original


def test_zero_element_and_scalar_tensors_match_tensorflow(tmp_path):
    import tensorflow as tf

    prefix = str(tmp_path / "edge")
    names = [b"scalar", b"empty", b"empty_strings", b"one_empty_string"]
    tensors = [tf.constant(7, tf.int32), tf.zeros([0, 3]), tf.constant([], tf.string), tf.constant([b""])]
    original = save_v2(prefix, names, tensors)
    rebuilt = entries_from_data(prefix, names, [(3, ()), (1, (0, 3)), (7, (0,)), (7, (1,))])
    assert write_index(BundleHeader(), rebuilt) == original


def test_snappy_compressed_blocks_are_read(healthy_index):
    """Old (TF <= 1.1) indexes could hold Snappy blocks: rebuild a real one-block index that way."""
    cramjam = pytest.importorskip("cramjam")
    index = read_index(healthy_index)
    (block,) = index.blocks
    contents = healthy_index[block.offset:block.offset + block.size]
    compressed = bytes(cramjam.snappy.compress_raw(contents))
    table = framed_block(compressed, 1)
    metaindex_handle = (len(table), 8)
    table += framed_block(restart_block(b""), 0)
    index_entry = restart_block(varint(0) + varint(len(block.separator)) + varint(len(handle(0, len(compressed))))
                                + block.separator + handle(0, len(compressed)))
    index_handle = (len(table), len(index_entry))
    table += framed_block(index_entry, 0)
    footer = (handle(*metaindex_handle) + handle(*index_handle)).ljust(40, b"\0")
    table += footer + struct.pack("<Q", 0xDB4775248B80FB57)
    old = read_index(table)
    assert old.blocks[0].compression == 1
    assert old.header == index.header and old.entries == index.entries


def varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def handle(offset: int, size: int) -> bytes:
    return varint(offset) + varint(size)


def restart_block(entries: bytes) -> bytes:
    """A block body with one restart point at 0 (one entry, or none)."""
    return entries + struct.pack("<II", 0, 1)


def framed_block(contents: bytes, block_type: int) -> bytes:
    from tfbundle import crc_mask

    trailer_type = bytes([block_type])
    return contents + trailer_type + struct.pack("<I", crc_mask(google_crc32c.value(contents + trailer_type)))
