"""What a store is, declared once per backend: the interface every backend module fills in.

A backend is more than its fsspec filesystem: the audit must know which errors mean "try again", how
to write a file that must not exist yet, what a listing calls a modification time and what in it
names the bytes, and how to tell a user why the store cannot be reached. `Store` holds those answers;
its defaults are what any fsspec filesystem allows (check then write, no probe, no identity), so an unknown scheme still
works, only less safely. Plain Python: a store wraps an fsspec filesystem, it does not subclass one.
"""

import contextlib
import datetime
import posixpath
from urllib.parse import urlparse


class StorageUnavailable(Exception):
    """The store kept failing with errors that mean "try again" after the client's own retries:
    nothing can be concluded about the object (record status `error`, exit code 3).

    Deliberately not an OSError: code that turns an unreadable file into a refusal must not turn "the
    store did not answer" into a verdict."""


# Why a listed entry is not read ("unread" in a listed entry): a FIFO, device or socket; a symbolic link
# to nothing; a symbolic link to a directory, which the listing does not follow.
SPECIAL, DANGLING, LINKED_DIRECTORY = "special", "dangling", "linked-directory"


class NotARegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a socket): never opened, since opening a FIFO
    waits forever for a writer and opening a device may act on it. Not transient: a finding, not a retry."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


# HTTP statuses that mean "try again" on every HTTP store.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# A file written with create_new_from goes up in parts of about this size: what one upload holds in memory.
UPLOAD_PART_BYTES = 16 << 20


class Store:
    """One storage backend. Subclasses set the class attributes and override what differs."""

    name = "fsspec"                     # for messages and docs
    schemes: tuple = ()                 # URL schemes it serves ("gs", "gcs"); "" means a bare local path
    protocols: tuple = ()               # fsspec `fs.protocol` names that identify its filesystems
    fs_options: dict = {}               # options for every filesystem made for it (e.g. no listings cache)
    open_options: dict = {}             # options for opening a file to stream it (read-ahead blocks)
    # Listing-entry keys of the modification time, first present wins. The default tries every name
    # the fsspec backends use, for a scheme no store declares.
    mtime_keys: tuple = ("mtime", "LastModified", "updated", "created")
    local = False                       # paths are this machine's OS paths (os.link, os.replace, open)
    in_process = False                  # lives in this process only: Beam workers elsewhere cannot see it
    prefix_listing = False              # fs.find(parent, prefix=NAME) lists every object whose name starts so
    checks_access = False               # `probe` is worth a call before any work (a remote store)
    requires: tuple = ()                # modules fsspec needs for it (checked before probing)
    install_hint = ""                   # how to install them

    # --- what a URL or a filesystem is ----------------------------------------------------------------

    def claims(self, url: str) -> bool:
        """Is `url` one of this store's (by its scheme)?"""
        return scheme(url) in self.schemes

    def serves(self, fs) -> bool:
        """Is `fs` one of this store's filesystems (by its fsspec protocol)?"""
        return bool(set(fs_protocols(fs)) & set(self.protocols))

    def display(self, fs, path: str) -> str:
        """The path as a user would type it, with its scheme."""
        return fs.unstrip_protocol(path)

    def os_path(self, url: str) -> str | None:
        """Where `url` is on this machine's filesystem; None for a store that is not local."""
        return None

    # --- listing ---------------------------------------------------------------------------------------

    def find(self, fs, path: str, **options) -> dict:
        """name -> listing entry of everything below `path` but directories (fsspec's `find` with
        detail), in name order; `options`: the store's own (a name `prefix` where prefix_listing)."""
        return fs.find(path, detail=True, withdirs=False, **options)

    def files_under(self, fs, path: str):
        """(regular files below `path` as Listed, in name order; every other entry as `find` gives it), where
        the store can say so without a listing entry per file; None: ask `find`."""
        return None

    # --- what a listing entry says --------------------------------------------------------------------

    def mtime(self, entry: dict) -> float | None:
        """Modification time of a listed file in epoch seconds, or None where the store gives none."""
        for key in self.mtime_keys:
            seconds = timestamp(entry.get(key))
            if seconds is not None:
                return seconds
        return None

    def listed(self, entry: dict) -> dict:
        """A listing entry as the audit takes it: "type" is "file" (a regular file, the only thing ever
        opened), "directory", or "other" with "what" saying what it is in words (a FIFO, a device, a
        symbolic link to a directory or to nothing), and "unread" one of SPECIAL, DANGLING, LINKED_DIRECTORY.
        An object store lists objects and prefixes only."""
        if entry.get("type") in ("file", "directory"):
            return entry
        return {**entry, "type": "other", "what": f"not a file (listed as {entry.get('type')!r})", "unread": SPECIAL}

    def occupant(self, path: str) -> str | None:
        """What takes up `path` when a listing showed no file there, in words ("a directory", "a dangling
        symbolic link ..."); None when a file may simply be created there. On an object store a
        "directory" is only a name prefix, and an object of that name can always be created beside it."""
        return None

    def identity(self, entry: dict) -> str | None:
        """A string that changes whenever the listed object's bytes may have changed, taken from the
        listing entry alone (no read, no extra request); None where the store gives nothing safe.

        Equal identities mean the same bytes as when the identity was taken; a different identity
        means only that they may differ (a re-save of the same bytes can change it). The nightly
        audit keeps it to tell "the object seen last night" from "saved again since"."""
        return None

    # --- writing ---------------------------------------------------------------------------------------

    def create_new(self, fs, path: str, data: bytes) -> None:
        """Create `path` holding `data`; FileExistsError (naming the path as a user types it) when it
        exists. Default: check, then write; safe only with a single writer."""
        fs.invalidate_cache(parent(path))
        if fs.exists(path):
            raise FileExistsError(self.display(fs, path))
        fs.pipe_file(path, data)

    def create_new_from(self, fs, path: str, source, size: int, part_bytes: int = UPLOAD_PART_BYTES) -> None:
        """Create `path` from the next `size` bytes of the readable binary file `source`, holding about
        `part_bytes` of them in memory at a time; FileExistsError (naming the path) when it exists. Default:
        check, then fsspec's own streaming write; safe only with a single writer."""
        refuse_if_exists(self, fs, path)
        with fs.open(path, "wb") as out:
            for part in read_parts(source, size, part_bytes):
                out.write(part)

    def write_replaceable(self, fs, path: str, data: bytes) -> None:
        """Write one of our own outputs (a report file), replacing an older one."""
        fs.pipe_file(path, data)

    # --- errors ----------------------------------------------------------------------------------------

    def transient(self, exc: BaseException) -> bool | None:
        """True when this one exception (not its causes) of this store's client means "try again",
        False when it means a permanent answer, None when it is not this client's to judge."""
        return None

    # --- before any work: can the store be reached? ------------------------------------------------------

    def probe(self, url: str, stage: dict) -> list:
        """[(problem, fix)] after one bounded call under `url`; [] when it answered. `stage["now"]`
        says what is being waited for, in case the caller's time runs out. Only called when
        `checks_access`; stores without it are checked by the commands themselves."""
        return []

class ObjectStore(Store):
    """A bucket store (GCS, S3, Azure Blob, ...): no listings cache, read-ahead blocks, a recursive
    listing that takes a name prefix, and URLs of the form SCHEME://BUCKET/KEY worth probing."""

    fs_options = {"use_listings_cache": False}
    open_options = {"block_size": 8 << 20, "cache_type": "readahead"}
    prefix_listing = True
    checks_access = True

    def probe(self, url: str, stage: dict) -> list:
        parsed = urlparse(url)
        if not parsed.netloc:
            return [("no bucket name in the URL", "write it as SCHEME://BUCKET/PATH")]
        return self.probe_bucket(parsed.netloc, parsed.path.lstrip("/"), stage)

    def probe_bucket(self, bucket: str, key: str, stage: dict) -> list:
        """`probe` for a URL that names a bucket."""
        return []


def refuse_if_exists(store: Store, fs, path: str) -> None:
    """FileExistsError (naming the path) when `path` exists now: before a large upload starts, so nothing
    goes up only to be refused at the end (the upload's own precondition still guards a race)."""
    fs.invalidate_cache(parent(path))
    if fs.exists(path):
        raise FileExistsError(store.display(fs, path))


def read_parts(source, size: int, part_bytes: int):
    """The next `size` bytes of `source`, in parts of at most `part_bytes`; OSError if it ends sooner."""
    left = size
    while left:
        part = source.read(min(part_bytes, left))
        if not part:
            raise OSError(f"the source ended {left} bytes before the {size} to upload")
        left -= len(part)
        yield part


def scheme(url: str) -> str:
    """The URL's scheme in lower case; "" for a bare local path."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def fs_protocols(fs) -> tuple:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, (tuple, list)) else (proto,)


def parent(path: str) -> str:
    """The directory holding a file or directory path (a trailing "/" is ignored). For a checkpoint
    prefix use `storage.prefix_directory`: a prefix may end in "/"."""
    return posixpath.dirname(path.rstrip("/"))


def causes(exc: BaseException, limit: int = 10):
    """`exc` and what it was raised from, however the client chose to wrap it."""
    seen = 0
    while exc is not None and seen < limit:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


@contextlib.contextmanager
def conditional_create(store: Store, fs, path: str):
    """Around one create with a does-not-exist precondition: its refusal becomes FileExistsError naming
    the path as a user types it; on success the listing cache of its directory is dropped."""
    try:
        yield
    except FileExistsError:
        raise FileExistsError(store.display(fs, path)) from None
    except Exception as exc:
        if any(_precondition_failed(one) for one in causes(exc)):
            raise FileExistsError(store.display(fs, path)) from exc
        raise
    fs.invalidate_cache(parent(path))


def _precondition_failed(exc: BaseException) -> bool:
    """HTTP 412, however the client version chose to say it (a status, a code, botocore's response)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and (response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
                                       or response.get("Error", {}).get("Code") == "PreconditionFailed"):
        return True
    return getattr(exc, "code", None) == 412 or getattr(exc, "status", None) == 412


def timestamp(value) -> float | None:
    """Epoch seconds from a listing's time value: a number, a datetime (naive means UTC) or RFC 3339 text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def is_transient(exc: BaseException, stores) -> bool:
    """Does `exc`, or anything it was raised from, say "the store did not answer, try again"?

    Per exception: what is the same for every client first (StorageUnavailable, not-found and
    permission errors, connection resets and timeouts), then each store's own client, then the
    async HTTP stack fsspec's backends share (aiohttp, fsspec's own timeout)."""
    return any(_verdict(one, stores) for one in causes(exc))


def _verdict(exc: BaseException, stores) -> bool:
    shared = _shared_verdict(exc)
    if shared is not None:
        return shared
    for store in stores:
        own = store.transient(exc)
        if own is not None:
            return own
    return _transport_verdict(exc)


def _shared_verdict(exc: BaseException) -> bool | None:
    if isinstance(exc, StorageUnavailable):
        return True
    if isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):     # resets, refusals, socket and asyncio timeouts
        return True
    return None


def _transport_verdict(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "ClientResponseError" in names:                       # aiohttp, with a status
        return getattr(exc, "status", None) in RETRYABLE_STATUS
    return bool(names & {"ClientConnectionError", "ClientPayloadError", "ServerTimeoutError", "FSTimeoutError"})
