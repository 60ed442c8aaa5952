"""Data files against what their index needs, and shard coverage by name: the one judgement that the
audit's verdicts and inspect's problems both use, on a real TensorFlow-written index."""

import os

import pytest
from source_helpers import classify_local

from recovery.sizes import read_sized_index, shard_sizes
from recovery.tasks import OrphanTask
from tfbundle import BundleEntry, FormatError, index_filename, parse_data_filename, read_index, shard_coverage
from tfbundle.protos import tensor_bundle_pb2
from tfbundle.table import build_table, read_table


def test_sizes_of_a_healthy_checkpoint_match_and_damaged_ones_are_named(pristine_family):
    family = pristine_family("sharded")
    with open(index_filename(family.prefix), "rb") as f:
        index = read_index(f.read())
    directory = os.path.dirname(family.prefix)
    listed = {}
    for name in os.listdir(directory):
        parsed = parse_data_filename(os.path.join(directory, name))
        if parsed and parsed.prefix == family.prefix:
            listed[parsed.shard] = os.path.getsize(os.path.join(directory, name))
    assert index.header.num_shards == len(listed) >= 3

    healthy = shard_sizes(index, listed.get)
    assert [s.shard for s in healthy] == sorted(listed)
    assert not any(s.missing or s.short or s.long for s in healthy)
    assert [s.needed for s in healthy] == [listed[s] for s in sorted(listed)]

    damaged = {**listed, 0: listed[0] - 1, 1: listed[1] + 5}
    del damaged[max(listed)]
    verdicts = {s.shard: (s.missing, s.short, s.long) for s in shard_sizes(index, damaged.get)}
    assert verdicts[0] == (False, True, False)
    assert verdicts[1] == (False, False, True)
    assert verdicts[max(listed)] == (True, False, False)


def test_shard_coverage_by_name():
    def names(*shards):
        return [parse_data_filename(f"/d/ckpt-1.data-{s:05d}-of-{n:05d}") for s, n in shards]

    assert shard_coverage(names((0, 2), (1, 2))).complete
    gap = shard_coverage(names((0, 3), (2, 3)))
    assert (gap.complete, gap.counts, gap.missing) == (False, (3,), (1,))
    mixed = shard_coverage(names((0, 2), (0, 1)))
    assert (mixed.complete, mixed.counts) == (False, (1, 2))
    beyond = shard_coverage(names((0, 1), (3, 1)))
    assert (beyond.complete, beyond.missing, beyond.beyond) == (False, (), (3,))


def test_an_index_with_a_negative_offset_cannot_be_judged_by_its_sizes(family_copy):
    """protobuf decodes int64 fields signed: TensorFlow never writes a negative offset, and no size can be
    judged by one, so classification takes such an index for unreadable (a rebuild staged beside it)."""
    family = family_copy("keras3_adam")
    path = index_filename(family.prefix)
    with open(path, "rb") as f:
        raw = f.read()
    assert read_sized_index(raw).entries == read_index(raw).entries          # TensorFlow's own: accepted
    items, _ = read_table(raw)
    position = next(i for i, (key, value) in enumerate(items) if key and BundleEntry.decode(value).size)
    proto = tensor_bundle_pb2.BundleEntryProto.FromString(items[position][1])
    proto.offset = -8
    items[position] = (items[position][0], proto.SerializeToString())
    with open(path, "wb") as f:
        f.write(build_table(items))
    with open(path, "rb") as f:
        damaged = f.read()
    assert read_index(damaged)         # it parses: the damage is in a value, not in the encoding
    with pytest.raises(FormatError, match="field offset is -8, not a non-negative number"):
        read_sized_index(damaged)
    task = classify_local(os.path.dirname(family.prefix))[family.prefix]
    assert isinstance(task, OrphanTask) and task.stage_only and "field offset is -8" in task.finding
