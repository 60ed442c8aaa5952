"""Property tests: varints, entry protos, slice keys, the table writer/reader, CRC combination;
and, for random tensor sets, byte-identity with the index TensorFlow's SaveV2 writes."""

import google_crc32c
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from source_helpers import local_source

from tfbundle import (
    BundleEntry,
    BundleHeader,
    TensorSlice,
    checksummer,
    crc_combine,
    data_filename,
    decode_slice_key,
    encode_slice_key,
    measure,
    read_index,
    scan_spans,
    write_index,
)
from tfbundle.dtypes import DT_STRING, DT_VARIANT
from tfbundle.table import build_table, read_table
from tfbundle.varint import VarintReader, decode_varint, encode_varint

INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
UINT64 = st.integers(0, 2 ** 64 - 1)


# --- varints and proto fields ---------------------------------------------------------------------

@given(UINT64)
def test_varint_round_trip(value):
    encoded = encode_varint(value)
    assert decode_varint(encoded + b"\x99") == (value, len(encoded))
    assert len(encoded) == max(1, -(-value.bit_length() // 7))


@given(st.integers(-(2 ** 63), -1))
def test_negative_varints_are_ten_byte_int64(value):
    encoded = encode_varint(value)
    assert len(encoded) == 10
    decoded, _ = decode_varint(encoded)
    assert decoded == value + (1 << 64)      # two's complement, as protobuf writes an int64


@given(st.integers(2, 0x7F))
def test_a_varint_past_64_bits_is_a_format_error_not_a_crash(top):
    """Random bytes (a decoy data file read as strings) can hold ten-byte varints that fit no uint64."""
    import pytest

    from tfbundle import FormatError

    with pytest.raises(FormatError, match="does not fit in 64 bits"):
        decode_varint(b"\xff" * 9 + bytes([top]))
    assert decode_varint(b"\xff" * 9 + b"\x01") == (2 ** 64 - 1, 10)   # the largest uint64 still decodes


@given(st.binary(max_size=12))
@example(b"\xff" * 9 + b"\x02")
@example(b"\xff" * 9 + b"\x01")
@example(b"\xff" * 11)
def test_the_streamed_varint_reader_agrees_with_decode_varint(raw):
    """String and variant tensors read their lengths a byte at a time; they must accept and refuse as
    decode_varint does, so no length wider than a uint64 reaches struct.pack (a crash found by CI)."""
    from tfbundle import FormatError

    try:
        expected = decode_varint(raw)
    except FormatError as refused:
        expected = "past the end" if "past the end" in str(refused) else "refused"
    reader, got = VarintReader(), "past the end"
    try:
        for used, byte in enumerate(raw, 1):
            if reader.feed_byte(byte):
                got = (reader.take(), used)
                break
    except FormatError:
        got = "refused"
    assert got == expected


@pytest.mark.parametrize("dtype_number", [DT_STRING, DT_VARIANT])
def test_a_length_past_64_bits_in_a_tensor_is_a_format_error(tmp_path, dtype_number):
    """Random bytes measured as a string or variant tensor: a refusal with a reason, never struct.error."""
    from tfbundle import FormatError

    path = tmp_path / "decoy.data-00000-of-00001"
    path.write_bytes(b"\xff" * 9 + b"\x7f" + bytes(4000))
    with pytest.raises(FormatError, match="does not fit in 64 bits"):
        measure(local_source(str(path)), 0, dtype_number, (3,))
    path.write_bytes(b"\xff" * 9 + b"\x01" + bytes(4000))        # the largest uint64 is a length, not a crash
    with pytest.raises(FormatError):
        measure(local_source(str(path)), 0, dtype_number, (3,))


EXTENTS = st.one_of(st.none(), st.tuples(INT64, INT64.filter(lambda n: n != -1)))
ENTRIES = st.builds(
    BundleEntry,
    dtype=st.integers(0, 33),
    shape=st.lists(st.integers(-1, 2 ** 40), max_size=5).map(tuple),
    shard_id=st.integers(-(2 ** 31), 2 ** 31 - 1),
    offset=INT64,
    size=INT64,
    crc32c=st.integers(0, 2 ** 32 - 1),
    slices=st.lists(st.lists(EXTENTS, max_size=3).map(lambda e: TensorSlice(tuple(e))), max_size=3).map(tuple),
)


@pytest.mark.tf
@settings(max_examples=200, deadline=None)
@given(ENTRIES)
def test_entry_encoding_equals_protobufs_serialization(entry):
    from tensorflow.core.protobuf import tensor_bundle_pb2

    proto = tensor_bundle_pb2.BundleEntryProto(dtype=entry.dtype, shard_id=entry.shard_id, offset=entry.offset,
                                               size=entry.size, crc32c=entry.crc32c)
    proto.shape.SetInParent()
    for size in entry.shape:
        proto.shape.dim.add(size=size)
    for piece in entry.slices:
        slice_proto = proto.slices.add()
        for extent in piece.extents:
            extent_proto = slice_proto.extent.add()
            if extent is not None:
                extent_proto.start, extent_proto.length = extent
    serialized = proto.SerializeToString(deterministic=True)
    assert entry.encode() == serialized
    if min(entry.shard_id, entry.offset, entry.size) >= 0:   # the reader takes these as unsigned
        assert BundleEntry.decode(serialized) == entry


# --- slice keys -----------------------------------------------------------------------------------

@given(st.binary(min_size=1, max_size=60), st.lists(EXTENTS, max_size=6))
def test_slice_key_round_trip(name, extents):
    piece = TensorSlice(tuple(extents))
    key = encode_slice_key(name, piece)
    assert decode_slice_key(key) == (name.decode("utf-8", "surrogateescape"), piece)


@given(st.binary(min_size=1, max_size=20), st.binary(min_size=1, max_size=20),
       st.lists(EXTENTS, min_size=1, max_size=3))
def test_slice_keys_of_one_slice_sort_like_their_names(a, b, extents):
    """OrderedCode keeps name order: slices of `a` sort before slices of `b` when a < b (no prefix)."""
    if a == b or a.startswith(b) or b.startswith(a):
        return
    piece = TensorSlice(tuple(extents))
    assert (encode_slice_key(a, piece) < encode_slice_key(b, piece)) == (a < b)


# --- table writer and reader ----------------------------------------------------------------------

def big_value(length: int, fill: int) -> bytes:
    return bytes([fill]) * length


VALUES = st.one_of(
    st.binary(max_size=300),
    st.builds(big_value, st.integers(100_000, 140_000), st.integers(0, 255)),
    st.builds(big_value, st.integers(524_200, 560_000), st.integers(0, 255)),   # >= 2 blocks: TF flushes first
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.dictionaries(st.binary(max_size=40), VALUES, max_size=25))
def test_table_round_trip(items):
    pairs = sorted(items.items())
    table = build_table(pairs)
    read, blocks = read_table(table)
    assert read == pairs
    block_starts, start = set(), 0
    for block in blocks:
        block_starts.add(start)
        start += block.entries
    assert start == len(pairs)
    for i, (key, value) in enumerate(pairs):
        if len(key) + len(value) >= 2 * 262144:   # TF flushes before an overly large entry
            assert i in block_starts


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_crc_combine_equals_crc_of_concatenation(a, b):
    assert crc_combine(google_crc32c.value(a), google_crc32c.value(b), len(b)) == google_crc32c.value(a + b)


# --- byte-identity with TensorFlow's own SaveV2 ---------------------------------------------------

NUMERIC_DTYPES = ["float32", "float64", "int32", "int8", "uint8", "int64", "bool", "float16", "bfloat16",
                  "complex64", "uint16"]


@st.composite
def tensor_sets(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=80).filter(lambda n: not n.startswith("\x00")),
                          min_size=1, max_size=12, unique=True))
    out = []
    for name in names:
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        if draw(st.booleans()) and draw(st.booleans()):
            count = int(np.prod(shape)) if shape else 1
            out.append((name, "string", shape, draw(st.lists(st.binary(max_size=300), min_size=count,
                                                             max_size=count))))
        else:
            out.append((name, draw(st.sampled_from(NUMERIC_DTYPES)), shape, draw(st.integers(0, 2 ** 32 - 1))))
    return out


def tf_tensor(dtype_name, shape, payload):
    import tensorflow as tf

    if dtype_name == "string":
        return tf.constant(np.array(payload, dtype=object).reshape(shape), tf.string)
    rng = np.random.default_rng(payload)
    values = rng.standard_normal(shape) * 100
    if dtype_name == "complex64":
        values = values + 1j * rng.standard_normal(shape)
    return tf.cast(tf.constant(values), tf.dtypes.as_dtype(dtype_name))


@pytest.mark.tf
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensor_sets())
def test_index_rebuilt_from_data_equals_the_one_tensorflow_writes(tmp_path, tensors):
    import tensorflow as tf

    from tfbundle import dtype

    prefix = str(tmp_path / f"random-{abs(hash(tuple(t[0] for t in tensors)))}")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[t[0] for t in tensors], shape_and_slices=[""] * len(tensors),
                      tensors=[tf_tensor(*t[1:]) for t in tensors])
    with open(prefix + ".index", "rb") as f:
        original = f.read()

    entries, offset = {}, 0
    with local_source(data_filename(prefix, 0, 1)) as source:
        for name, dtype_name, shape, _ in tensors:
            number = dtype(dtype_name).number
            size = measure(source, offset, number, shape)
            summer = checksummer(number, shape)
            scan_spans(source, [(offset, size, summer)], chunk_size=64)
            entries[name] = BundleEntry(number, shape, 0, offset, size, summer.masked_crc())
            offset += size
        assert offset == source.size
    assert write_index(BundleHeader(), entries) == original
    assert read_index(original).entries == {name.encode(): e for name, e in entries.items()}


def test_keys_out_of_order_are_named_in_words_not_as_python_bytes():
    with pytest.raises(ValueError) as raised:
        build_table([(b"b/kernel", b"2"), (b"a/\xff", b"1")])
    assert str(raised.value) == "table keys out of order: a/\\xff after b/kernel"
