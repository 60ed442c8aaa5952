"""The format library against checkpoints TensorFlow wrote in this session: read, rewrite, checksum, locate."""

import glob

import pytest
from source_helpers import local_source

from samples import EXTRA_FAMILY_NAMES, FAMILY_NAMES
from tfbundle import (
    OBJECT_GRAPH_KEY,
    checksummer,
    data_filename,
    decode_slice_key,
    is_slice_key,
    locate_object_graph,
    measure,
    read_index,
    scan_spans,
    write_index,
)

pytestmark = pytest.mark.tf

ALL_FAMILIES = FAMILY_NAMES + EXTRA_FAMILY_NAMES


def prefixes_of(family) -> list[str]:
    return [family.prefix, *family.siblings]


def index_bytes(prefix: str) -> bytes:
    with open(prefix + ".index", "rb") as f:
        return f.read()


def data_path(prefix: str, index, shard: int) -> str:
    return data_filename(prefix, shard, index.header.num_shards)


def data_order(index) -> list[tuple[int, int, bytes]]:
    """(shard, offset, key) of every stored tensor as it lies in the data files.

    A zero-byte tensor sits at the offset where the next tensor starts, and was written before it.
    """
    stored = [(e.shard_id, e.offset, e.size > 0, k) for k, e in index.data_entries()]
    return [(shard, offset, key) for shard, offset, _, key in sorted(stored)]


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_reader_reports_what_tensorflow_reports(name, pristine_family):
    import tensorflow as tf

    for prefix in prefixes_of(pristine_family(name)):
        index = read_index(index_bytes(prefix))
        reader = tf.train.load_checkpoint(prefix)
        tf_shapes = reader.get_variable_to_shape_map()
        tf_dtypes = reader.get_variable_to_dtype_map()
        names = index.tensor_names()
        assert sorted(names) == sorted(tf_shapes)
        for key in names:
            entry = index.entries[key.encode("utf-8")]
            assert entry.dtype == tf_dtypes[key].as_datatype_enum, key
            assert list(entry.shape) == tf_shapes[key], key


@pytest.mark.parametrize("name", ["sharded", "tf1_saver"])
def test_partitioned_tensors_appear_under_their_full_name(name, pristine_family):
    import tensorflow as tf

    prefix = pristine_family(name).prefix
    index = read_index(index_bytes(prefix))
    tf_shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    slice_keys = [k for k in index.entries if is_slice_key(k)]
    assert slice_keys, "the family should contain a partitioned tensor"
    for full_name in {decode_slice_key(k)[0] for k in slice_keys}:
        full = index.entries[full_name.encode()]
        assert len(full.slices) == len(index.slices_of(full_name)) > 1
        assert list(full.shape) == tf_shapes[full_name]
        covered = sum(entry.size for _, entry in index.slices_of(full_name))
        assert covered == 4 * full.shape[0] * full.shape[1]   # float32 slices tile the full tensor


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_writing_read_entries_back_gives_tensorflows_index_byte_for_byte(name, pristine_family):
    for prefix in prefixes_of(pristine_family(name)):
        original = index_bytes(prefix)
        index = read_index(original)
        assert write_index(index.header, index.entries) == original


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_checksums_computed_from_data_equal_tensorflows(name, pristine_family):
    for prefix in prefixes_of(pristine_family(name)):
        index = read_index(index_bytes(prefix))
        by_shard = {}
        for key, entry in index.data_entries():
            summer = checksummer(entry.dtype, entry.shape)
            by_shard.setdefault(entry.shard_id, []).append((entry.offset, entry.size, summer, key, entry))
        for shard, spans in by_shard.items():
            spans.sort(key=lambda s: (s[0], s[1] > 0))
            with local_source(data_path(prefix, index, shard)) as source:
                # Small chunks so tensors straddle chunk boundaries, as they do in big files.
                scan_spans(source, [s[:3] for s in spans], chunk_size=97)
            for _, size, summer, key, entry in spans:
                assert summer.done, key
                assert summer.size == size, key
                assert summer.masked_crc() == entry.crc32c, key


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_measure_finds_every_size_from_the_data(name, pristine_family):
    prefix = pristine_family(name).prefix
    index = read_index(index_bytes(prefix))
    sources = {}
    try:
        for key, entry in index.data_entries():
            if entry.shard_id not in sources:
                sources[entry.shard_id] = local_source(data_path(prefix, index, entry.shard_id))
            assert measure(sources[entry.shard_id], entry.offset, entry.dtype, entry.shape) == entry.size, key
    finally:
        for source in sources.values():
            source.close()


def test_the_families_cover_strings_variants_and_empty_tensors(pristine_family):
    seen = {}
    for name in ALL_FAMILIES:
        for _, entry in read_index(index_bytes(pristine_family(name).prefix)).data_entries():
            seen.setdefault(entry.dtype, []).append(entry)
    assert {1, 2, 3, 4, 6, 7, 8, 9, 10, 14, 19, 21} <= set(seen)
    strings = seen[7]
    assert any(e.shape == (3,) for e in strings), "a string vector (with an empty element) in mixed_dtypes"
    assert any(e.size == 0 and e.shape == (0, 4) for e in seen[1]), "a 0-element float tensor"


@pytest.mark.parametrize("name", [n for n in ALL_FAMILIES if not n.startswith("tf1_")])   # TF1 data has no graph
def test_object_graph_at_the_end_lists_keys_in_data_order(name, pristine_family):
    for prefix in prefixes_of(pristine_family(name)):
        index = read_index(index_bytes(prefix))
        last_shard = index.header.num_shards - 1
        with local_source(data_path(prefix, index, last_shard)) as source:
            located = locate_object_graph(source)
        assert located is not None
        graph_entry = index.entries[OBJECT_GRAPH_KEY.encode()]
        assert (graph_entry.shard_id, graph_entry.offset, graph_entry.size) == (last_shard, located.offset,
                                                                              located.size)
        assert located.masked_crc == graph_entry.crc32c

        attribute_keys = located.graph.checkpoint_keys()
        stored_attributes = []
        for _, _, key in data_order(index):
            full_name = decode_slice_key(key)[0] if is_slice_key(key) else key.decode()
            attribute = attribute_of(full_name, attribute_keys)
            if not stored_attributes or stored_attributes[-1] != attribute:   # slices, multi-spec saveables
                stored_attributes.append(attribute)
        assert attribute_keys + [OBJECT_GRAPH_KEY] == stored_attributes


def attribute_of(name: str, attribute_keys: list[str]) -> str:
    """The object-graph attribute a bundle key belongs to.

    Usually the key itself; a legacy-named saveable appends its tensor names to the attribute key
    (a tf.data iterator stores `it/.ATTRIBUTES/ITERATOR` as `it/.ATTRIBUTES/ITERATOR_STATE`).
    """
    if name in attribute_keys or name == OBJECT_GRAPH_KEY:
        return name
    (owner,) = [key for key in attribute_keys if name.startswith(key)]
    return owner


def test_tf1_data_has_no_object_graph(pristine_family):
    prefix = pristine_family("tf1_saver").prefix
    (path,) = glob.glob(prefix + ".data-*")
    with local_source(path) as source:
        assert locate_object_graph(source) is None


def test_many_tensors_spans_several_blocks_and_round_trips(pristine_family):
    original = index_bytes(pristine_family("many_tensors").prefix)
    index = read_index(original)
    assert len(index.blocks) >= 3
    assert sum(block.entries for block in index.blocks) == len(index.entries) + 1   # + the header
    assert index.to_bytes() == original
