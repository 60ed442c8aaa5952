"""One vaulted index's entry: which prefix it belonged to, which data files it described (name, size
and the store's identity of each), when it was first seen and by whom; and how it relates to the
data files a prefix has now.

The relation decides what the index may prove (docs/vault.md): the same files (sizes and identities
equal) make it the lost index itself; the same sizes but other or unknown identities make it an
earlier save of the prefix, a reference like a sibling's; other names or sizes make it an index of
other bytes, which is not used.
"""

import base64
import datetime
import json
import posixpath
from dataclasses import asdict, dataclass, field

from tfbundle import parse_data_filename

ENTRY_FORMAT = "ckpt-rescue-vault-entry/1"
ORIGIN_SEEN_HEALTHY = "seen-healthy"   # an index an audit found beside its data (TensorFlow's, or one promoted)
ORIGIN_REBUILT = "rebuilt"             # an index ckpt-rescue itself built: its CRCs came from the bytes then present
ORIGINS = (ORIGIN_SEEN_HEALTHY, ORIGIN_REBUILT)

SAME_FILES, EARLIER_SAVE, OTHER_BYTES = "same-files", "earlier-save", "other-bytes"


@dataclass(frozen=True)
class ShardRecord:
    """One data file as an entry records it: its name in the prefix's directory, size, and the store's
    identity of its bytes (recovery/stores: `Store.identity`), None where the store gives none."""

    name: str
    size: int
    identity: str | None = field(default=None, hash=False)


def identity_of(item: dict, store=None) -> str | None:
    """The store's identity of a listed file: the audit's listing carries it (`identity`, see
    discovery.DirectoryContents.listing); a plain fsspec entry is asked of `store`."""
    if "identity" in item:
        return item["identity"]
    return store.identity(item) if store is not None else None


def shard_records(prefix: str, listing: list, store=None) -> list[ShardRecord]:
    """The data files of `prefix` (a filesystem path) in a listing of its directory, by shard; `store`
    (recovery/stores) gives the identity of entries that do not carry it."""
    found = []
    for item in listing:
        parsed = parse_data_filename(item["name"]) if item.get("type") != "directory" else None
        if parsed and parsed.prefix == prefix:
            found.append((parsed.shard, ShardRecord(posixpath.basename(item["name"]), int(item["size"]),
                                                    identity_of(item, store))))
    return [record for _, record in sorted(found, key=lambda pair: pair[0])]


def _identity_from_json(value) -> str | None:
    """An entry's identity as stored. Entries kept before the stores declared identities held a dict
    (`{"generation": ...}`): read as a string no store gives, so such an entry is never taken for the
    same files (it is an earlier save at best), never the lost index on a guess."""
    if value is None or value == {}:
        return None
    if isinstance(value, dict):
        return "before-stores " + json.dumps(value, sort_keys=True)
    return str(value)


def iso_utc(when: float) -> str:
    """Epoch seconds as the entry stores them: ISO 8601, UTC, to the second."""
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class VaultEntry:
    prefix: str                 # the checkpoint prefix as a user types it (gs://b/run/ckpt-3, /data/run/ckpt-3)
    directory: str              # the directory holding it, the same way
    index_sha256: str           # of the vaulted index bytes, which are stored under this name
    index_size: int
    shards: tuple               # ShardRecord of every data file the index described, by shard
    first_seen: str             # ISO 8601 UTC: when the index was first kept
    origin: str                 # ORIGIN_SEEN_HEALTHY or ORIGIN_REBUILT
    run_id: str = ""            # the run that kept it
    location: str = field(default="", compare=False)   # the vault path of its .json (set when read)
    # The object graph's payload (base64) where the keeper had read it and it is at most MAX_STORED_GRAPH:
    # a later orphan's graph is then compared with it (TensorFlow's own renaming allowed), not only its CRC.
    object_graph: str = ""

    @property
    def graph_payload(self) -> bytes | None:
        return base64.b64decode(self.object_graph) if self.object_graph else None

    @property
    def seen_on(self) -> str:
        """The date for people: `2026-12-05 02:30 UTC`."""
        return self.first_seen[:10] + " " + self.first_seen[11:16] + " UTC"

    @property
    def index_location(self) -> str:
        return self.location[: -len(".json")] + ".index" if self.location else ""

    def to_json(self) -> bytes:
        doc = {"format": ENTRY_FORMAT, **asdict(self)}
        doc.pop("location")
        if not self.object_graph:
            doc.pop("object_graph")
        doc["shards"] = [asdict(s) for s in self.shards]
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, location: str = "") -> "VaultEntry":
        """Raises ValueError for anything but an entry of this format."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != ENTRY_FORMAT:
                raise ValueError(f"not a vault entry: format {doc.get('format') if isinstance(doc, dict) else None!r}, "
                                 f"not {ENTRY_FORMAT!r}")
            shards = tuple(ShardRecord(str(s["name"]), int(s["size"]), _identity_from_json(s.get("identity")))
                           for s in doc["shards"])
            entry = cls(str(doc["prefix"]), str(doc["directory"]), str(doc["index_sha256"]), int(doc["index_size"]),
                        shards, str(doc["first_seen"]), str(doc["origin"]), str(doc.get("run_id", "")), location,
                        str(doc.get("object_graph") or ""))
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a vault entry: {exc}") from None
        if entry.origin not in ORIGINS:
            raise ValueError(f"not a vault entry: origin {entry.origin!r}")
        return entry


@dataclass(frozen=True)
class Relation:
    kind: str      # SAME_FILES, EARLIER_SAVE or OTHER_BYTES
    why: str       # in words, for the evidence: what matched or differed


def relation(entry: VaultEntry, present: list) -> Relation:
    """How a vaulted entry relates to the data files a prefix has now (`present`: ShardRecords)."""
    then = f"the index vaulted on {entry.seen_on}"
    names_then, names_now = [s.name for s in entry.shards], [s.name for s in present]
    if names_then != names_now:
        return Relation(OTHER_BYTES, f"{then} described {len(names_then)} data file(s) ({_names(names_then)}), this "
                                     f"prefix has {len(names_now)} ({_names(names_now)}): the prefix was re-saved")
    resized = [(i, a.size, b.size) for i, (a, b) in enumerate(zip(entry.shards, present)) if a.size != b.size]
    if resized:
        shown = ", ".join(f"shard {i}: {a} bytes then, {b} now" for i, a, b in resized[:3])
        more = f" and {len(resized) - 3} more" if len(resized) > 3 else ""
        return Relation(OTHER_BYTES, f"{then} is for other bytes ({shown}{more}): the prefix was re-saved since")
    unknown = [s.name for s in (*entry.shards, *present) if not s.identity]
    if unknown:
        return Relation(EARLIER_SAVE, f"{then} has the same data file sizes; the store gives no identity "
                                      f"({_names(unknown)}), so whether these are the same files is unknown")
    changed = [b.name for a, b in zip(entry.shards, present) if a.identity != b.identity]
    if changed:
        return Relation(EARLIER_SAVE, f"{then} has the same data file sizes, but {_names(changed)} "
                                      f"{'is' if len(changed) == 1 else 'are'} not the file(s) it described "
                                      "(the store's identity differs): an earlier save of this prefix")
    return Relation(SAME_FILES, f"{then} describes these very data files (sizes and the store's identity equal)")


def _names(names: list) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
