"""Storage access through fsspec: local paths, file://, gs://, s3://, memory://.

Listings are never cached: deciding "this index is missing" from a stale listing could lead to
writing over a fresh index. Writes of new files never overwrite: a hard link locally, a
does-not-exist precondition on GCS and S3.

Transient failures (timeouts, HTTP 408/429/5xx, connection resets) are retried by the clients
themselves: gcsfs 6 attempts with exponential backoff of 1, 2, 4, 8, 16 s (+ jitter); botocore 5
attempts (legacy mode), and s3fs retries SlowDown and connection errors 5 times on top. When they
persist, the helpers here raise StorageUnavailable, which is deliberately not an OSError: code that
turns an unreadable file into a refusal must not turn "the store did not answer" into a verdict.
"""

import contextlib
import json
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


class StorageUnavailable(Exception):
    """The store kept failing with errors that mean "try again" after the client's own retries:
    nothing can be concluded about the object (record status `error`, exit code 3)."""


_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_RETRYABLE_S3_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                       "ServiceUnavailable", "InternalError", "TooManyRequests", "RequestLimitExceeded"}


def is_transient(exc: BaseException) -> bool:
    """Does this exception (or one it was raised from) say "the store did not answer, try again"?"""
    seen = 0
    while exc is not None and seen < 10:
        if _is_transient_one(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, StorageUnavailable):
        return True
    if isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):     # resets, refusals, socket and asyncio timeouts
        return True
    kind = f"{type(exc).__module__}.{type(exc).__name__}"
    status = getattr(exc, "code", None) if kind == "gcsfs.retry.HttpError" else None
    if status is not None:
        return int(status) in _RETRYABLE_STATUS
    response = getattr(exc, "response", None)
    if type(exc).__name__ == "ClientError" and isinstance(response, dict):       # botocore
        meta = response.get("ResponseMetadata", {})
        return (meta.get("HTTPStatusCode") in _RETRYABLE_STATUS
                or response.get("Error", {}).get("Code") in _RETRYABLE_S3_CODES)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "ClientResponseError" in names:                                            # aiohttp, with a status
        return getattr(exc, "status", None) in _RETRYABLE_STATUS
    return bool(names & {"HTTPClientError", "ClientConnectionError", "ClientPayloadError", "ServerTimeoutError",
                         "FSTimeoutError", "ChunkedEncodingError", "ReadTimeout", "ConnectTimeout"}) or (
        "ConnectionError" in names and kind.startswith("requests."))


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
    with unavailable_if_transient(fs, path):
        handle = fs.open(path, "rb", block_size=READ_BLOCK_SIZE, cache_type="readahead")
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


def read_bytes(fs, path: str) -> bytes:
    with unavailable_if_transient(fs, path):
        with fs.open(path, "rb") as f:
            return f.read()


def info(fs, path: str) -> dict:
    with unavailable_if_transient(fs, path, "checking"):
        return fs.info(path)


def ls(fs, path: str) -> list:
    with unavailable_if_transient(fs, path, "listing"):
        return fs.ls(path, detail=True)


def glob(fs, pattern: str) -> list:
    with unavailable_if_transient(fs, pattern, "listing"):
        return fs.glob(pattern)


def write_new(fs, path: str, data: bytes) -> None:
    """Create `path` with `data`, atomically, failing with FileExistsError if it already exists.

    Local: write a temp file beside it, fsync, then hard-link it into place (link never replaces).
    GCS/S3: one create-only upload through the client itself (ifGenerationMatch=0 / If-None-Match: *),
    not fsspec's `mode="create"`, so no library version can quietly turn it into an overwrite.
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
    protocols = set(_protocols(fs))
    if protocols & {"gs", "gcs"}:
        with unavailable_if_transient(fs, path, "writing"):
            _gcs_create(fs, path, data)
        return
    if protocols & {"s3", "s3a"}:
        with unavailable_if_transient(fs, path, "writing"):
            _s3_create(fs, path, data)
        return
    if fresh_exists(fs, path):
        raise FileExistsError(path)
    fs.pipe_file(path, data)


def _gcs_create(fs, path: str, data: bytes) -> None:
    """One multipart upload with ifGenerationMatch=0: the server refuses it (412) if the object exists."""
    bucket, key, _ = fs.split_path(path)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps({'name': key})}\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + (
            f"\r\n--{boundary}--\r\n").encode()
    with _created(fs, path):
        fs.call("POST", f"{fs._location}/upload/storage/v1/b/{{}}/o", bucket, uploadType="multipart",
                ifGenerationMatch="0", data=body, headers={"Content-Type": f'multipart/related; boundary="{boundary}"'})


def _s3_create(fs, path: str, data: bytes) -> None:
    """One PutObject with If-None-Match: * through s3fs's own botocore client: 412 if the key exists."""
    bucket, key, _ = fs.split_path(path)
    with _created(fs, path):
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")


@contextlib.contextmanager
def _created(fs, path: str):
    """Around one conditional create: a failed does-not-exist precondition becomes FileExistsError
    naming the path; on success the listing cache of its directory is dropped."""
    try:
        yield
    except FileExistsError:
        raise FileExistsError(display(fs, path)) from None
    except Exception as exc:
        if _precondition_failed(exc):
            raise FileExistsError(display(fs, path)) from exc
        raise
    fs.invalidate_cache(parent(path))


def _precondition_failed(exc: BaseException) -> bool:
    """HTTP 412 anywhere in the chain, however the client version chose to wrap it."""
    while exc is not None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and (response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
                                           or response.get("Error", {}).get("Code") == "PreconditionFailed"):
            return True
        if getattr(exc, "code", None) == 412 or getattr(exc, "status", None) == 412:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
