"""How much the object-graph search reads: a TF1 file (no graph) costs one 1 MiB tail read per
shard, and a TF2 graph larger than that window is still found."""

import os

import pytest

from tfbundle import OBJECT_GRAPH_KEY, ByteSource, index_filename, locate_object_graph, read_index

pytestmark = pytest.mark.tf
MIB = 1 << 20


class CountingSource(ByteSource):
    """A local ByteSource that adds up the bytes every positional read asked for."""

    def __init__(self, path: str):
        super().__init__(open(path, "rb"), name=path)
        self.bytes_read = 0

    def read_at(self, offset: int, length: int) -> bytes:
        data = super().read_at(offset, length)
        self.bytes_read += len(data)
        return data


def _tf():
    from pipeline.tensorflow_env import import_tensorflow

    return import_tensorflow()


@pytest.fixture(scope="module")
def tf1_large(tmp_path_factory):
    """A TF1 Saver checkpoint with 48 MiB of variables across two shards."""
    tf = _tf()
    v1 = tf.compat.v1
    directory = str(tmp_path_factory.mktemp("tf1-large"))
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            v1.get_variable("a", [3 * MIB], initializer=v1.random_normal_initializer(seed=1))
            v1.get_variable("b", [3 * MIB], initializer=v1.random_normal_initializer(seed=2))
        saver = v1.train.Saver(sharded=True)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return saver.save(session, os.path.join(directory, "model.ckpt"), global_step=5)


@pytest.fixture(scope="module")
def tf2_big_graph(tmp_path_factory):
    """A TF2 checkpoint whose object graph is over 1 MiB (thousands of long-named variables)."""
    tf = _tf()
    module = tf.Module()
    module.params = {f"{'layer_with_a_rather_long_descriptive_name_' * 2}{i:05d}": tf.Variable(float(i))
                     for i in range(4500)}
    return tf.train.Checkpoint(module=module).save(os.path.join(str(tmp_path_factory.mktemp("tf2-big")), "ckpt"))


def test_tf1_data_costs_one_tail_read_per_shard(tf1_large):
    data_files = sorted(p for p in os.listdir(os.path.dirname(tf1_large)) if ".data-" in p)
    assert data_files
    for name in data_files:
        path = os.path.join(os.path.dirname(tf1_large), name)
        with CountingSource(path) as source:
            assert locate_object_graph(source) is None
            assert source.bytes_read <= MIB + 16, (name, source.size, source.bytes_read)


def test_a_graph_over_one_mib_is_still_found(tf2_big_graph):
    index = read_index(open(index_filename(tf2_big_graph), "rb").read())
    graph_entry = index.entries[OBJECT_GRAPH_KEY.encode()]
    assert graph_entry.size > MIB   # the case under test: the graph does not fit the first window
    path = tf2_big_graph + ".data-00000-of-00001"
    with CountingSource(path) as source:
        located = locate_object_graph(source)
    assert located is not None
    assert (located.offset, located.size, located.masked_crc) == (graph_entry.offset, graph_entry.size,
                                                                  graph_entry.crc32c)
    assert set(located.graph.checkpoint_keys()) == {k.decode() for k, e in index.entries.items()
                                                    if k != OBJECT_GRAPH_KEY.encode()}
