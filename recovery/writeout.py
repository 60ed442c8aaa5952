"""Putting a rebuilt index somewhere: staged under the report directory, or in place.

In place means create-only: never overwrite an `.index`, re-check right before writing, and read
back afterwards (DESIGN §5). A concurrent writer that got there first is not an error; its bytes
are compared with ours.
"""

import posixpath
import re

from tfbundle import index_filename

from . import storage


class IndexAppeared(Exception):
    """An index exists where we were about to write one: left untouched."""


def staged_path(report_dir: str, display_prefix: str) -> str:
    """`DIR/rebuilt/<scheme>/<path>.index`: one place per prefix, stable across re-runs."""
    scheme, _, rest = display_prefix.partition("://") if "://" in display_prefix else ("local", "", display_prefix)
    safe = re.sub(r"[^A-Za-z0-9._/=+-]", "_", rest).lstrip("/")   # `model_dir/` stages as model_dir/.index
    return posixpath.join(report_dir.rstrip("/"), "rebuilt", scheme, safe + ".index")


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
        now = fs.info(data_path)["size"]
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
