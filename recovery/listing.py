"""List a root the way a big bucket needs: a few directory levels one delimiter listing at a time,
then what lies below in recursive listings of groups of sibling directories, so that different
workers list different parts of even a root whose one child holds everything. On an object store a
group is one flat listing of a name prefix (one request per page of objects); elsewhere each
directory of the group is listed on its own. Sizes and modification times come with the listing (no
per-file stat), and listings are never cached (see recovery.storage).

Files are `Listed`: path, size, modification time and the store's identity of the bytes, each as
the listing gave it. Earlier ckpt-rescue report directories inside a root are recognised by their
files, and the indexes they staged under `rebuilt/` are left out: a staged copy is not a checkpoint.
An index vault inside a root (its marker, `ckpt-rescue-vault.json`) is left out whole: its `.index`
files have no data beside them.
"""

import itertools
import posixpath
from typing import NamedTuple

from . import storage, stores

# Written into a report directory before a run does any work, so even a run that stopped before its
# summary leaves a directory the next audit recognises as reports, not checkpoints.
REPORT_MARKER = ".ckpt-rescue-report"
STAGED_DIR = "rebuilt"
_REPORT_FILES = ("summary.json", "records.jsonl")   # reports written before the marker existed have both
VAULT_MARKER = "ckpt-rescue-vault.json"   # recovery.vault.tree.MARKER: a vault's whole tree is left out


class Listed(NamedTuple):
    """One file as a listing gave it, the one shape every step sees: `mtime` in epoch seconds and
    `identity` the store's name for its bytes (recovery/stores: a GCS generation, an S3 ETag, a local
    mtime, size and inode), each None where the store gives none."""

    path: str
    size: int
    mtime: float | None = None
    identity: str | None = None


def listed(store, name: str, entry: dict) -> Listed:
    """A listing entry (fsspec's dict) as a Listed file of `store`."""
    return Listed(name, int(entry.get("size") or 0), store.mtime(entry), store.identity(entry))


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


def top_level(fs, root: str, exclude: str | None = None):
    """(files, child directories) directly under `root`: files as Listed. A child with an empty name
    (objects named `root//...`) is `root/`. An index vault is left out whole."""
    files, children = [], []
    store = stores.store_for_fs(fs)
    entries = fs.ls(root, detail=True)
    if any(posixpath.basename(entry["name"].rstrip("/")) == VAULT_MARKER for entry in entries
           if entry.get("type") != "directory"):
        return [], []
    for entry in entries:
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
            files.append(listed(store, name, entry))
    if _is_report_dir(root.rstrip("/"), {posixpath.basename(f[0]) for f in files}):
        staged = posixpath.join(root.rstrip("/"), STAGED_DIR)
        children = [c for c in children if c != staged]
    return files, children


def everything_under(fs, directory: str, exclude: str | None = None) -> list:
    """Every file below `directory` as Listed, from one paginated recursive listing."""
    return without_earlier_reports(_found(fs, fs.find(directory, detail=True, withdirs=False), exclude))


def _found(fs, found: dict, exclude: str | None) -> list:
    store = stores.store_for_fs(fs)
    return [listed(store, name, info) for name, info in found.items()
            if info.get("type") != "directory" and not _excluded(name, exclude)]


def everything_under_group(fs, parent: str, prefix: str, members: tuple, exclude: str | None = None) -> list:
    """Every file below the directories `members` of `parent`, which are exactly the ones whose names
    start with `prefix` (see sibling_groups). Files directly in `parent` are its own listing's. Where
    the store's recursive listing takes a name prefix (gcsfs, s3fs) the group is one listing."""
    parent = parent.rstrip("/")
    if not stores.store_for_fs(fs).prefix_listing:
        return [item for member in members for item in everything_under(fs, f"{parent}/{member}", exclude)]
    wanted = set(members)
    found = fs.find(parent, prefix=prefix, detail=True, withdirs=False)
    files = [item for item in _found(fs, found, exclude)
             if item[0].startswith(parent + "/") and item[0][len(parent) + 1:].split("/", 1)[0] in wanted
             and "/" in item[0][len(parent) + 1:]]
    return without_earlier_reports(files)


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


def without_earlier_reports(files: list) -> list:
    """Drop what earlier audits staged, `D/rebuilt/**` where D holds a report (marker, or summary and
    records), and every file of an index vault (`V/**` where V holds the vault's marker)."""
    names_by_dir: dict = {}
    for item in files:
        names_by_dir.setdefault(posixpath.dirname(item[0]), set()).add(posixpath.basename(item[0]))
    hidden = [posixpath.join(d, STAGED_DIR) + "/" for d, names in names_by_dir.items() if _is_report_dir(d, names)]
    hidden += [d.rstrip("/") + "/" for d, names in names_by_dir.items() if VAULT_MARKER in names]
    if not hidden:
        return files
    return [item for item in files if not any(item[0].startswith(h) for h in hidden)]


def _is_report_dir(directory: str, names: set) -> bool:
    return REPORT_MARKER in names or all(name in names for name in _REPORT_FILES)


def _excluded(path: str, exclude: str | None) -> bool:
    """The report directory may sit inside a root: its staged indexes are not checkpoints."""
    return bool(exclude) and (path == exclude or path.startswith(exclude.rstrip("/") + "/"))


def hidden_checkpoint_files(fs, report_path: str) -> list:
    """Checkpoint files inside a report directory that are not ours: an audit that leaves the report
    directory out of its listing would never see them. Staged indexes under `rebuilt/` are ours."""
    from tfbundle import INDEX_SUFFIX, parse_data_filename

    from .discovery import STATE_FILE

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
