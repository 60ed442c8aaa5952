"""Resolve a registry into plain layouts; the one place that runs registry builders (with TensorFlow,
whichever build is installed; without one, a builder entry is a configuration error that says so).

A builder (`module:function`) returns the root trackable exactly as the run checkpointed it, with
every variable created. It is saved once into a temporary directory and the index TensorFlow
writes is read back as a Layout, so the keys, dtypes and shapes are TensorFlow's own:
- a `tf.train.Checkpoint` root is saved with `.save()`, as CheckpointManager would, so `save_counter`
  exists (a source tolerates it where the orphan was written with `.write()` and lacks it);
- any other trackable (a Keras model as `save_weights` saves it, a tf.Module exported as a
  SavedModel) is written with `tf.train.Checkpoint(root).write()`: `root` passed positionally
  becomes the object-graph root itself, so the keys carry no extra `root/` prefix and no
  save_counter, the same keys and order as the original save.
Resolution happens on the launching machine, once per builder function in a process; workers get
only the resulting Layouts, each with the object graph TensorFlow wrote for the model (compared with
an orphan's, as a sibling's is, tolerating what a save of the same model may add or leave out).
"""

import importlib
import os
import sys
import tempfile
from contextlib import contextmanager

from recovery import storage
from recovery.caches import SharedCache
from recovery.layout import Layout
from recovery.registry import RegistryError, capture_layout, load_registry
from recovery.stores import local_path

from .tensorflow_env import TensorFlowMissing, require_tensorflow

__all__ = ["RegistryError", "builder_layout", "resolve_registry"]

_RESOLVED = SharedCache(256)   # (module file, builder) -> Layout


def resolve_registry(path: str, only: str | None = None) -> dict:
    """name -> Layout for every entry of the registry at `path` (or just `only`, when one is chosen).

    Builders run TensorFlow, seconds each: resolving one named entry spares the rest. An unknown
    `only` resolves them all, so the registry source can refuse it naming the entries that exist.
    """
    registry = load_registry(path)
    layouts = registry.layouts()
    chosen = {only: registry.entries[only]} if only in registry.entries else registry.entries
    return {name: layouts[name] if entry.layout else builder_layout(entry.builder, registry.directory, name)
            for name, entry in chosen.items()}


def builder_layout(builder: str, base_dir: str, name: str) -> Layout:
    """Run `builder` (importable from `base_dir` or installed), save what it returns, read the layout."""
    try:
        require_tensorflow(f"architecture `{name}` (builder {builder})")
    except TensorFlowMissing as exc:
        raise RegistryError(f"{exc}; entries captured with `ckpt-rescue register NAME --from-checkpoint PREFIX` "
                            "(layout files) work without it") from None
    function, module_file = _import(builder, base_dir, name)
    cache_key = (module_file, builder)
    cached = _RESOLVED.get_or_compute(cache_key, lambda: _layout_of_root(_call(function, builder, name), builder,
                                                                        name))
    # The object graph TensorFlow wrote for the model is a reference for an orphan's (agreement.py); the
    # CRCs of its freshly built values are not.
    return Layout(list(cached.tensors), cached.num_shards, f"registered `{name}`", "registry",
                  reference_graph=cached.reference_graph, graph_declared=cached.reference_graph is not None)


def _import(builder: str, base_dir: str, name: str):
    module_name, _, attribute_path = builder.partition(":")
    try:
        with _importable_from(base_dir):
            module = importlib.import_module(module_name)
        target = module
        for attribute in attribute_path.split("."):
            target = getattr(target, attribute)
    except Exception as exc:  # importing runs user code: any failure is a configuration error
        raise RegistryError(f"architecture `{name}`: builder {builder} cannot be imported: "
                            f"{type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise RegistryError(f"architecture `{name}`: builder {builder} is not callable")
    return target, getattr(module, "__file__", module_name)


def _call(function, builder: str, name: str):
    try:
        root = function()
    except Exception as exc:  # a builder is user code: any failure is a configuration error
        raise RegistryError(f"architecture `{name}`: builder {builder} failed: {type(exc).__name__}: {exc}") from None
    if root is None:
        raise RegistryError(f"architecture `{name}`: builder {builder} returned None; it must return the root "
                            "it checkpointed")
    return root


@contextmanager
def _importable_from(directory: str):
    """Put the registry's own directory first on sys.path while importing its builder modules (when it
    is on this machine: modules are not imported from a bucket)."""
    local = local_path(directory)
    if local is None:
        yield
        return
    path = os.path.abspath(local)
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)


def _layout_of_root(root, builder: str, name: str) -> Layout:
    from .tensorflow_env import import_tensorflow

    tf = import_tensorflow()

    with tempfile.TemporaryDirectory(prefix="ckpt-rescue-builder-") as tmp:
        target = os.path.join(tmp, "ckpt")
        try:
            if isinstance(root, tf.train.Checkpoint):
                prefix = root.save(target)
            else:
                prefix = tf.train.Checkpoint(root).write(target)
        except (TypeError, ValueError, tf.errors.OpError) as exc:
            raise RegistryError(f"architecture `{name}`: builder {builder} returned {type(root).__name__}, "
                                f"which TensorFlow cannot checkpoint: {exc}") from None
        fs, path = storage.url_to_fs(prefix)
        return capture_layout(fs, path, f"builder {builder}")
