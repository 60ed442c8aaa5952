"""What a checkpoint prefix holds, for a person: a healthy bundle's index tensor by tensor (and the
data files it needs), or what an orphan's data files reveal (its object graph, or the keys of a TF1
`.meta` beside it). A path that is not a prefix gets a Diagnosis (diagnosis.py) instead.

Pure logic over fsspec that returns data; `pipeline/inspect_text.py` shows it as text or JSON.
"""

import posixpath
from dataclasses import dataclass, field

from tfbundle import (
    FormatError,
    decode_slice_key,
    dtype,
    index_filename,
    is_slice_key,
    read_index,
    shard_coverage,
)

from . import storage
from .context import OrphanContext, find_object_graph, unread_files_of
from .diagnosis import LFS_POINTER, Diagnosis, fs_path, hex_head, lfs_pointer_diagnosis, locate, read_head
from .layout import Layout
from .protos import read_meta_graph
from .records import EXIT_ATTENTION, EXIT_OK
from .sizes import shard_sizes
from .sources.meta_graph import candidate_meta_paths, layout_from_meta_graph


@dataclass
class SliceInfo:
    extents: str          # e.g. "[0:4, :]"
    shard: int
    offset: int
    size: int
    crc32c: int


@dataclass
class TensorInfo:
    key: str
    dtype: str
    shape: list
    shard: int | None     # None for a partitioned tensor: its bytes are in its slices
    offset: int | None
    size: int
    crc32c: int | None
    slices: list = field(default_factory=list)   # SliceInfo


@dataclass
class DataFileInfo:
    path: str
    shard: int
    size: int


@dataclass
class Healthy:
    prefix: str
    index_path: str
    index_size: int
    index_blocks: int
    num_shards: int
    producer: int
    min_consumer: int
    endianness: str
    data_files: list
    tensors: list
    problems: list = field(default_factory=list)   # data files missing or not the size the index says
    kind: str = "healthy"

    @property
    def exit_code(self) -> int:
        return EXIT_ATTENTION if self.problems else EXIT_OK


@dataclass
class ObjectGraphInfo:
    data_file: str
    offset: int
    size: int
    nodes: int
    keys: list            # checkpoint keys in data order; the graph itself comes after them


@dataclass
class Orphan:
    prefix: str
    data_files: list
    object_graph: ObjectGraphInfo | None
    meta_graph: str | None = None     # TF1: the .meta whose Saver names the keys
    meta_keys: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    index_occupant: str = ""          # what takes up PREFIX.index though it is no file (a directory, a FIFO)
    readable: bool = True             # every data file could be read: a rebuild can start
    kind: str = "orphan"
    exit_code: int = EXIT_ATTENTION


@dataclass
class Unreadable:
    """An index is there but cannot be read: the reader's own words, and the bytes it found."""

    prefix: str
    index_path: str
    error: str
    first_bytes: str
    kind: str = "unreadable-index"
    exit_code: int = EXIT_ATTENTION


def inspect_path(target: str):
    """Healthy | Orphan | Unreadable | Diagnosis for what the user typed (local path or URL)."""
    fs, path = fs_path(target)
    found = locate(fs, path, target)
    if isinstance(found, Diagnosis):
        return found
    prefix, listing, index_exists, data_files = found
    result = _healthy(fs, prefix, index_filename(prefix), data_files) if index_exists else \
        _orphan(fs, prefix, data_files, listing)
    if isinstance(result, (Healthy, Orphan)):
        result.problems[:0] = unread_files_of(prefix, listing)
    return result


# --- a readable prefix ----------------------------------------------------------------------------

def _healthy(fs, prefix: str, index_path: str, data_files: list):
    raw = storage.read_bytes(fs, index_path)
    if raw.startswith(LFS_POINTER):
        return lfs_pointer_diagnosis(fs, index_path, prefix, raw)
    try:
        index = read_index(raw)
    except FormatError as exc:
        return Unreadable(storage.display(fs, prefix), storage.display(fs, index_path), str(exc), hex_head(raw))
    slices_by_name = {}
    for key, entry in index.entries.items():
        if is_slice_key(key):
            name, piece = decode_slice_key(key)
            slices_by_name.setdefault(name, []).append(
                SliceInfo(_extents_text(piece), entry.shard_id, entry.offset, entry.size, entry.crc32c))
    tensors = []
    for name in index.tensor_names():
        entry = index.entries[name.encode("utf-8", "surrogateescape")]
        if entry.slices:
            pieces = sorted(slices_by_name.get(name, []), key=lambda s: (s.shard, s.offset))
            tensors.append(TensorInfo(name, dtype(entry.dtype).name, list(entry.shape), None, None,
                                      sum(p.size for p in pieces), None, pieces))
        else:
            tensors.append(TensorInfo(name, dtype(entry.dtype).name, list(entry.shape), entry.shard_id,
                                      entry.offset, entry.size, entry.crc32c))
    num_shards = index.header.num_shards or 1
    return Healthy(
        prefix=storage.display(fs, prefix), index_path=storage.display(fs, index_path), index_size=len(raw),
        index_blocks=len(index.blocks), num_shards=num_shards, producer=index.header.producer,
        min_consumer=index.header.min_consumer, endianness="big" if index.header.endianness else "little",
        data_files=[DataFileInfo(storage.display(fs, d.path), d.shard, d.size) for d in data_files],
        tensors=tensors, problems=_size_problems(fs, index, num_shards, data_files))


def _size_problems(fs, index, num_shards: int, data_files: list) -> list[str]:
    """Data files the index needs that are missing, short, or longer than the index accounts for."""
    present = {d.shard: d for d in data_files if d.num_shards == num_shards}
    problems = []
    for found in shard_sizes(index, lambda shard: present[shard].size if shard in present else None):
        if found.missing:
            problems.append(f"data shard {found.shard} of {num_shards} is missing")
            continue
        shown = storage.display(fs, present[found.shard].path)
        if found.short:
            problems.append(f"{shown} has {found.size} bytes; the index needs {found.needed} (truncated copy?)")
        elif found.long:
            problems.append(f"{shown} has {found.size - found.needed} bytes after the last tensor the index knows "
                            "(index and data from different saves?)")
    return problems


def _extents_text(piece) -> str:
    dims = [":" if ext is None else f"{ext[0]}:{ext[0] + ext[1]}" for ext in piece.extents]
    return "[" + ", ".join(dims) + "]"


# --- data without an index ------------------------------------------------------------------------

def _orphan(fs, prefix: str, data_files: list, listing: list):
    display_files = [DataFileInfo(storage.display(fs, d.path), d.shard, d.size) for d in data_files]
    problems = _shard_problems(data_files)
    unreadable = []
    for data_file in data_files:
        try:
            head = read_head(fs, data_file.path)
        except OSError as exc:
            if storage.is_transient(exc):
                raise
            unreadable.append(f"{storage.display(fs, data_file.path)} cannot be read: {exc.strerror or exc}")
            continue
        if head.startswith(LFS_POINTER):
            return lfs_pointer_diagnosis(fs, data_file.path, prefix, head)
    graph = None
    found = None if unreadable else find_object_graph(fs, data_files)
    if found is not None:
        data_file, located = found
        graph = ObjectGraphInfo(storage.display(fs, data_file.path), located.offset, located.size,
                                len(located.graph.nodes), located.graph.checkpoint_keys())
    orphan = Orphan(storage.display(fs, prefix), display_files, graph, problems=unreadable + problems,
                    index_occupant=storage.occupant(fs, index_filename(prefix)) or "", readable=not unreadable)
    if graph is None and not unreadable:
        _add_meta_graph_keys(fs, prefix, data_files, listing, orphan)
    return orphan


def _shard_problems(data_files: list) -> list[str]:
    coverage = shard_coverage(data_files)
    if len(coverage.counts) > 1:
        return [f"data files disagree on the shard count: {list(coverage.counts)}"]
    return [f"data shard {s} of {coverage.counts[0]} is missing" for s in coverage.missing]


def _add_meta_graph_keys(fs, prefix: str, data_files: list, listing: list, orphan: Orphan) -> None:
    """TF1 data names nothing; a `.meta` beside it says what its Saver wrote, in data order."""
    ctx = OrphanContext(fs=fs, prefix=prefix, display_prefix=storage.display(fs, prefix), data_files=data_files,
                        directory_listing=listing)
    for path in candidate_meta_paths(ctx):
        try:
            meta = read_meta_graph(storage.read_bytes(fs, path))
        except (FormatError, OSError) as exc:
            orphan.problems.append(f"{storage.display(fs, path)} is unreadable: {exc}")
            continue
        layout = layout_from_meta_graph(meta, posixpath.basename(path))
        if isinstance(layout, Layout):
            orphan.meta_graph = storage.display(fs, path)
            orphan.meta_keys = layout.keys()
            return
        orphan.problems.append(f"{storage.display(fs, path)}: {layout.reason}")
