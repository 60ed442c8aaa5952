"""Where a directory's judged records are kept, and how they are read back: one snapshot per time a
directory was judged, under a memory root (the vault, or an earlier report's `previous/`).

    ROOT/memory/<sha256 of directory URL>/<judged>_<run id>/head.json      what was judged: the listing
                                                                            (names, sizes, identities), its
                                                                            digest, how many records follow
    ROOT/memory/<...>/<judged>_<run id>/records-<uuid>.jsonl.gz            the records, as judged (in parts:
                                                                            classification's, then each rebuild's)
    ROOT/memory/<...>/<judged>_<run id>/verified-<when>-<uuid>.jsonl.gz    later --verify-data results of its
                                                                            healthy checkpoints (newest wins)
    ROOT/memory/<...>/<judged>_<run id>/covered-<n>-<uuid>.jsonl.gz        the n records a carried form stands
                                                                            for (read only when asked for)
    ROOT/memory/<...>/<judged>_<run id>/carried-<uuid>.jsonl.gz            what those add to a report that
                                                                            carries them (carry_form.py)

A snapshot is complete when its parts hold as many records as its head says; an incomplete one (a run
that stopped) is never carried and never compared with. Every file is written once, create-only, and
read as written; an unchanged directory adds nothing. The newest complete snapshot of a directory is
what it was when last judged.

A part that cannot be read back (cut short, not gzip, not our lines) makes its snapshot `unreadable`:
it is never carried, the directory is judged afresh and remembered anew, and what could be read is
what tonight is compared with. A damaged vault must cost a night's reading, never an error every night.
"""

import gzip
import json
import logging
import posixpath
import uuid
import zlib
from dataclasses import dataclass, field

from .. import storage, stores
from ..caches import SharedCache
from ..report.schema import parse_json, record_from_dict, record_line
from ..vault.tree import canonical_directory, name_digest
from .nightly import compact, epoch

TREE = "memory"
HEAD = "head.json"
FORMAT = "ckpt-rescue-memory/1"
RECORDS_PART, VERIFIED_PART = "records", "verified"
CARRIED_PART = "carried"      # what the directory adds to a report that carries it (carry_form.py)
COVERED_PART = "covered"      # the records a carried form stands for: read only when something asks for them

log = logging.getLogger(__name__)

_latest = SharedCache(64)     # (memory root, directory, run to leave out) -> Snapshot | None, per process


@dataclass(frozen=True)
class Head:
    """What a snapshot says about itself."""

    directory: str                # as a user types it
    root: str
    digest: str | None            # of the listing judged (digest.py); None: never carried
    judged: str                   # ISO 8601: the run's clock
    run_id: str
    report_dir: str               # where that run staged its indexes
    records: int                  # records the snapshot holds when complete
    judged_with: str = ""         # nightly.Nightly.judged_with of that run
    files: tuple = ()             # (name relative to the directory, size, identity) of every file listed
    gone: bool = False            # the directory itself was gone (its records are `deleted`)

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, **{name: getattr(self, name) for name in self.__dataclass_fields__}}
        doc["files"] = [list(f) for f in self.files]
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Head":
        doc = parse_json(data)      # orjson: a head lists every file of its directory, read each carried night
        found = doc.get("format") if isinstance(doc, dict) else None
        if found != FORMAT:
            raise ValueError(f"not a memory snapshot head (format {found!r})")
        doc.pop("format")
        try:
            doc["files"] = tuple(tuple(f) for f in doc.get("files", ()))
            return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
        except TypeError as exc:          # a field missing or of another shape: no head of ours
            raise ValueError(f"not a memory snapshot head ({exc})") from None

    def shard_identity(self) -> dict:
        """name -> (size, identity) of the files listed."""
        return {name: (size, identity) for name, size, identity in self.files}


@dataclass
class Snapshot:
    head: Head
    location: str                                   # its folder, as a filesystem path under the memory root
    records: dict = field(default_factory=dict)     # (prefix, kind) -> Record, as judged
    verified: dict = field(default_factory=dict)    # (prefix, kind) -> Record, newest verification since
    carried: list = field(default_factory=list)     # paths of its carried forms (carry_form.py), read when used
    pending: list = field(default_factory=list)     # (path, records it holds) of its covered parts, not read yet
    reader: object = None                           # the MemoryStore that reads them
    unreadable: str = ""                            # why one of its parts could not be read back

    @property
    def complete(self) -> bool:
        return len(self.records) + sum(count for _, count in self.pending) == self.head.records

    def judged(self) -> dict:
        """(prefix, kind) -> every record as judged, the covered parts read now if not yet. A new dict
        replaces the old: a worker's threads may share this snapshot (it is cached per process)."""
        if self.pending:
            loaded = dict(self.records)
            for path, _ in self.pending:
                self.reader.read_part_into(self, path, loaded)
            self.records, self.pending = loaded, []
        return self.records

    def current(self) -> dict:
        """(prefix, kind) -> the record as it stands: a later verification over the judged one (of what
        could be read: see `unreadable`)."""
        judged = self.judged()
        return {**judged, **{key: rec for key, rec in self.verified.items() if key in judged}}

    def current_read(self) -> dict:
        """current() of the records read so far: all but those of covered parts not yet read (what a
        carried form stands for, which a night that uses the form never reads)."""
        return {**self.records, **{key: rec for key, rec in self.verified.items() if key in self.records}}


def _unpacked(path: str, data: bytes) -> bytes:
    """A part's bytes as written, before its gzip (by its name)."""
    return gunzipped(data) if path.endswith(".gz") else data


def gunzipped(data: bytes) -> bytes:
    """A gzip file's bytes, uncompressed. The parts written here are one gzip member each, which zlib
    undoes in one call (gzip.decompress took twice as long: a carried night reads 120 MB of them at
    100k prefixes); anything else (members concatenated) is left to gzip."""
    unzip = zlib.decompressobj(wbits=31)
    try:
        out = unzip.decompress(data)
    except zlib.error:
        return gzip.decompress(data)     # says what is wrong with it
    return out if unzip.eof and not unzip.unused_data else gzip.decompress(data)


def parse_jsonl(data: bytes) -> list:
    """Every line of JSON Lines text, in one parse: the lines as one JSON array (a line this module wrote
    holds no raw line break, JSON escapes them), else line by line without the blank ones."""
    try:
        return parse_json(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]") if data.strip() else []
    except ValueError:
        return [parse_json(line) for line in data.splitlines() if line.strip()]


def key_of(record) -> tuple:
    return (record.prefix, record.kind)


class MemoryStore:
    """Snapshots under one memory root (a vault URL, or an earlier report's `previous/`)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, root = storage.url_to_fs(url)
        self.root = root.rstrip("/")

    def _directory_path(self, directory: str) -> str:
        return posixpath.join(self.root, TREE, name_digest(canonical_directory(directory)))

    def folder(self, directory: str, judged: float, run_id: str) -> str:
        return posixpath.join(self._directory_path(directory), f"{compact(judged)}_{run_id}")

    # --- writing -------------------------------------------------------------------------------------

    def write_head(self, folder: str, head: Head) -> None:
        self._write(posixpath.join(folder, HEAD), head.to_json())

    def write_records(self, folder: str, records, part: str = RECORDS_PART, when: float | None = None) -> str:
        """One part of records (a Record's line each, gzipped: a record's JSON repeats itself, and a vault
        holds one per checkpoint) into a snapshot's folder; returns its path. A covered part's name says
        how many records it holds, so that a snapshot is known complete without reading it."""
        records = list(records)
        stamp = f"-{compact(when)}" if when is not None else f"-{len(records)}" if part == COVERED_PART else ""
        return self._write_part(folder, f"{part}{stamp}", "".join(record_line(r) for r in records).encode("utf-8"))

    def write_carried(self, folder: str, data: bytes) -> str:
        """A carried form (carry_form.to_bytes), gzipped, into a snapshot's folder; returns its path."""
        return self._write_part(folder, CARRIED_PART, data)

    def _write_part(self, folder: str, name: str, data: bytes) -> str:
        path = posixpath.join(folder, f"{name}-{uuid.uuid4().hex[:16]}.jsonl.gz")
        self._write(path, gzip.compress(data, compresslevel=6, mtime=0))
        return path

    def read_carried(self, path: str) -> bytes:
        return _unpacked(path, storage.read_bytes(self.fs, path))

    def _write(self, path: str, data: bytes) -> None:
        if storage.is_local(self.fs):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        storage.write_new(self.fs, path, data, durable=False)

    # --- reading -------------------------------------------------------------------------------------

    def folders(self, directory: str) -> dict:
        """folder name -> [file paths], every snapshot of one directory (one recursive listing)."""
        under = self._directory_path(directory)
        with storage.unavailable_if_transient(self.fs, under, "listing"):
            try:
                paths = list(stores.store_for_fs(self.fs).find(self.fs, under))
            except FileNotFoundError:
                return {}
        found: dict = {}
        for path in paths:
            relative = path[len(under) + 1:].split("/")
            if len(relative) == 2:
                found.setdefault(relative[0], []).append(path)
        return found

    def latest(self, directory: str, leave_out_run: str = "", not_after: float | None = None) -> Snapshot | None:
        """The newest complete snapshot of `directory` (cached per process): what it was when last
        judged. Tonight's own (`leave_out_run`) and any judged after `not_after` are left out."""
        key = (self.url, canonical_directory(directory), leave_out_run, not_after)
        return _latest.get_or_compute(key, lambda: self._newest_complete(directory, leave_out_run, not_after))

    def _newest_complete(self, directory: str, leave_out_run: str, not_after: float | None) -> Snapshot | None:
        limit = compact(not_after) if not_after is not None else None
        for name, paths in sorted(self.folders(directory).items(), reverse=True):
            judged, _, run_id = name.partition("_")
            if (leave_out_run and run_id == leave_out_run) or (limit is not None and judged > limit):
                continue
            snapshot = self.read(posixpath.join(self._directory_path(directory), name), paths)
            if snapshot is not None and (snapshot.complete or snapshot.unreadable):
                return snapshot         # a damaged one too: it says why the directory is judged afresh
        return None

    def read(self, folder: str, paths: list) -> Snapshot | None:
        """The snapshot in `folder` (its files `paths`), or None without a readable head."""
        head = self.read_head(folder) if posixpath.join(folder, HEAD) in paths else None
        if head is None:
            return None
        snapshot = Snapshot(head, folder, reader=self)
        for path in sorted(paths):
            leaf = posixpath.basename(path)
            if leaf.startswith(CARRIED_PART + "-"):
                snapshot.carried.append(path)
                continue
            if leaf.startswith(COVERED_PART + "-"):
                count = leaf.split("-")[1]
                if count.isdigit():
                    snapshot.pending.append((path, int(count)))
                    continue
            target = snapshot.records if leaf.startswith((RECORDS_PART + "-", COVERED_PART + "-")) else \
                snapshot.verified if leaf.startswith(VERIFIED_PART + "-") else None
            if target is not None:
                self.read_part_into(snapshot, path, target)
        return snapshot

    def read_part_into(self, snapshot: Snapshot, path: str, into: dict) -> None:
        """The records of one of `snapshot`'s parts into `into` by key_of; a part whose bytes are not what
        this module writes makes the snapshot `unreadable` instead (a store's own failure to read is
        raised as it is: it says nothing of the snapshot)."""
        data = storage.read_bytes(self.fs, path)
        try:
            records = [record_from_dict(fields) for fields in parse_jsonl(_unpacked(path, data))]
        except (EOFError, zlib.error, gzip.BadGzipFile, ValueError, TypeError, AttributeError, KeyError) as exc:
            snapshot.unreadable = f"{path}: {type(exc).__name__}: {exc}"
            log.warning("a damaged snapshot part: its directory is judged afresh and compared with what could "
                        "be read: %s", snapshot.unreadable)
            return
        for record in records:
            into[key_of(record)] = record

    def read_head(self, folder: str) -> Head | None:
        try:
            return Head.from_json(storage.read_bytes(self.fs, posixpath.join(folder, HEAD)))
        except (FileNotFoundError, ValueError):
            return None

    def named(self, directory: str, judged: str) -> str | None:
        """The folder of the snapshot of `directory` judged at `judged` (ISO 8601), or None."""
        when = epoch(judged)
        if when is None:
            return None
        prefix = compact(when) + "_"
        for name in sorted(self.folders(directory), reverse=True):
            if name.startswith(prefix):
                return posixpath.join(self._directory_path(directory), name)
        return None

    # --- retention -----------------------------------------------------------------------------------

    def drop_older(self, directory: str, keep_folder: str, before: float) -> int:
        """Remove the snapshots of `directory` other than `keep_folder` judged before `before` (epoch
        seconds): superseded once a newer one is complete. Returns how many were removed."""
        limit = compact(before)
        removed = 0
        for name, paths in self.folders(directory).items():
            folder = posixpath.join(self._directory_path(directory), name)
            if folder == keep_folder or name.partition("_")[0] >= limit:
                continue
            for path in sorted(paths, key=lambda p: p.endswith(HEAD)):     # the head last: it names the rest
                self._remove(path)
            removed += 1
        return removed

    def drop_directory(self, directory: str) -> None:
        """Forget a directory (it is gone, and its deletions have been reported long enough)."""
        under = self._directory_path(directory)
        with storage.unavailable_if_transient(self.fs, under, "deleting"):
            try:
                self.fs.rm(under, recursive=True)
            except FileNotFoundError:
                pass

    def _remove(self, path: str) -> None:
        with storage.unavailable_if_transient(self.fs, path, "deleting"):
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                pass
