"""The exact check a SavedModel offers: `fingerprint.pb`'s checkpoint_hash is Fingerprint64
(farmhash64) of the variables.index TensorFlow wrote.

Whatever source gives the layout of a SavedModel's `variables/variables`, the layout carries this
hash as `expected_fingerprint` and the engine compares the rebuilt index with it before accepting.
"""

import posixpath

import farmhash

from tfbundle import FormatError

from . import storage
from .context import OrphanContext
from .layout import Layout
from .protos import checkpoint_hash

FINGERPRINT_FILE = "fingerprint.pb"


def savedmodel_dir_of(prefix: str) -> str | None:
    """The export directory when `prefix` is `<dir>/variables/variables`, else None."""
    variables_dir, leaf = posixpath.split(prefix.rstrip("/"))
    export_dir, parent = posixpath.split(variables_dir)
    return export_dir if leaf == parent == "variables" else None


def fingerprint64(data: bytes) -> int:
    """TensorFlow's Fingerprint64 (farmhash64), as fingerprint.pb applies it to variables.index."""
    return farmhash.fingerprint64(data)


def expected_checkpoint_hash(fs, savedmodel_dir: str) -> int | None:
    """checkpoint_hash from `<dir>/fingerprint.pb`; None when there is no fingerprint or it has no hash."""
    try:
        return checkpoint_hash(storage.read_bytes(fs, posixpath.join(savedmodel_dir, FINGERPRINT_FILE)))
    except FileNotFoundError:
        return None


def attach_fingerprint(ctx: OrphanContext, layout: Layout) -> None:
    """Give a layout of a SavedModel's variables the exact check, whatever source the layout came from."""
    if layout.expected_fingerprint is not None:
        return
    export_dir = savedmodel_dir_of(ctx.prefix)
    if export_dir is None:
        return
    try:
        layout.expected_fingerprint = expected_checkpoint_hash(ctx.fs, export_dir)
    except (FormatError, OSError) as exc:
        layout.notes.append(f"{FINGERPRINT_FILE} is unreadable ({exc}): no exact check of the rebuilt index")
