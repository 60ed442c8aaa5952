"""List a root the way a big bucket needs: its top level once, then one recursive listing per child,
so children can be listed by different workers. Sizes come with the listing (no per-file stat),
and listings are never cached (see recovery.storage)."""

import posixpath

from . import storage


class BadRoot(ValueError):
    """A root that does not exist or is not a directory: a usage error, not a finding."""


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
    raise BadRoot(f"{url}: {'is a file, not a directory' if exists else 'does not exist'}")


def top_level(fs, root: str, exclude: str | None = None):
    """(files, child directories) directly under `root`: files as (path, size)."""
    files, children = [], []
    for entry in fs.ls(root, detail=True):
        name = entry["name"].rstrip("/")
        if name == root.rstrip("/") or _excluded(name, exclude):
            continue
        if entry.get("type") == "directory":
            children.append(name)
        else:
            files.append((name, int(entry.get("size") or 0)))
    return files, children


def everything_under(fs, directory: str, exclude: str | None = None) -> list:
    """Every file below `directory` as (path, size), from one paginated recursive listing."""
    found = fs.find(directory, detail=True, withdirs=False)
    return [(name, int(info.get("size") or 0)) for name, info in found.items()
            if info.get("type") != "directory" and not _excluded(name, exclude)]


def _excluded(path: str, exclude: str | None) -> bool:
    """The report directory may sit inside a root: its staged indexes are not checkpoints."""
    return bool(exclude) and (path == exclude or path.startswith(exclude.rstrip("/") + "/"))


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
