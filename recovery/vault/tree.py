"""The vault's tree under its URL: the marker that makes a location a vault, where each entry lives,
and its create-only writes, reads, listings and pruning (all through recovery/storage.py).

    VAULT/ckpt-rescue-vault.json                         the marker (format), created once
    VAULT/v1/<sha256 of directory URL>/<sha256 of prefix URL>/<sha256 of index>.index   the bytes
    VAULT/v1/.../<sha256 of index>.json                  the entry: written second, it commits

A reader ignores an .index without its .json (and a .json whose .index is gone). Keeping what is
already kept changes nothing, so re-runs and racing workers are harmless. docs/vault.md says more.
"""

import base64
import hashlib
import json
import logging
import posixpath
import re
import time
from dataclasses import dataclass

from tfbundle import FormatError, index_filename, read_index

from .. import storage, stores
from ..caches import SharedCache
from ..layout import MAX_STORED_GRAPH
from .entry import ORIGINS, VaultEntry, iso_utc, shard_records

MARKER = "ckpt-rescue-vault.json"
MARKER_FORMAT = "ckpt-rescue-vault/1"
TREE = "v1"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LAYOUT = "v1/<sha256 of directory URL>/<sha256 of prefix URL>/<sha256 of index>.index and .json"

_entries_read = SharedCache(4096)    # (vault, .json path, size, identity) -> VaultEntry; entries never change
_opened = SharedCache(16)            # (url, create) -> Vault, one marker check per process
log = logging.getLogger(__name__)


class VaultError(Exception):
    """The URL is not a vault this tool can use (another format, someone else's files, nothing there):
    a usage error, found before any work."""


class VaultDamaged(Exception):
    """A vaulted index whose bytes no longer match the checksum they are stored under."""


def name_digest(text: str) -> str:
    """Where a URL lives in the vault: the sha256 of its text (any length, any characters)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def canonical_prefix(prefix_url: str) -> tuple[str, str]:
    """(prefix, directory) as a user types them, one spelling per place (gcs:// is gs://, file:// is a path)."""
    fs, path = storage.split_prefix(prefix_url)
    return storage.display(fs, path), storage.display(fs, storage.prefix_directory(path))


def canonical_directory(directory_url: str) -> str:
    fs, path = storage.url_to_fs(directory_url)
    return storage.display(fs, path.rstrip("/"))


@dataclass(frozen=True)
class Kept:
    entry: VaultEntry
    created: bool        # False: the vault already held this index for this prefix (first_seen is the first one)


@dataclass(frozen=True)
class VaultUsage:
    directories: int
    prefixes: int
    entries: int
    index_bytes: int     # the vaulted indexes
    entry_bytes: int     # their .json entries
    uncommitted: int     # .index files without their .json (a keep that stopped midway; harmless)

    def describe(self) -> str:
        return (f"{self.entries} index(es) of {self.prefixes} prefix(es) in {self.directories} director(ies): "
                f"{self.index_bytes + self.entry_bytes} bytes ({self.index_bytes} of indexes, {self.entry_bytes} "
                "of entries)")


class Vault:
    """A vault at one URL. Open it with `Vault.open(url)` or `vault_for(url)`, which check the marker."""

    def __init__(self, fs, root: str, hidden: frozenset = frozenset()):
        self.fs, self.root = fs, root.rstrip("/")
        self.url = storage.display(fs, self.root)
        self.hidden = hidden          # prefixes whose entries this view does not show (a rehearsal's own)

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, create: bool = False) -> "Vault":
        """The vault at `url`. `create`: make an empty or missing location a vault (its marker, create-only).

        VaultError when the location holds another format's marker, other files and no marker, or
        (without `create`) no vault at all.
        """
        fs, root = storage.url_to_fs(url)
        vault = cls(fs, root)
        marker = posixpath.join(vault.root, MARKER)
        try:
            vault._check_marker(storage.read_bytes(fs, marker))
            return vault
        except FileNotFoundError:
            pass
        except OSError as exc:           # a file where the vault should be, no permission
            raise VaultError(f"{vault.url}: cannot read {MARKER} there ({exc.strerror or exc})") from None
        others = vault._contents()
        if others:
            raise VaultError(f"{vault.url} is not a vault: it holds {len(others)} other object(s) (e.g. {others[0]}) "
                             f"and no {MARKER}; give the vault a location of its own (a new or empty directory)")
        if not create:
            raise VaultError(f"{vault.url}: no vault there (no {MARKER}); an audit with --vault fills one, so check "
                             "the URL")
        doc = {"format": MARKER_FORMAT, "layout": _LAYOUT, "created": iso_utc(time.time())}
        try:
            if storage.is_local(fs):
                fs.makedirs(vault.root, exist_ok=True)
            storage.write_new(fs, marker, json.dumps(doc, indent=1).encode())
        except FileExistsError:          # another worker made it first: it must be ours too
            vault._check_marker(storage.read_bytes(fs, marker))
        except PermissionError as exc:
            raise VaultError(f"{vault.url}: cannot create the vault there ({exc.strerror or exc})") from None
        return vault

    def _check_marker(self, data: bytes) -> None:
        try:
            found = json.loads(data).get("format")
        except (ValueError, AttributeError, UnicodeDecodeError):
            found = None
        if found != MARKER_FORMAT:
            raise VaultError(f"{self.url}: its {MARKER} says format {found!r}, not {MARKER_FORMAT!r}: this version "
                             "of ckpt-rescue cannot use that vault; give the vault another location")

    def _contents(self) -> list:
        try:
            return [storage.display(self.fs, item["name"]) for item in storage.ls(self.fs, self.root)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def without(self, prefix_url: str) -> "Vault":
        """This vault as it looks with one prefix's entries hidden (a rehearsal must not use its own index)."""
        return Vault(self.fs, self.root, self.hidden | {canonical_prefix(prefix_url)[0]})

    # --- where things are ---------------------------------------------------------------------

    def _directory_path(self, directory: str) -> str:
        return posixpath.join(self.root, TREE, name_digest(directory))

    def _prefix_path(self, prefix: str, directory: str) -> str:
        return posixpath.join(self._directory_path(directory), name_digest(prefix))

    # --- keeping ------------------------------------------------------------------------------

    def keep(self, prefix_url: str, index_bytes: bytes, shards: list, origin: str, when: float,
             run_id: str = "", object_graph: bytes | None = None) -> Kept:
        """Keep one index of `prefix_url` with the data files it describes (`shards`: ShardRecords, see
        entry.shard_records), first seen at `when` (epoch seconds) by run `run_id`; `object_graph`: the
        payload of its object graph where the caller read it (stored when at most MAX_STORED_GRAPH).

        Create-only: the index bytes first, then the entry, which commits them. An index this vault
        already holds for the prefix is left as it is (Kept.created False). ValueError for bytes that
        are not an index or an unknown origin; VaultDamaged when the stored copy is not these bytes.
        Local writes are not fsynced (an audit's first night keeps thousands): a copy a crash left torn
        is what every read verifies anyway (its sha256 and size), and is reported, never overwritten.
        """
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
        try:
            read_index(index_bytes)
        except FormatError as exc:
            raise ValueError(f"not an index: {exc}") from None
        prefix, directory = canonical_prefix(prefix_url)
        sha = hashlib.sha256(index_bytes).hexdigest()
        base = posixpath.join(self._prefix_path(prefix, directory), sha)
        graph = base64.b64encode(object_graph).decode("ascii") if object_graph and \
            len(object_graph) <= MAX_STORED_GRAPH else ""
        entry = VaultEntry(prefix, directory, sha, len(index_bytes), tuple(shards), iso_utc(when), origin, run_id,
                           base + ".json", graph)
        existing = self._read_entry(base + ".json")
        if existing is not None and storage.fresh_exists(self.fs, base + ".index"):
            return Kept(existing, False)
        if storage.is_local(self.fs):
            self.fs.makedirs(posixpath.dirname(base), exist_ok=True)
        try:
            storage.write_new(self.fs, base + ".index", index_bytes, durable=False)
        except FileExistsError:          # a keep that stopped before its entry, or one racing this one
            self._verified(base + ".index", sha, len(index_bytes))
        try:
            storage.write_new(self.fs, base + ".json", entry.to_json(), durable=False)
        except FileExistsError:
            return Kept(self._read_entry(base + ".json") or entry, False)
        return Kept(entry, True)

    # --- reading ------------------------------------------------------------------------------

    def entries(self, prefix_url: str) -> list[VaultEntry]:
        """Every committed entry of one prefix, newest first."""
        prefix, directory = canonical_prefix(prefix_url)
        if prefix in self.hidden:
            return []
        return _newest_first(self._committed(self._prefix_path(prefix, directory)).get(prefix, []))

    def entry(self, prefix_url: str, sha: str) -> VaultEntry | None:
        """The committed entry of one prefix whose index has sha256 `sha`, or None. Read by its name (an
        entry is stored under its index's checksum), without listing the prefix: a carried night asks
        this of every staged rebuild it stages again."""
        prefix, directory = canonical_prefix(prefix_url)
        if prefix in self.hidden or not _SHA256_HEX.fullmatch(sha):
            return None
        base = posixpath.join(self._prefix_path(prefix, directory), sha)
        found = self._read_entry(base + ".json")
        if found is None or found.prefix != prefix or found.index_sha256 != sha or \
                not storage.fresh_exists(self.fs, base + ".index"):
            return None
        return found

    def directory_entries(self, directory_url: str) -> dict[str, list[VaultEntry]]:
        """prefix -> its committed entries, newest first, for every prefix the vault holds in one directory
        (one recursive listing, then the entries not read before in this process)."""
        found = self._committed(self._directory_path(canonical_directory(directory_url)))
        return {prefix: _newest_first(kept) for prefix, kept in sorted(found.items()) if prefix not in self.hidden}

    def read_index(self, entry: VaultEntry) -> bytes:
        """The vaulted index bytes of an entry, checked against the checksum they are stored under."""
        return self._verified(entry.index_location, entry.index_sha256, entry.index_size)

    def _verified(self, path: str, sha: str, size: int) -> bytes:
        data = storage.read_bytes(self.fs, path)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            raise VaultDamaged(f"{storage.display(self.fs, path)} is {len(data)} bytes with sha256 "
                               f"{hashlib.sha256(data).hexdigest()[:16]}…, not the {size} bytes with sha256 "
                               f"{sha[:16]}… it was kept as: the vault's copy is damaged")
        return data

    def _committed(self, under: str) -> dict[str, list[VaultEntry]]:
        """prefix -> entries below `under` whose .json and .index are both there."""
        listing = self._find(under)
        names = set(listing)
        wanted = [path for path in listing if path.endswith(".json") and path[:-5] + ".index" in names]
        by_prefix: dict[str, list[VaultEntry]] = {}
        for path in wanted:
            entry = self._read_entry(path, listing[path])
            if entry is not None:
                by_prefix.setdefault(entry.prefix, []).append(entry)
        return by_prefix

    def _find(self, under: str) -> dict:
        with storage.unavailable_if_transient(self.fs, under, "listing"):
            try:
                return stores.store_for_fs(self.fs).find(self.fs, under)
            except FileNotFoundError:
                return {}

    def _read_entry(self, path: str, listed: dict | None = None) -> VaultEntry | None:
        """The entry at `path`, or None when there is none; a damaged one is logged and skipped."""
        key = (self.url, path, (listed or {}).get("size"), stores.store_for_fs(self.fs).identity(listed or {}))

        def read():
            try:
                data = storage.read_bytes(self.fs, path)
            except FileNotFoundError:
                return None
            try:
                return VaultEntry.from_json(data, path)
            except ValueError as exc:
                log.warning("vault entry %s skipped: %s", storage.display(self.fs, path), exc)
                return None

        if listed is None:
            return read()
        return _entries_read.get_or_compute(key, read)

    # --- pruning and sizes --------------------------------------------------------------------

    def remove(self, entry: VaultEntry) -> None:
        """Drop one entry: its .json first (so it stops counting), then its index."""
        for path in (entry.location, entry.index_location):
            with storage.unavailable_if_transient(self.fs, path, "deleting"):
                try:
                    self.fs.rm_file(path)
                except FileNotFoundError:
                    pass

    def prune_prefix(self, prefix_url: str) -> int:
        """Drop every entry of one prefix (retention: its checkpoint is gone); returns how many there were."""
        prefix, directory = canonical_prefix(prefix_url)
        found = self._committed(self._prefix_path(prefix, directory)).get(prefix, [])
        for entry in found:
            self.remove(entry)
        leftovers = self._prefix_path(prefix, directory)     # uncommitted .index files, local directories
        with storage.unavailable_if_transient(self.fs, leftovers, "deleting"):
            try:
                self.fs.rm(leftovers, recursive=True)
            except FileNotFoundError:
                pass
        return len(found)

    def usage(self) -> VaultUsage:
        """What the vault holds, from one recursive listing."""
        listing = self._find(posixpath.join(self.root, TREE))
        names = set(listing)
        directories, prefixes, entries, index_bytes, entry_bytes, uncommitted = set(), set(), 0, 0, 0, 0
        for path, item in listing.items():
            relative = path[len(self.root) + len(TREE) + 2:].split("/")
            if len(relative) != 3:
                continue
            if path.endswith(".json") and path[:-5] + ".index" in names:
                directories.add(relative[0])
                prefixes.add((relative[0], relative[1]))
                entries += 1
                entry_bytes += int(item.get("size") or 0)
                index_bytes += int(listing[path[:-5] + ".index"].get("size") or 0)
            elif path.endswith(".index") and path[:-6] + ".json" not in names:
                uncommitted += 1
        return VaultUsage(len(directories), len(prefixes), entries, index_bytes, entry_bytes, uncommitted)


def _newest_first(entries: list) -> list:
    return sorted(entries, key=lambda e: (e.first_seen, e.index_sha256), reverse=True)


def vault_for(url: str, create: bool = False) -> Vault:
    """`Vault.open(url, create)` once per process (workers share it); VaultError as there."""
    return _opened.get_or_compute((url, create), lambda: Vault.open(url, create))


def keep_checkpoint(vault: Vault, prefix_url: str, origin: str, when: float, run_id: str = "",
                    with_graph: bool = True) -> Kept:
    """Keep the index a prefix has now, with its data files as one listing of its directory shows them
    and (`with_graph`) its object graph's payload (one small read of the data)."""
    from ..healthy import read_object_graph

    fs, prefix = storage.split_prefix(prefix_url)
    index_bytes = storage.read_bytes(fs, index_filename(prefix))
    shards = shard_records(prefix, storage.ls(fs, storage.prefix_directory(prefix)), stores.store_for_fs(fs))
    graph = read_object_graph(fs, prefix) if with_graph else None
    return vault.keep(storage.display(fs, prefix), index_bytes, shards, origin, when, run_id, object_graph=graph)
