"""Shared test steps: orphan a real checkpoint, ask a source, judge with TensorFlow, hash a tree."""

import hashlib
import os

import numpy as np

from recovery import storage
from recovery.classify import classify_directory
from recovery.context import open_orphan
from recovery.discovery import checkpoint_directory, group_directory
from recovery.layout import Layout, layout_from_index
from recovery.listing import everything_under
from recovery.rebuild import REBUILT, rebuild
from tfbundle import OBJECT_GRAPH_KEY, ByteSource, index_filename, read_index


def local_source(path: str) -> ByteSource:
    """A local data file as the format code reads it (recovery.storage.open_source does this in the tool)."""
    return ByteSource(open(path, "rb"), name=path)


def orphan(prefix: str) -> bytes:
    """Delete the index TensorFlow wrote; return its bytes, the answer a rebuild must reproduce."""
    with open(index_filename(prefix), "rb") as f:
        original = f.read()
    os.remove(index_filename(prefix))
    return original


def tree_digest(root: str, skip: str | None = None) -> dict:
    """relative path -> sha256 for every file under root (a subtree `skip` left out)."""
    digest = {}
    for directory, dirs, files in os.walk(root):
        if skip:
            dirs[:] = [d for d in dirs if os.path.join(directory, d) != skip]
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def context(prefix: str, **options):
    fs, path = storage.url_to_fs(prefix)
    return open_orphan(fs, path, **options)


def written_layout(index_bytes: bytes, ctx) -> Layout:
    """What TensorFlow wrote, in data order."""
    key_order = ctx.object_graph.checkpoint_keys() + [OBJECT_GRAPH_KEY] if ctx.object_graph else None
    return layout_from_index(read_index(index_bytes), key_order=key_order)


def assert_same_layout(found, expected: Layout):
    assert isinstance(found, Layout), f"refused: {found}"
    assert found.num_shards == expected.num_shards
    assert found.tensors == expected.tensors


def tensor_values(prefix: str) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def assert_rebuilt_identically(ctx, sources, original_index: bytes, expected_values: dict):
    """The rebuilt index is TensorFlow's byte for byte, and TensorFlow reads every tensor through it."""
    outcome = rebuild(ctx, sources=sources)
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original_index
    with open(index_filename(ctx.prefix), "xb") as f:
        f.write(outcome.index_bytes)
    values = tensor_values(ctx.prefix)
    assert sorted(values) == sorted(expected_values)
    for key, value in expected_values.items():
        np.testing.assert_array_equal(values[key], value, err_msg=key)
    return outcome


def classify_local(directory: str) -> dict:
    """prefix (display) -> Record or OrphanTask for one directory, as the pipeline would see it."""
    fs, path = storage.url_to_fs(directory)
    files = [f for f in everything_under(fs, path) if checkpoint_directory(f[0]) == path]
    results = classify_directory(fs, group_directory(path, files), directory)
    return {getattr(r, "display_prefix", None) or r.prefix: r for r in results}


def tf_restores_all(prefix: str) -> bool:
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except (tf.errors.OpError, ValueError, IndexError):   # a short read surfaces as IndexError
        return False
    return True
