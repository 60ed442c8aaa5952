"""TF1 `.meta` source: the Saver's graph names, orders, slices and sizes what it wrote."""

import os
import shutil

import pytest
from source_helpers import (
    assert_rebuilt_identically,
    assert_same_layout,
    context,
    orphan,
    tensor_values,
    written_layout,
)

from recovery.layout import Refusal
from recovery.protos import read_meta_graph
from recovery.sources import OrphanContext
from recovery.sources.meta_graph import candidate_meta_paths, meta_graph_layouts

pytestmark = pytest.mark.tf

STEPS = (100, 200)


def _graph_variables(v1, tf):
    v1.get_variable("dense/kernel", [4, 3])
    v1.get_variable("emb", [10, 3], partitioner=v1.fixed_size_partitioner(3))
    v1.get_variable("legacy_ref", [2], use_resource=False)       # a VariableV2, not a VarHandleOp
    v1.get_variable("Zeta", [2], dtype=tf.int32, initializer=v1.ones_initializer())
    return v1.train.get_or_create_global_step()


@pytest.fixture(scope="module")
def tf1_runs(tmp_path_factory):
    """TF1 Saver runs written by TensorFlow: name -> directory (prefixes are `model.ckpt-STEP`)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    root = tmp_path_factory.mktemp("tf1")
    runs = {name: str(root / name) for name in ("sharded", "no_saver_def", "table")}
    for directory in runs.values():
        os.makedirs(directory)

    # sharded=True over two devices: one SaveV2 and one data shard per device.
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            global_step = _graph_variables(v1, tf)
        with tf.device("/cpu:1"):
            v1.get_variable("b/bias", [5])
            v1.get_variable("b/emb", [6, 2], partitioner=v1.fixed_size_partitioner(2))
        saver = v1.train.Saver(sharded=True)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as session:
            session.run(v1.global_variables_initializer())
            for step in STEPS:
                session.run(global_step.assign(step))
                saver.save(session, os.path.join(runs["sharded"], "model.ckpt"), global_step=step)

    # A .meta exported before any Saver existed: no saver_def, only the collections.
    with tf.Graph().as_default():
        global_step = _graph_variables(v1, tf)
        v1.train.export_meta_graph(os.path.join(runs["no_saver_def"], "model.ckpt-100.meta"))
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(global_step.assign(100))
            saver.save(session, os.path.join(runs["no_saver_def"], "model.ckpt"), global_step=100,
                       write_meta_graph=False)

    # State that is not a variable: a hash table's exported keys and values.
    with tf.Graph().as_default():
        global_step = _graph_variables(v1, tf)
        tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1, name="vocab")
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, os.path.join(runs["table"], "model.ckpt"), global_step=100)
    return runs


@pytest.fixture
def run_copy(tf1_runs, tmp_path):
    def copy(name: str) -> str:
        target = str(tmp_path / name)
        shutil.copytree(tf1_runs[name], target)
        return target
    return copy


def _orphaned(prefix: str):
    values = tensor_values(prefix)
    original = orphan(prefix)
    return context(prefix), original, values


def test_saver_checkpoint_with_partitioned_variable(family_copy):
    family = family_copy("tf1_saver")
    ctx, original, values = _orphaned(family.prefix)
    [layout] = meta_graph_layouts(ctx)
    assert layout.kind == "meta-graph" and layout.source == "TF1 graph model.ckpt-200.meta"
    assert any(t.slice for t in layout.tensors)
    assert_same_layout(layout, written_layout(original, ctx))
    assert_rebuilt_identically(ctx, [meta_graph_layouts], original, values)


def test_sharded_saver_one_shard_per_device(run_copy):
    prefix = os.path.join(run_copy("sharded"), "model.ckpt-200")
    ctx, original, values = _orphaned(prefix)
    assert ctx.num_shards == 2
    [layout] = meta_graph_layouts(ctx)
    assert {t.shard for t in layout.tensors if t.key == "b/emb"} == {1}
    assert_same_layout(layout, written_layout(original, ctx))
    assert_rebuilt_identically(ctx, [meta_graph_layouts], original, values)


def test_the_meta_of_another_step_serves(run_copy):
    directory = run_copy("sharded")
    prefix = os.path.join(directory, "model.ckpt-200")
    os.remove(prefix + ".meta")
    ctx, original, values = _orphaned(prefix)
    [layout] = meta_graph_layouts(ctx)
    assert layout.source == "TF1 graph model.ckpt-100.meta"
    assert_same_layout(layout, written_layout(original, ctx))
    assert_rebuilt_identically(ctx, [meta_graph_layouts], original, values)


def test_nearest_step_first_and_only_the_same_run():
    listing = [{"name": f"/d/{name}", "type": "file"} for name in (
        "model.ckpt-100.meta", "model.ckpt-300.meta", "model.ckpt-150.meta", "model.ckpt-250.meta",
        "other-200.meta", "model.ckpt-200.data-00000-of-00001", "model.ckpt.meta")]
    ctx = OrphanContext(fs=None, prefix="/d/model.ckpt-200", display_prefix="/d/model.ckpt-200", data_files=[],
                        directory_listing=listing)
    assert candidate_meta_paths(ctx) == ["/d/model.ckpt-250.meta", "/d/model.ckpt-150.meta",
                                         "/d/model.ckpt-300.meta", "/d/model.ckpt-100.meta"]
    ctx.directory_listing = listing + [{"name": "/d/model.ckpt-200.meta", "type": "file"}]
    assert candidate_meta_paths(ctx) == ["/d/model.ckpt-200.meta"]


def test_without_saver_def_the_default_savers_variables(run_copy):
    prefix = os.path.join(run_copy("no_saver_def"), "model.ckpt-100")
    with open(prefix + ".meta", "rb") as f:
        assert read_meta_graph(f.read()).saver is None
    ctx, original, values = _orphaned(prefix)
    [layout] = meta_graph_layouts(ctx)
    assert_same_layout(layout, written_layout(original, ctx))
    assert_rebuilt_identically(ctx, [meta_graph_layouts], original, values)


def test_v1_saver_is_refused(family_copy):
    from tensorflow.core.protobuf import meta_graph_pb2, saver_pb2

    family = family_copy("tf1_saver")
    meta = meta_graph_pb2.MetaGraphDef()
    with open(family.meta_path, "rb") as f:
        meta.ParseFromString(f.read())
    meta.saver_def.version = saver_pb2.SaverDef.V1
    with open(family.meta_path, "wb") as f:
        f.write(meta.SerializeToString())
    orphan(family.prefix)
    [refusal] = meta_graph_layouts(context(family.prefix))
    assert isinstance(refusal, Refusal) and "V1" in refusal.reason


def test_state_that_is_not_a_variable_is_refused_by_name(run_copy):
    prefix = os.path.join(run_copy("table"), "model.ckpt-100")
    orphan(prefix)
    [refusal] = meta_graph_layouts(context(prefix))
    assert isinstance(refusal, Refusal)
    assert "vocab-keys" in refusal.reason and "LookupTableExportV2" in refusal.reason


def test_a_graph_with_other_sharding_is_refused(family_copy, tf1_runs):
    family = family_copy("tf1_saver")
    shutil.copy(os.path.join(tf1_runs["sharded"], "model.ckpt-200.meta"), family.meta_path)
    orphan(family.prefix)
    [refusal] = meta_graph_layouts(context(family.prefix))
    assert isinstance(refusal, Refusal) and "2 shard(s); this checkpoint has 1" in refusal.reason


def test_tf2_data_and_missing_meta_are_not_its_business(family_copy):
    tf2 = family_copy("keras3_adam")
    orphan(tf2.prefix)
    assert meta_graph_layouts(context(tf2.prefix)) == []
    tf1 = family_copy("tf1_saver")
    os.remove(tf1.meta_path)
    orphan(tf1.prefix)
    assert meta_graph_layouts(context(tf1.prefix)) == []
