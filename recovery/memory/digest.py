"""When is a directory unchanged: the digest of its listing (every file's name, size and the store's
identity of its bytes). Equal digests mean every file is the one listed before; a store that gives no
identity (memory://) gives no digest, and such a directory is always judged afresh."""

import hashlib
import posixpath


def listing_digest(directory: str, files) -> str | None:
    """sha256 of the directory's files (recovery.listing.Listed, merge temp directories included), by
    name relative to it; None when a file has no identity."""
    digest = hashlib.sha256()
    base = directory.rstrip("/") + "/"
    for item in sorted(files, key=lambda f: f.path):
        if item.identity is None:
            return None
        name = item.path[len(base):] if item.path.startswith(base) else posixpath.basename(item.path)
        digest.update(f"{name}\0{item.size}\0{item.identity}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
