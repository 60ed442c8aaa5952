"""Putting a rebuilt index somewhere: staged under the report directory, or in place.

In place means create-only: never overwrite an `.index`, re-check right before writing, and read
back afterwards (README, "Safety"). A concurrent writer that got there first is not an error; its bytes
are compared with ours.
"""

import posixpath
from urllib.parse import quote

from tfbundle import index_filename

from . import storage
from .listing import STAGED_DIR
from .stores import names


class IndexAppeared(Exception):
    """An index exists where we were about to write one: left untouched."""


# Characters an encoded segment keeps as they are; everything else is percent-encoded (UTF-8).
_SEGMENT_SAFE = "-_.~=+@,"
_LAST_SEGMENT_ROOM = names.NAME_MAX - len(".index")
# Encoded object paths longer than this are staged as one hashed name under LONG_PATHS, so that the report
# directory's own path and this one stay within the OS's path limit (4096 bytes on Linux).
_ENCODED_PATH_BUDGET = 2048
LONG_PATHS = names.HASH_MARK + "long"      # never an encoded segment: `%` is always `%XX` there


def staged_path(report_dir: str, display_prefix: str) -> str:
    """`DIR/rebuilt/<scheme>/<encoded path>.index`: one place per prefix, stable across re-runs.

    The object path is percent-encoded segment by segment (`urllib.parse.unquote` gives it back), so
    the staged file stays under DIR whatever the name holds (`..`, `//`, a leading `/`, `\\`, `%`)
    and two different prefixes never share a staged file. A segment that would exceed the file name
    limit keeps its head and ends in a hash of itself (`stores.names.fitted`); a path that would be
    too long for the OS as a whole becomes one such segment under `%-long/`. Neither decodes back:
    the record (its `prefix`) and promote.sh carry the full target.
    """
    if "://" in display_prefix:
        scheme, _, rest = display_prefix.partition("://")
    elif display_prefix.startswith("/"):
        scheme, rest = "local", display_prefix[1:]
    else:
        scheme, rest = "relative", display_prefix
    encoded = encode_object_path(rest)
    if len(encoded.encode("utf-8")) > _ENCODED_PATH_BUDGET:
        segments = [LONG_PATHS, names.fitted(encoded.replace("/", "%2F"), _LAST_SEGMENT_ROOM, hashed=encoded)]
    else:
        *parents, last = encoded.split("/")
        segments = [names.fitted(segment) for segment in parents] + [names.fitted(last, _LAST_SEGMENT_ROOM)]
    return posixpath.join(report_dir.rstrip("/"), STAGED_DIR, encode_segment(scheme),
                          index_filename("/".join(segments)))


def encode_segment(segment: str) -> str:
    """A name that is one plain path segment: never empty, `.` or `..`, no `/` or `\\`; reversible."""
    encoded = quote(segment, safe=_SEGMENT_SAFE)
    if encoded.strip(".") == "":
        encoded = encoded.replace(".", "%2E")
    return encoded


def encode_object_path(path: str) -> str:
    """Percent-encode `path` keeping its single `/` separators as directories; every slash that
    would make an empty segment (leading, trailing, doubled) is encoded as %2F instead."""
    out, previous_empty = "", True
    for i, segment in enumerate(path.split("/")):
        encoded = encode_segment(segment) if segment else ""
        if i > 0:
            out += "/" if (encoded and not previous_empty) else "%2F"
        out += encoded
        previous_empty = not encoded
    return out


def stage_index(report_fs, report_dir: str, display_prefix: str, index_bytes: bytes) -> str:
    path = staged_path(report_dir, display_prefix)
    storage.write_replaceable(report_fs, path, index_bytes)
    return path


def write_in_place(fs, prefix: str, index_bytes: bytes, data_sizes: dict | None = None) -> str:
    """Create `prefix.index`; IndexAppeared if one exists (ours, identical, or someone else's).

    `data_sizes` (path -> size as fitted) is re-checked first: data that changed since the rebuild
    was planned gets no index.
    """
    path = index_filename(prefix)
    if storage.fresh_exists(fs, path):
        raise IndexAppeared(_describe_existing(fs, path, index_bytes))
    for data_path, size in (data_sizes or {}).items():
        now = storage.info(fs, data_path)["size"]
        if now != size:
            raise OSError(f"{storage.display(fs, data_path)} changed size during the rebuild ({size} -> {now}); "
                          "nothing written")
    try:
        storage.write_new(fs, path, index_bytes)
    except FileExistsError:
        raise IndexAppeared(_describe_existing(fs, path, index_bytes)) from None
    written = storage.read_bytes(fs, path)
    if written != index_bytes:
        raise OSError(f"{storage.display(fs, path)} reads back differently from what was written")
    return path


def _describe_existing(fs, path: str, index_bytes: bytes) -> str:
    try:
        same = storage.read_bytes(fs, path) == index_bytes
    except OSError:
        same = False
    where = storage.display(fs, path)
    if same:
        return f"{where} already exists with identical bytes (another run wrote it)"
    return f"{where} already exists and differs; left untouched"
