"""When is a directory unchanged: the digest of its listing (every file's name, size and the store's
identity of its bytes). Equal digests mean every file is the one listed before; a store that gives no
identity (memory://) gives no digest, and such a directory is always judged afresh."""

import hashlib
import posixpath
from operator import attrgetter


def listing_digest(directory: str, files) -> str | None:
    """sha256 of the directory's files (recovery.listed.Listed, merge temp directories included), by
    name relative to it; None when a file has no identity. One line per file, hashed at once (a carried
    night digests every directory's listing; the bytes hashed are the ones every vault's heads hold)."""
    base = directory.rstrip("/") + "/"
    lines = []
    for item in sorted(files, key=attrgetter("path")):
        if item.identity is None:
            return None
        path = item.path
        name = path[len(base):] if path.startswith(base) else posixpath.basename(path)
        lines.append(f"{name}\0{item.size}\0{item.identity}\n")
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
