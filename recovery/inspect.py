"""What a checkpoint path holds, for a person: a healthy bundle's index, an orphan's data, or a
diagnosis of the wrong path (a third of "corrupt checkpoint" reports are a data file, index, state
file or git-lfs pointer passed as the prefix).

Pure logic over fsspec that returns data; `pipeline/inspect_text.py` shows it as text or JSON.
"""

import difflib
import posixpath
import tarfile
from dataclasses import dataclass, field

from tfbundle import (
    INDEX_SUFFIX,
    FormatError,
    decode_slice_key,
    dtype,
    index_filename,
    is_slice_key,
    parse_data_filename,
    read_index,
    shard_coverage,
)

from . import storage
from .context import OrphanContext, data_files_of, find_object_graph
from .discovery import STATE_FILE, group_directory, parse_state_file, resolve_state_name
from .layout import Layout
from .protos import read_meta_graph
from .records import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE
from .sizes import shard_sizes
from .sources.meta_graph import META_SUFFIX, candidate_meta_paths, layout_from_meta_graph

LFS_POINTER = b"version https://git-lfs"
FIRST_BYTES = 16
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_LISTED = 40
DIRECTORY_DEPTH = 3   # deep enough for a SavedModel's variables/variables


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


@dataclass
class Diagnosis:
    """The path is not a checkpoint prefix: what it is instead, and what to pass."""

    target: str
    problem: str
    file: str | None = None
    first_bytes: str | None = None
    suggestion: str | None = None              # the prefix (or command) to use instead
    candidates: list = field(default_factory=list)   # nearby prefixes, or the prefixes of a directory
    kind: str = "diagnosis"
    exit_code: int = EXIT_USAGE


def inspect_path(target: str):
    """Healthy | Orphan | Unreadable | Diagnosis for what the user typed (local path or URL)."""
    fs, path = _fs_path(target)
    found = locate(fs, path, target)
    if isinstance(found, Diagnosis):
        return found
    prefix, listing, index_exists, data_files = found
    if index_exists:
        return _healthy(fs, prefix, index_filename(prefix), data_files)
    return _orphan(fs, prefix, data_files, listing)


def diagnose(target: str) -> "Diagnosis | None":
    """The one answer to "is this a checkpoint prefix?", shared by `inspect` and `rebuild`.

    A Diagnosis (what the path is instead, the nearest prefixes) for a file, a directory, an archive
    or a prefix with neither index nor data; None when `target` names a checkpoint prefix.
    """
    fs, path = _fs_path(target)
    found = locate(fs, path, target)
    return found if isinstance(found, Diagnosis) else None


def locate_target(target: str):
    """`locate` for what the user typed: a Diagnosis, or (prefix, listing, index exists, data files)."""
    fs, path = _fs_path(target)
    return locate(fs, path, target)


def _fs_path(target: str):
    return storage.url_to_fs(target.rstrip("/") or target)


def locate(fs, path: str, target: str):
    """Diagnosis, or (prefix, directory listing, index exists, data files) for a real checkpoint prefix."""
    if fs.isdir(path):
        nameless = _nameless_prefix(fs, path)
        if nameless is None:
            return _directory(fs, path, target)
        return nameless
    if fs.isfile(path):
        return _diagnose_file(fs, path, target)
    directory = storage.parent(path)
    try:
        listing = fs.ls(directory, detail=True)
    except FileNotFoundError:
        return Diagnosis(target, f"no such directory: {storage.display(fs, directory) or '.'}")
    index_path = index_filename(path)
    index_exists = any(i["name"] == index_path and i.get("type") != "directory" for i in listing)
    data_files = data_files_of(path, listing)
    if index_exists or data_files:
        return path, listing, index_exists, data_files
    return _missing(fs, path, target, listing)


def _nameless_prefix(fs, directory: str):
    """TF1 `saver.save(sess, "dir/")` writes `dir/.index` and `dir/.data-…`: then "dir/" IS the prefix."""
    prefix = directory.rstrip("/") + "/"
    listing = fs.ls(directory, detail=True)
    index_exists = any(i["name"] == index_filename(prefix) and i.get("type") != "directory" for i in listing)
    data_files = data_files_of(prefix, listing)
    if index_exists or data_files:
        return prefix, listing, index_exists, data_files
    return None


def _is_prefix(fs, prefix: str) -> bool:
    """Whether `prefix` has an index or data files: only such a prefix is worth suggesting."""
    try:
        listing = fs.ls(storage.parent(prefix), detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(i["name"] == index_filename(prefix) for i in listing) or bool(data_files_of(prefix, listing))


# --- a readable prefix ----------------------------------------------------------------------------

def _healthy(fs, prefix: str, index_path: str, data_files: list):
    raw = storage.read_bytes(fs, index_path)
    if raw.startswith(LFS_POINTER):
        return _lfs_pointer(fs, index_path, prefix, raw)
    try:
        index = read_index(raw)
    except FormatError as exc:
        return Unreadable(storage.display(fs, prefix), storage.display(fs, index_path), str(exc), _hex(raw))
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
    for data_file in data_files:
        head = _head(fs, data_file.path)
        if head.startswith(LFS_POINTER):
            return _lfs_pointer(fs, data_file.path, prefix, head)
    graph = None
    found = find_object_graph(fs, data_files)
    if found is not None:
        data_file, located = found
        graph = ObjectGraphInfo(storage.display(fs, data_file.path), located.offset, located.size,
                                len(located.graph.nodes), located.graph.checkpoint_keys())
    orphan = Orphan(storage.display(fs, prefix), display_files, graph, problems=problems)
    if graph is None:
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


# --- wrong paths ----------------------------------------------------------------------------------

def _diagnose_file(fs, path: str, target: str) -> Diagnosis:
    head = _head(fs, path)
    shown = storage.display(fs, path)
    base = posixpath.basename(path)
    if head.startswith(LFS_POINTER):
        return _lfs_pointer(fs, path, None, head)
    data_name = parse_data_filename(path)
    if data_name is not None:
        prefix = storage.display(fs, data_name.prefix)
        return Diagnosis(target, f"you passed the data file; the prefix is {prefix}", shown, _hex(head), prefix)
    if path.endswith(INDEX_SUFFIX):
        prefix = storage.display(fs, path[: -len(INDEX_SUFFIX)])
        return Diagnosis(target, f"you passed the index file; the prefix is {prefix}", shown, _hex(head), prefix)
    if path.endswith(META_SUFFIX):
        prefix = storage.display(fs, path[: -len(META_SUFFIX)])
        if not _is_prefix(fs, path[: -len(META_SUFFIX)]):
            return Diagnosis(target, f"you passed a TF1 graph (.meta) file, and its prefix {prefix} has no index and "
                                     "no data files beside it", shown, _hex(head))
        return Diagnosis(target, f"you passed the TF1 graph (.meta) file; the prefix is {prefix}", shown, _hex(head),
                         prefix)
    if base == STATE_FILE:
        return _state_file(fs, path, target, head)
    if base.endswith(ARCHIVE_SUFFIXES):
        return _archive(fs, path, target, head)
    what = _sniff(head)
    return Diagnosis(target, f"this is a file ({what}), not a checkpoint prefix; a prefix names files "
                             "PREFIX.index and PREFIX.data-NNNNN-of-NNNNN", shown, _hex(head))


def _state_file(fs, path: str, target: str, head: bytes) -> Diagnosis:
    directory = storage.parent(path)
    try:
        state = parse_state_file(storage.read_bytes(fs, path).decode("utf-8", "replace"))
    except FormatError as exc:
        return Diagnosis(target, f"you passed TensorFlow's `checkpoint` state file, not a prefix; it is unreadable "
                                 f"({exc}), so TensorFlow ignores it", storage.display(fs, path), _hex(head))
    resolved = [resolve_state_name(directory, n, fs._strip_protocol) for n in state.names()]
    exists = [_is_prefix(fs, p) for p in resolved]
    named = [storage.display(fs, p) + ("" if ok else "  (does not exist: no index, no data files)")
             for p, ok in zip(resolved, exists)]
    latest = storage.display(fs, resolved[0]) if state.latest else None
    problem = "you passed TensorFlow's `checkpoint` state file, not a prefix; "
    if latest and not exists[0]:
        problem += (f"the latest prefix it names, {latest}, does not exist, so tf.train.latest_checkpoint() "
                    "returns None; every prefix it names is listed")
        return Diagnosis(target, problem, storage.display(fs, path), _hex(head), None, named)
    problem += f"the latest prefix it names is {latest}" if latest else "it names no checkpoint"
    return Diagnosis(target, problem, storage.display(fs, path), _hex(head), latest, named)


def _archive(fs, path: str, target: str, head: bytes) -> Diagnosis:
    members = []
    if not path.endswith(".zip"):
        try:
            with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:*") as archive:
                members = [m.name for m in archive.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError, EOFError):
            members = []
    prefixes = sorted({p.prefix for p in map(parse_data_filename, members) if p} |
                      {m[: -len(INDEX_SUFFIX)] for m in members if m.endswith(INDEX_SUFFIX)})
    problem = "you passed an archive; extract it, then pass the checkpoint prefix inside"
    if prefixes:
        problem += f" (it holds {len(prefixes)}: {', '.join(prefixes[:5])})"
    return Diagnosis(target, problem, storage.display(fs, path), _hex(head), None, prefixes[:MAX_LISTED])


def _lfs_pointer(fs, path: str, prefix: str | None, head: bytes) -> Diagnosis:
    target = storage.display(fs, prefix if prefix is not None else path)
    return Diagnosis(target, "this is a git-lfs pointer, not the file: the real bytes were never downloaded "
                             "(run `git lfs pull` in the repository)", storage.display(fs, path), _hex(head),
                     candidates=head.decode("utf-8", "replace").strip().splitlines()[:3])


def _missing(fs, path: str, target: str, listing: list) -> Diagnosis:
    directory = storage.prefix_directory(path)
    contents = group_directory(directory, [(i["name"], i.get("size") or 0) for i in listing
                                            if i.get("type") != "directory"])
    names = [posixpath.basename(p) for p in contents.checkpoints]
    close = difflib.get_close_matches(posixpath.basename(path), names, n=5, cutoff=0.4)
    candidates = [storage.display(fs, posixpath.join(directory, n)) for n in (close or names[:MAX_LISTED])]
    problem = f"no checkpoint with prefix {storage.display(fs, path)}: no {posixpath.basename(path)}.index " \
              "and no data files"
    if close:
        problem += "; the nearest prefixes in that directory are listed"
    elif names:
        problem += "; the prefixes in that directory are listed"
    else:
        problem += "; that directory holds no checkpoints"
    return Diagnosis(target, problem, candidates=candidates, suggestion=candidates[0] if close else None)


def _directory(fs, path: str, target: str) -> Diagnosis:
    found = fs.find(path, maxdepth=DIRECTORY_DEPTH, detail=True)
    contents = group_directory(path, [(p, info.get("size") or 0) for p, info in found.items()
                                      if info.get("type") != "directory"])
    rows = []
    for prefix, files in contents.checkpoints.items():
        state = "index + " if files.index_size is not None else "NO INDEX, "
        rows.append(f"{storage.display(fs, prefix)}  ({state}{len(files.data)} data file(s))")
    itself = path.rstrip("/") + "/"
    if itself in contents.checkpoints:
        shown = storage.display(fs, itself)
        return Diagnosis(target, f"this directory holds a checkpoint saved to the prefix {shown} (files .index, "
                                 ".data-*): pass it with the trailing slash", suggestion=shown,
                         candidates=rows[:MAX_LISTED])
    problem = "you passed a directory; pass one checkpoint prefix inside it"
    problem += f" ({len(rows)} found)" if rows else f" (none found within {DIRECTORY_DEPTH} levels)"
    return Diagnosis(target, problem, candidates=rows[:MAX_LISTED])


# --- helpers --------------------------------------------------------------------------------------

def _head(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read(256)


def _hex(data: bytes) -> str:
    return data[:FIRST_BYTES].hex(" ")


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file, e.g. Keras .h5 weights"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, e.g. a .keras model"
    if not head:
        return "empty"
    return "unrecognised content"
