"""Storage access through fsspec: local paths, file://, gs://, s3://, memory://.

Listings are never cached: deciding "this index is missing" from a stale listing could lead to
writing over a fresh index. Writes of new files never overwrite: a hard link locally, a
does-not-exist precondition on GCS and S3.
"""

import os
import posixpath
import uuid

import fsspec

from tfbundle import ByteSource

_NO_LISTING_CACHE = {"gs": {"use_listings_cache": False}, "gcs": {"use_listings_cache": False},
                     "s3": {"use_listings_cache": False}, "s3a": {"use_listings_cache": False}}
READ_BLOCK_SIZE = 8 << 20


def url_to_fs(url: str, **options):
    """(filesystem, path) for a URL or local path; storage options may be given per call."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    merged = {**_NO_LISTING_CACHE.get(protocol, {}), **options}
    return fsspec.core.url_to_fs(url, **merged)


def is_local(fs) -> bool:
    return "file" in _protocols(fs) or "local" in _protocols(fs)


def _protocols(fs) -> tuple:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, (tuple, list)) else (proto,)


def display(fs, path: str) -> str:
    """The path as a user would type it: local paths bare, remote ones with their scheme."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def parent(path: str) -> str:
    """The directory holding a file or directory path (a trailing "/" is ignored). For a checkpoint
    prefix use `prefix_directory`: a prefix may end in "/"."""
    return posixpath.dirname(path.rstrip("/"))


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
    """Sequential-friendly read handle: large read-ahead blocks for remote files, plain file locally."""
    if is_local(fs):
        return ByteSource(open(path, "rb"), size, name=path)
    handle = fs.open(path, "rb", block_size=READ_BLOCK_SIZE, cache_type="readahead")
    return ByteSource(handle, size if size is not None else handle.size, name=display(fs, path))


def fresh_exists(fs, path: str) -> bool:
    """Existence straight from the backend, bypassing any listing cache."""
    fs.invalidate_cache(parent(path))
    return fs.exists(path)


def read_bytes(fs, path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()


def write_new(fs, path: str, data: bytes) -> None:
    """Create `path` with `data`, atomically, failing with FileExistsError if it already exists.

    Local: write a temp file beside it, fsync, then hard-link it into place (link never replaces).
    GCS/S3: one create-only upload (ifGenerationMatch=0 / If-None-Match: *).
    Elsewhere (memory://): check, then write; fine for a single process.
    """
    if is_local(fs):
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(path)}.ckpt-rescue-{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _fsync_dir(directory)
        return
    if set(_protocols(fs)) & {"gs", "gcs", "s3", "s3a"}:
        fs.pipe_file(path, data, mode="create")
        return
    if fresh_exists(fs, path):
        raise FileExistsError(path)
    fs.pipe_file(path, data)


def write_replaceable(fs, path: str, data: bytes) -> None:
    """For our own outputs (reports): atomic replace locally, plain upload elsewhere."""
    if is_local(fs):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    fs.pipe_file(path, data)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
