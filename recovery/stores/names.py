"""Names a filesystem can hold: one path segment is at most NAME_MAX bytes on every common local
filesystem (ext4, XFS, APFS, NTFS), while object names, percent-encoding and our own temp suffixes can
make longer ones. A name over the limit keeps a readable head and ends in a hash of the whole name, so
two long names never become one; a temp file's name is short whatever it stands beside.
"""

import hashlib
import os
import uuid

NAME_MAX = 255
HASH_MARK = "%-"     # never made by percent-encoding (a `%` is always `%XX` there): no hashed name is a plain one
_HASH_CHARS = 40     # hex digits of sha256 kept: 160 bits
_TEMP_HEAD = 64      # bytes of the original name a temp name keeps, for a person who finds one


def fitted(name: str, room: int = NAME_MAX, hashed: str | None = None) -> str:
    """`name` if its UTF-8 form fits in `room` bytes; else its longest head that leaves room for
    HASH_MARK and a hash of all of `name` (or of `hashed`, what the name stands for), then those.
    Distinct names (distinct `hashed`) give distinct results."""
    if len(name.encode("utf-8", "surrogateescape")) <= room:
        return name
    whole = name if hashed is None else hashed
    digest = hashlib.sha256(whole.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]
    return head(name, room - len(HASH_MARK) - len(digest)) + HASH_MARK + digest


def head(name: str, limit: int) -> str:
    """The longest start of `name` whose UTF-8 form fits in `limit` bytes, cut between characters and
    never inside a `%XX` escape."""
    kept, size = 0, 0
    for char in name:
        size += len(char.encode("utf-8", "surrogateescape"))
        if size > limit:
            break
        kept += 1
    cut = name[:kept]
    escape = cut.rfind("%", max(len(cut) - 2, 0))
    return cut[:escape] if escape != -1 else cut


def temp_beside(path: str, tag: str = "tmp") -> str:
    """A fresh temp file name in `path`'s directory: hidden, unique, and within NAME_MAX whatever
    `path`'s own name holds."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{head(name, _TEMP_HEAD)}.ckpt-rescue-{uuid.uuid4().hex}.{tag}")
