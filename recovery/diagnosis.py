"""Is this path a checkpoint prefix? If not, what is it instead, and what should be passed: a data,
index or state file, a TF1 `.meta`, an archive, a git-lfs pointer, a directory, a typo (a third of
"corrupt checkpoint" reports are the wrong path). The one answer `inspect`, `rebuild` and `register`
share; `pipeline/inspect_text.py` shows it.
"""

import difflib
import posixpath
import tarfile
from dataclasses import dataclass, field

from tfbundle import INDEX_SUFFIX, FormatError, index_filename, parse_data_filename

from . import storage
from .context import data_files_of, unread_files_of
from .discovery import STATE_FILE, group_directory, parse_state_file, resolve_state_name
from .listed import Listed
from .records import EXIT_ATTENTION, EXIT_OK, EXIT_USAGE
from .sources.meta_graph import META_SUFFIX

LFS_POINTER = b"version https://git-lfs"
FIRST_BYTES = 16
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_LISTED = 40
DIRECTORY_DEPTH = 3   # deep enough for a SavedModel's variables/variables


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


def diagnose(target: str) -> "Diagnosis | None":
    """The one answer to "is this a checkpoint prefix?", shared by `inspect` and `rebuild`.

    A Diagnosis (what the path is instead, the nearest prefixes) for a file, a directory, an archive
    or a prefix with neither index nor data; None when `target` names a checkpoint prefix.
    """
    fs, path = fs_path(target)
    found = locate(fs, path, target)
    return found if isinstance(found, Diagnosis) else None


def locate_target(target: str):
    """`locate` for what the user typed: a Diagnosis, or (prefix, listing, index exists, data files)."""
    fs, path = fs_path(target)
    return locate(fs, path, target)


def fs_path(target: str):
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
        listing = storage.ls(fs, directory)
    except (FileNotFoundError, NotADirectoryError):
        near = nearest_paths(fs, path)
        problem = f"no such directory: {storage.display(fs, directory) or '.'}"
        return Diagnosis(target, problem + ("; the nearest existing paths are listed" if near else ""),
                         candidates=near, suggestion=near[0] if len(near) == 1 else None)
    index_path = index_filename(path)
    index_exists = any(i["name"] == index_path and i.get("type") == "file" for i in listing)
    data_files = data_files_of(path, listing)
    if index_exists or data_files:
        return path, listing, index_exists, data_files
    return _missing(fs, path, target, listing)


def _nameless_prefix(fs, directory: str):
    """TF1 `saver.save(sess, "dir/")` writes `dir/.index` and `dir/.data-…`: then "dir/" IS the prefix."""
    prefix = directory.rstrip("/") + "/"
    listing = storage.ls(fs, directory)
    index_exists = any(i["name"] == index_filename(prefix) and i.get("type") == "file" for i in listing)
    data_files = data_files_of(prefix, listing)
    if index_exists or data_files:
        return prefix, listing, index_exists, data_files
    return None


def _is_prefix(fs, prefix: str) -> bool:
    """Whether `prefix` has an index or data files: only such a prefix is worth suggesting."""
    try:
        listing = storage.ls(fs, storage.parent(prefix))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return (any(i["name"] == index_filename(prefix) and i.get("type") == "file" for i in listing)
            or bool(data_files_of(prefix, listing)))


# --- wrong paths ----------------------------------------------------------------------------------

def _diagnose_file(fs, path: str, target: str) -> Diagnosis:
    head = read_head(fs, path)
    shown = storage.display(fs, path)
    base = posixpath.basename(path)
    if head.startswith(LFS_POINTER):
        return lfs_pointer_diagnosis(fs, path, None, head)
    data_name = parse_data_filename(path)
    if data_name is not None:
        prefix = storage.display(fs, data_name.prefix)
        return Diagnosis(target, f"you passed the data file; the prefix is {prefix}", shown, hex_head(head), prefix)
    if path.endswith(INDEX_SUFFIX):
        prefix = storage.display(fs, path[: -len(INDEX_SUFFIX)])
        return Diagnosis(target, f"you passed the index file; the prefix is {prefix}", shown, hex_head(head), prefix)
    if path.endswith(META_SUFFIX):
        prefix = storage.display(fs, path[: -len(META_SUFFIX)])
        if not _is_prefix(fs, path[: -len(META_SUFFIX)]):
            return Diagnosis(target, f"you passed a TF1 graph (.meta) file, and its prefix {prefix} has no index and "
                                     "no data files beside it", shown, hex_head(head))
        return Diagnosis(target, f"you passed the TF1 graph (.meta) file; the prefix is {prefix}", shown,
                         hex_head(head), prefix)
    if base == STATE_FILE:
        return _state_file(fs, path, target, head)
    if base.endswith(ARCHIVE_SUFFIXES):
        return _archive(fs, path, target, head)
    what = _sniff(head)
    return Diagnosis(target, f"this is a file ({what}), not a checkpoint prefix; a prefix names files "
                             "PREFIX.index and PREFIX.data-NNNNN-of-NNNNN", shown, hex_head(head))


def _state_file(fs, path: str, target: str, head: bytes) -> Diagnosis:
    """What a `checkpoint` state file resolves to. A finding, not a usage error (an audit's record of a
    state file offers this very command): exit 0 when its latest checkpoint exists, 1 when it does not
    or TensorFlow cannot read the file."""
    directory = storage.parent(path)
    try:
        state = parse_state_file(storage.read_bytes(fs, path).decode("utf-8", "replace"))
    except FormatError as exc:
        return Diagnosis(target, f"you passed TensorFlow's `checkpoint` state file, not a prefix; it is unreadable "
                                 f"({exc}), so TensorFlow ignores it", storage.display(fs, path), hex_head(head),
                         exit_code=EXIT_ATTENTION)
    resolved = [resolve_state_name(directory, n, fs.protocol) for n in state.names()]
    exists = [_is_prefix(fs, p) for p in resolved]
    named = [storage.display(fs, p) + ("" if ok else "  (does not exist: no index, no data files)")
             for p, ok in zip(resolved, exists)]
    latest = storage.display(fs, resolved[0]) if state.latest else None
    problem = "you passed TensorFlow's `checkpoint` state file, not a prefix; "
    if latest and not exists[0]:
        problem += (f"the latest prefix it names, {latest}, does not exist, so tf.train.latest_checkpoint() "
                    "returns None; every prefix it names is listed")
        return Diagnosis(target, problem, storage.display(fs, path), hex_head(head), None, named,
                         exit_code=EXIT_ATTENTION)
    problem += f"the latest prefix it names is {latest}" if latest else "it names no checkpoint"
    return Diagnosis(target, problem, storage.display(fs, path), hex_head(head), latest, named,
                     exit_code=EXIT_OK if latest else EXIT_ATTENTION)


def _archive(fs, path: str, target: str, head: bytes) -> Diagnosis:
    members = []
    if not path.endswith(".zip"):
        try:
            with storage.open_read(fs, path) as f, tarfile.open(fileobj=f, mode="r:*") as archive:
                members = [m.name for m in archive.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError, EOFError):
            members = []
    prefixes = sorted({p.prefix for p in map(parse_data_filename, members) if p} |
                      {m[: -len(INDEX_SUFFIX)] for m in members if m.endswith(INDEX_SUFFIX)})
    problem = "you passed an archive; extract it, then pass the checkpoint prefix inside"
    if prefixes:
        problem += f" (it holds {len(prefixes)}: {', '.join(prefixes[:5])})"
    return Diagnosis(target, problem, storage.display(fs, path), hex_head(head), None, prefixes[:MAX_LISTED])


def lfs_pointer_diagnosis(fs, path: str, prefix: str | None, head: bytes) -> Diagnosis:
    target = storage.display(fs, prefix if prefix is not None else path)
    return Diagnosis(target, "this is a git-lfs pointer, not the file: the real bytes were never downloaded "
                             "(run `git lfs pull` in the repository)", storage.display(fs, path), hex_head(head),
                     candidates=head.decode("utf-8", "replace").strip().splitlines()[:3])


def _missing(fs, path: str, target: str, listing: list) -> Diagnosis:
    taken = storage.occupant(fs, path)
    if taken:       # the path itself, passed as a prefix, is a FIFO, a device or a dangling link
        return Diagnosis(target, f"this is {taken}, not a checkpoint prefix; a prefix names files PREFIX.index and "
                                 "PREFIX.data-NNNNN-of-NNNNN", storage.display(fs, path))
    unread = unread_files_of(path, listing)
    if unread:      # named like its files, but nothing there can be read as one
        return Diagnosis(target, f"no checkpoint with prefix {storage.display(fs, path)} can be read: "
                                 + "; ".join(unread))
    directory = storage.prefix_directory(path)
    contents = group_directory(directory, [Listed(i["name"], i.get("size") or 0) for i in listing
                                            if i.get("type") == "file"])
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
    found = storage.listed(fs, fs.find(path, maxdepth=DIRECTORY_DEPTH, detail=True).values())
    contents = group_directory(path, [Listed(info["name"], info.get("size") or 0) for info in found
                                      if info.get("type") == "file"])
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


def nearest_paths(fs, path: str, limit: int = 5, or_ancestor: bool = False) -> list[str]:
    """For a path that does not exist (a typo): the existing paths nearest to it, as a user types them.
    The deepest ancestor that exists is kept; the first missing name is matched against its entries, and
    the rest of the path is kept where it then exists. `or_ancestor`: when no name is close, that ancestor
    itself (a root that vanished is not a typo). `inspect`'s diagnosis and `audit ROOT` share it."""
    parts = path.rstrip("/").split("/")
    for depth in range(len(parts) - 1, 0, -1):
        ancestor = "/".join(parts[:depth]) or "/"
        try:
            names = [posixpath.basename(i["name"].rstrip("/")) for i in fs.ls(ancestor, detail=True)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return []
        found = []
        for name in difflib.get_close_matches(parts[depth], names, n=limit, cutoff=0.6):
            rest = posixpath.join(ancestor, name, *parts[depth + 1:])
            whole = fs.exists(rest) or _is_prefix(fs, rest)
            found.append(storage.display(fs, rest if whole else posixpath.join(ancestor, name)))
        return found or ([storage.display(fs, ancestor)] if or_ancestor else [])
    return []


# --- helpers --------------------------------------------------------------------------------------

def read_head(fs, path: str) -> bytes:
    return storage.read_head(fs, path)


def hex_head(data: bytes) -> str:
    return data[:FIRST_BYTES].hex(" ")


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file, e.g. Keras .h5 weights"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, e.g. a .keras model"
    if not head:
        return "empty"
    return "unrecognised content"
