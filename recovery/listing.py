"""List a root the way a big bucket needs: a few directory levels one delimiter listing at a time,
then what lies below in recursive listings of groups of sibling directories, so that different
workers list different parts of even a root whose one child holds everything. On an object store a
group is one flat listing of a name prefix (one request per page of objects); elsewhere each
directory of the group is listed on its own. Sizes and modification times come with the listing (no
per-file stat), and listings are never cached (see recovery.storage).

Files are `Listed`: path, size, modification time and the store's identity of the bytes, each as the
listing gave it (None where the store gives none): regular files only. Whatever else a local tree
holds (a FIFO, a device, a socket, a symbolic link to a directory or to nothing) is never opened nor
followed; it is listed apart as `Unread`, and the audit gives it a record saying what it is. Earlier
ckpt-rescue report directories inside a root are recognised by their marker alone, and the indexes
they staged under `rebuilt/` are left out: a staged copy is not a checkpoint. An index vault inside a
root (its marker, `ckpt-rescue-vault.json`) is left out whole: its `.index` files have no data beside them.
"""

import itertools
import posixpath
from operator import attrgetter
from typing import NamedTuple

from tfbundle import INDEX_SUFFIX, parse_data_filename

from . import storage, stores
from .discovery import STATE_FILE
from .listed import listed
from .stores.base import SPECIAL

# Written into a report directory before a run does any work, so even a run that stopped before its
# summary leaves a directory the next audit recognises as reports, not checkpoints. Nothing else
# decides: a training job's own `summary.json` and `records.jsonl` beside a `rebuilt/` directory of
# checkpoints are not a report.
REPORT_MARKER = ".ckpt-rescue-report"
STAGED_DIR = "rebuilt"
VAULT_MARKER = "ckpt-rescue-vault.json"   # recovery.vault.tree.MARKER: a vault's whole tree is left out


class Unread(NamedTuple):
    """A listed entry that is not a regular file: never opened, never descended into."""

    path: str
    what: str                      # in words: "a FIFO (named pipe)", "a symbolic link to a directory (...)"
    why: str                       # stores.base: SPECIAL, DANGLING or LINKED_DIRECTORY (not followed)


class Level(NamedTuple):
    files: list                    # Listed: the regular files directly in the directory
    children: list                 # subdirectories
    unread: list                   # Unread


class Found(NamedTuple):
    files: list                    # Listed: every regular file below
    unread: list                   # Unread


class BadRoot(ValueError):
    """A root that is not a directory or cannot be listed: a usage error, not a finding."""


class MissingRoot(BadRoot):
    """A root that does not exist. Not a typo in the scheduler's own configuration only: a tree that
    vanished looks the same, so the audit runs, reports it and exits 4 (nothing checked)."""


def check_root(url: str) -> None:
    fs, path = storage.url_to_fs(url)
    try:
        if fs.isdir(path):
            return
        exists = fs.exists(path)
    except OSError as exc:
        if storage.is_transient(exc):
            raise storage.StorageUnavailable(f"{url}: the store kept failing after retries ({exc})") from exc
        raise BadRoot(f"{url}: cannot be listed ({exc})") from None
    if exists:
        raise BadRoot(f"{url}: is a file, not a directory")
    raise MissingRoot(f"{url}: does not exist")


def top_level(fs, root: str, exclude: str | None = None) -> Level:
    """(files, child directories, unread entries) directly under `root`: files as Listed. A child with an
    empty name (objects named `root//...`) is `root/`. An index vault is left out whole."""
    children, entries = [], []
    found = storage.listed(fs, fs.ls(root, detail=True))
    if any(posixpath.basename(entry["name"].rstrip("/")) == VAULT_MARKER for entry in found
           if entry.get("type") != "directory"):
        return Level([], [], [])
    for entry in found:
        name = entry["name"].rstrip("/")
        if name == root.rstrip("/"):
            if entry.get("type") == "directory":     # the prefix `root//`: object stores allow an empty name
                children.append(name + "/")
            continue
        if _excluded(name, exclude):
            continue
        if entry.get("type") == "directory":
            children.append(name)
        else:
            entries.append(entry)
    files, unread = _files_and_unread(fs, entries)
    if _is_report_dir({posixpath.basename(f[0]) for f in files}):
        staged = posixpath.join(root.rstrip("/"), STAGED_DIR)
        children = [c for c in children if c != staged]
    return Level(files, children, unread)


def everything_under(fs, directory: str, exclude: str | None = None) -> list:
    """Every regular file below `directory` as Listed, from one paginated recursive listing."""
    return listed_under(fs, directory, exclude).files


def listed_under(fs, directory: str, exclude: str | None = None) -> Found:
    """Every regular file below `directory`, and every entry that is not one, from one recursive listing."""
    store = stores.store_for_fs(fs)
    made = store.files_under(fs, directory)
    if made is None:
        return _found(fs, store.find(fs, directory), exclude)
    regular, others = made      # regular files as Listed already; the others typed as _found types them
    if exclude:
        regular = [item for item in regular if not _excluded(item.path, exclude)]
        others = [entry for entry in others if not _excluded(entry["name"], exclude)]
    files, unread = _files_and_unread(fs, [e for e in storage.listed(fs, others) if e.get("type") != "directory"])
    files = sorted(regular + files, key=attrgetter("path")) if files else regular   # a link to a file, among the files
    staged = _staging_of_reports(files)
    return Found(_outside(files, staged), _outside(unread, staged))


def _found(fs, found: dict, exclude: str | None, keep=None) -> Found:
    if exclude or keep:       # most listings keep everything: no call per entry then
        entries = [entry for name, entry in found.items() if not _excluded(name, exclude) and (not keep or keep(name))]
    else:
        entries = list(found.values())
    files, unread = _files_and_unread(fs, [e for e in storage.listed(fs, entries) if e.get("type") != "directory"])
    staged = _staging_of_reports(files)
    return Found(_outside(files, staged), _outside(unread, staged))


def _files_and_unread(fs, entries: list) -> tuple:
    store = stores.store_for_fs(fs)
    files = [listed(store, e["name"], e) for e in entries if e.get("type") == "file"]
    unread = [Unread(e["name"], e.get("what") or "not a regular file", e.get("unread") or SPECIAL)
              for e in entries if e.get("type") != "file"]
    return files, unread


def everything_under_group(fs, parent: str, prefix: str, members: tuple, exclude: str | None = None) -> Found:
    """Every file below the directories `members` of `parent`, which are exactly the ones whose names
    start with `prefix` (see sibling_groups), and every entry there that is not a regular file. Files
    directly in `parent` are its own listing's. Where the store's recursive listing takes a name prefix
    (gcsfs, s3fs) the group is one listing."""
    parent = parent.rstrip("/")
    if not stores.store_for_fs(fs).prefix_listing:
        found = [listed_under(fs, f"{parent}/{member}", exclude) for member in members]
        return Found([f for one in found for f in one.files], [u for one in found for u in one.unread])
    wanted = set(members)

    def in_group(name: str) -> bool:
        below = name[len(parent) + 1:]
        return name.startswith(parent + "/") and "/" in below and below.split("/", 1)[0] in wanted

    return _found(fs, stores.store_for_fs(fs).find(fs, parent, prefix=prefix), exclude, in_group)


def sibling_groups(names, limit: int) -> list[tuple[str, tuple]]:
    """Sibling directory names cut into about `limit` groups (more by at most one cut), each being
    exactly the names that start with its prefix, so that one prefix listing covers it and nothing
    else. The largest group is cut first. A group of one name has the prefix `name/`, which also
    tells `run-1` from `run-10` beside it."""
    groups = [("", tuple(sorted(set(names))))] if names else []
    while groups and len(groups) < limit:
        largest = max(groups, key=lambda group: len(group[1]))
        if len(largest[1]) < 2:
            break
        at = groups.index(largest)
        groups[at:at + 1] = _cut(*largest)
    return [(members[0] + "/" if len(members) == 1 else prefix, members) for prefix, members in groups]


def _cut(prefix: str, members: tuple) -> list:
    """Split a group of two or more names by the first character after the prefix where they differ."""
    while True:
        parts = [(prefix, (prefix,))] if members[0] == prefix else []
        longer = members[len(parts):]
        by_next = itertools.groupby(longer, key=lambda name: name[len(prefix)])
        parts += [(prefix + char, tuple(same)) for char, same in by_next]
        if len(parts) > 1:
            return parts
        prefix = parts[0][0]


def _staging_of_reports(files: list) -> list:
    """`D/rebuilt/` of every directory D that holds a report's marker, and `V/` of every index vault."""
    hidden = []
    for item in files:
        if not item[0].endswith((REPORT_MARKER, VAULT_MARKER)):     # most files: no split of the path
            continue
        directory, leaf = posixpath.dirname(item[0]), posixpath.basename(item[0])
        if leaf == REPORT_MARKER:
            hidden.append(posixpath.join(directory, STAGED_DIR) + "/")
        elif leaf == VAULT_MARKER:
            hidden.append(directory.rstrip("/") + "/")
    return hidden


def _outside(items: list, staged: list) -> list:
    return [item for item in items if not any(item[0].startswith(s) for s in staged)] if staged else items


def _is_report_dir(names: set) -> bool:
    return REPORT_MARKER in names


def _excluded(path: str, exclude: str | None) -> bool:
    """The report directory may sit inside a root: its staged indexes are not checkpoints."""
    return bool(exclude) and (path == exclude or path.startswith(exclude.rstrip("/") + "/"))


def hidden_checkpoint_files(fs, report_path: str) -> list:
    """Checkpoint files inside a report directory that are not ours: an audit that leaves the report
    directory out of its listing would never see them. Staged indexes under `rebuilt/` are ours."""
    if not fs.exists(report_path):
        return []
    staged = posixpath.join(report_path.rstrip("/"), STAGED_DIR) + "/"
    found = []
    for name in sorted(fs.find(report_path, withdirs=False)):
        leaf = posixpath.basename(name)
        is_checkpoint_file = (name.endswith(INDEX_SUFFIX) or parse_data_filename(name) is not None
                              or leaf == STATE_FILE)
        if is_checkpoint_file and not (name.startswith(staged) and name.endswith(INDEX_SUFFIX)):
            found.append(name)
    return found


def same_filesystem_path(root_url: str, other_url: str) -> str | None:
    """`other_url` as a path on the root's filesystem, when both live on the same one; else None."""
    fs, _ = storage.url_to_fs(root_url)
    other_fs, other = storage.url_to_fs(other_url)
    if type(fs) is not type(other_fs):
        return None
    return posixpath.normpath(other)


def distinct_roots(urls: list[str]) -> list[str]:
    """Drop repeated roots and roots inside another root, so no prefix is audited twice."""
    keyed = []
    for url in urls:
        fs, path = storage.url_to_fs(url.rstrip("/") or url)
        keyed.append((type(fs).__name__, path.rstrip("/") or "/", url))
    kept = []
    for kind, path, url in sorted(keyed, key=lambda k: (k[0], len(k[1]))):
        if any(kind == k and (path == p or path.startswith(p.rstrip("/") + "/")) for k, p, _ in kept):
            continue
        kept.append((kind, path, url))
    order = {url: i for i, url in enumerate(urls)}
    return [url for _, _, url in sorted(kept, key=lambda k: order[k[2]])]
