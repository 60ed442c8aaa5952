"""Storage access through fsspec: local paths, file://, gs://, s3://, memory://, and any store
registered in recovery.stores.

These helpers are the same for every backend; what differs (listing options, create-only writes,
which errors are transient, how a path is shown) is asked of the store (recovery/stores/). Listings
are never cached: deciding "this index is missing" from a stale listing could lead to writing over a
fresh index. Writes of new files never overwrite.

Transient failures (timeouts, HTTP 408/429/5xx, connection resets) are retried by the clients
themselves: gcsfs 6 attempts with exponential backoff of 1, 2, 4, 8, 16 s (+ jitter); botocore 5
attempts (legacy mode), and s3fs retries SlowDown and connection errors 5 times on top. When they
persist, the helpers here raise StorageUnavailable, which is deliberately not an OSError: code that
turns an unreadable file into a refusal must not turn "the store did not answer" into a verdict.
"""

import contextlib
import os
import posixpath

import fsspec

from tfbundle import ByteSource

from . import stores
from .caches import SharedCache
from .stores.base import NotARegularFile, StorageUnavailable, parent
from .stores.local import open_regular

__all__ = ["NotARegularFile", "StorageUnavailable", "parent"]     # defined with the stores, used through this module


_local_resolved = SharedCache(4096)      # a local URL -> (fsspec's filesystem, path), in this process


def url_to_fs(url: str, **options):
    """(filesystem, path) for a URL or local path; storage options may be given per call. A local URL is
    resolved once per process: fsspec gives every local path the same filesystem, and an audit asks for
    each directory's several times (fsspec's parsing was a fifth of reading a carried directory's snapshot)."""
    store = stores.store_for(url)
    if options or not store.local:
        return fsspec.core.url_to_fs(url, **{**store.fs_options, **options})
    key = url if url.startswith(("/", "file:///", "local:///")) else (url, os.getcwd())   # relative: to the cwd
    return _local_resolved.get_or_compute(key, lambda: fsspec.core.url_to_fs(url, **store.fs_options))


def is_transient(exc: BaseException) -> bool:
    """Does this exception (or one it was raised from) say "the store did not answer, try again"?"""
    return stores.is_transient(exc)


@contextlib.contextmanager
def unavailable_if_transient(fs, path: str, doing: str = "reading"):
    """Re-raise a transient failure as StorageUnavailable naming the object; anything else unchanged."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise StorageUnavailable(f"{doing} {display(fs, path)}: the store kept failing after retries "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                     ) from exc
        raise


def in_words(exc: BaseException) -> str:
    """An error on one line for a person: "Permission denied: /a/b" for an OS error that names its file,
    else the first line of its message, after its kind when the kind says more than the message
    (s3fs raises PermissionError("Access Denied"))."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    text = (str(exc).strip().splitlines() or [""])[0]
    kind = type(exc).__name__
    return f"{kind}: {text}" if text and type(exc) not in (OSError, Exception) else text or kind


def is_local(fs) -> bool:
    """Are this filesystem's paths this machine's OS paths?"""
    return stores.store_for_fs(fs).local


def display(fs, path: str) -> str:
    """The path as a user would type it: local paths bare, remote ones with their scheme."""
    return stores.store_for_fs(fs).display(fs, path)


def split_prefix(url: str) -> tuple:
    """(filesystem, prefix path) for a checkpoint prefix as a user or a record gives it: the one place
    prefixes are normalised.

    A prefix may end in "/": TF1 `saver.save(sess, "model_dir/")` writes `model_dir/.index`,
    `model_dir/.data-00000-of-00001` and `model_dir/.meta`, and published pretrained models ship so.
    fsspec strips that slash (locally, on S3), which would turn the prefix into its directory; it is
    put back. `prefix + ".index"` is then the index on every filesystem.
    """
    fs, path = url_to_fs(url)
    if url.endswith("/") and not path.endswith("/"):
        path += "/"
    return fs, path


def prefix_directory(prefix: str) -> str:
    """The directory that holds a prefix's files: `a` for `a/ckpt-1`, `a/model_dir` for `a/model_dir/`."""
    return posixpath.dirname(prefix)


def prefix_name(prefix: str) -> str:
    """A prefix's own name for messages: `ckpt-1` for `a/ckpt-1`, `model_dir/` for `a/model_dir/`."""
    if prefix.endswith("/"):
        return posixpath.basename(prefix.rstrip("/")) + "/"
    return posixpath.basename(prefix)


def open_source(fs, path: str, size: int | None = None) -> ByteSource:
    """Sequential-friendly read handle: the store's open options (large read-ahead blocks for remote
    files), a plain file locally (a regular one only: see open_read)."""
    store = stores.store_for_fs(fs)
    if store.local:
        return ByteSource(open_regular(path), size, name=path)
    with unavailable_if_transient(fs, path):
        handle = fs.open(path, "rb", **store.open_options)
    return ByteSource(_GuardedFile(fs, path, handle), size if size is not None else handle.size,
                      name=display(fs, path))


class _GuardedFile:
    """A remote file whose reads raise StorageUnavailable when the store keeps failing."""

    def __init__(self, fs, path: str, handle):
        self._fs, self._path, self._handle = fs, path, handle

    def read(self, n: int = -1) -> bytes:
        with unavailable_if_transient(self._fs, self._path):
            return self._handle.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        self._handle.close()


def fresh_exists(fs, path: str) -> bool:
    """Existence straight from the backend, bypassing any listing cache."""
    fs.invalidate_cache(parent(path))
    with unavailable_if_transient(fs, path, "checking"):
        return fs.exists(path)


def open_read(fs, path: str):
    """A file opened for reading. Locally only a regular file (or a link to one) is opened: a FIFO or a
    device named like a checkpoint file is refused (NotARegularFile, an OSError) instead of blocking."""
    if stores.store_for_fs(fs).local:
        return open_regular(path)
    with unavailable_if_transient(fs, path):
        return fs.open(path, "rb")


def read_bytes(fs, path: str) -> bytes:
    with unavailable_if_transient(fs, path):
        with open_read(fs, path) as f:
            return f.read()


def read_head(fs, path: str, size: int = 256) -> bytes:
    with unavailable_if_transient(fs, path):
        with open_read(fs, path) as f:
            return f.read(size)


def info(fs, path: str) -> dict:
    with unavailable_if_transient(fs, path, "checking"):
        return fs.info(path)


def ls(fs, path: str) -> list:
    """`fs.ls(path, detail=True)`, each entry as the store says the audit takes it (`listed`)."""
    with unavailable_if_transient(fs, path, "listing"):
        return listed(fs, fs.ls(path, detail=True))


def listed(fs, entries) -> list:
    """Listing entries typed "file" (regular files only, the only thing ever opened), "directory", or
    "other" with "what" saying what it is (a FIFO, a device, a symbolic link to a directory or to nothing)."""
    store = stores.store_for_fs(fs)
    return [store.listed(entry) for entry in entries]


def occupant(fs, path: str) -> str | None:
    """What takes up `path` though no file is listed there (a directory, a FIFO, a dangling link), in
    words; None when a file can be created there."""
    return stores.store_for_fs(fs).occupant(path)


def glob(fs, pattern: str) -> list:
    with unavailable_if_transient(fs, pattern, "listing"):
        return fs.glob(pattern)


def write_new(fs, path: str, data: bytes, durable: bool = True) -> None:
    """Create `path` with `data`, atomically, failing with FileExistsError if it already exists: the
    store's create-only write (a hard link locally, ifGenerationMatch=0 on GCS, If-None-Match: * on S3;
    check then write where the store has nothing better). `durable=False`: locally, no fsync (see
    stores/local.py); an object store's write is durable once it returns either way."""
    store = stores.store_for_fs(fs)
    if store.local and not durable:
        store.create_new(fs, path, data, durable=False)
        return
    with contextlib.nullcontext() if store.local else unavailable_if_transient(fs, path, "writing"):
        store.create_new(fs, path, data)


def write_new_from(fs, path: str, source, size: int, **options) -> None:
    """`write_new` of the next `size` bytes of the readable binary file `source`, never holding them all in
    memory (a resumable upload on GCS, a multipart one on S3, both create-only); `options`: the store's
    (part_bytes)."""
    store = stores.store_for_fs(fs)
    with contextlib.nullcontext() if store.local else unavailable_if_transient(fs, path, "writing"):
        store.create_new_from(fs, path, source, size, **options)


def write_replaceable(fs, path: str, data: bytes) -> None:
    """For our own outputs (reports): atomic replace locally, plain upload elsewhere."""
    stores.store_for_fs(fs).write_replaceable(fs, path, data)
