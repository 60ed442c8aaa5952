"""Turn a flat listing into what an audit reasons about: checkpoint prefixes per directory, the
leftovers of interrupted saves, and `checkpoint` state files.

Pure: it sees only the listing's files (`recovery.listed.Listed`: path, size, mtime, identity), so the
same grouping runs on a laptop listing and on a bucket listing fanned out over Beam workers.
Modification times are kept per path (`DirectoryContents.mtimes`) so saves still in progress can be
told from finished ones, and the store's identity of each file's bytes (`identities`) so the vault
can tell the data files it kept an index for from files saved again since. A merge's
temp directory (`P_temp/`, `P_temp_<hex>/`) is grouped with the directory that holds P, because P
cannot be judged without it.
"""

import posixpath
import re
from dataclasses import dataclass, field

import fsspec.core
from google.protobuf import text_format

from tfbundle import FormatError, naming, parse_data_filename, shard_coverage

from .listed import Listed
from .protos.checkpoint_state_pb2 import CheckpointState

STATE_FILE = "checkpoint"
# Names may hold line breaks: `\Z` ends the name, where `$` would also match before a final line break.
_TEMP_DIR_RE = re.compile(r"_temp(?:_[0-9a-f]{32})?\Z")
_TEMPSTATE_RE = re.compile(r"\.tempstate\d+\Z")
_STATE_TEMP_RE = re.compile(r"checkpoint\.tmp[0-9a-f]+")   # CheckpointManager writes the state file via a temp
# What TensorFlow's sharded save writes into `P_temp/` (`P_temp_<hex>/`) before merging: part bundles only.
_MERGE_INPUT_RE = re.compile(r"part-\d{5,}-of-\d{5,}(?:\.index|\.data-\d{5,}-of-\d{5,})(?:\.tempstate\d+)?")


def checkpoint_directory(path: str) -> str:
    """The directory whose checkpoints `path` belongs to. A merge input (`P_temp/part-00000-of-00002.index`,
    exactly as TensorFlow names it) counts as its parent's, since P cannot be judged without it; any other
    file is its own directory's, so a user's directory that happens to be called `bert_temp/` is audited
    as what it is."""
    parent = posixpath.dirname(path)
    if _TEMP_DIR_RE.search(posixpath.basename(parent)) and _MERGE_INPUT_RE.fullmatch(posixpath.basename(path)):
        return posixpath.dirname(parent)
    return parent


def by_checkpoint_directory(items, path_of) -> dict:
    """checkpoint_directory -> the items (path_of(item) their path) in it, in the order given; whether a
    parent is a merge temp directory is asked once per parent, not once per file (a listing's files
    come a directory at a time, a hundred thousand of them on a nightly run)."""
    grouped: dict = {}
    temp: dict = {}
    for item in items:
        path = path_of(item)
        parent = posixpath.dirname(path)
        is_temp = temp.get(parent)
        if is_temp is None:
            is_temp = temp[parent] = bool(_TEMP_DIR_RE.search(posixpath.basename(parent)))
        directory = posixpath.dirname(parent) if is_temp and _MERGE_INPUT_RE.fullmatch(
            posixpath.basename(path)) else parent
        found = grouped.get(directory)
        if found is None:
            found = grouped[directory] = []
        found.append(item)
    return grouped


@dataclass
class PrefixFiles:
    """The files of one checkpoint prefix as listed: its index (if any) and its data files."""

    prefix: str
    index_size: int | None = None
    data: list = field(default_factory=list)        # (path, size), sorted

    @property
    def data_bytes(self) -> int:
        return sum(size for _, size in self.data)

    @property
    def index_path(self) -> str:
        return self.prefix + naming.INDEX_SUFFIX

    def files(self) -> list:
        return ([(self.index_path, self.index_size)] if self.index_size is not None else []) + self.data


@dataclass
class Leftover:
    """Something an interrupted save left behind; `belongs_to` is the checkpoint it was saving."""

    name: str              # a part prefix (P_temp/part-00000-of-00001) or a single file
    what: str              # "merge input" | "unrenamed write" | "state file temp"
    belongs_to: str        # the final prefix P ("" for the state file's temp)
    files: list = field(default_factory=list)       # (path, size)
    complete: bool = False  # a merge input with its index and every data file: a readable bundle


@dataclass
class DirectoryContents:
    directory: str
    checkpoints: dict = field(default_factory=dict)   # prefix -> PrefixFiles (final prefixes only)
    leftovers: list = field(default_factory=list)     # Leftover
    state_files: list = field(default_factory=list)   # (path, size) of `checkpoint` files
    others: list = field(default_factory=list)        # (path, size) of everything else (.meta, saved_model.pb, ...)
    mtimes: dict = field(default_factory=dict)        # path -> epoch seconds, where the listing gave one
    identities: dict = field(default_factory=dict)    # path -> the store's identity of its bytes, where it gave one
    _listing_index: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def listing(self) -> list[dict]:
        """`fs.ls(directory, detail=True)`-shaped entries, what the rebuild sources expect (with the
        listing's `mtime` and `identity` where it gave them: recovery/vault reads the identity)."""
        entries, subdirs = [], set()
        for files in self._all_files():
            for path, size in files:
                parent = posixpath.dirname(path)
                if parent == self.directory:
                    entry = {"name": path, "size": size, "type": "file"}
                    if path in self.mtimes:
                        entry["mtime"] = self.mtimes[path]
                    if path in self.identities:
                        entry["identity"] = self.identities[path]
                    entries.append(entry)
                else:
                    subdirs.add(parent)
        entries += [{"name": d, "size": 0, "type": "directory"} for d in sorted(subdirs)]
        return sorted(entries, key=lambda e: e["name"])

    def listing_for(self, prefix: str) -> list[dict]:
        """The listing a rebuild of `prefix` may need: without other checkpoints' data files and
        unrenamed writes, which no source reads, so a directory of thousands of orphans is not
        copied into every one of their tasks. The directory is indexed once, not once per orphan."""
        if self._listing_index is None:
            shared, by_owner = [], {}
            for entry in self.listing():
                name = entry["name"]
                if _TEMPSTATE_RE.search(name):
                    continue
                data = parse_data_filename(name)
                if data is None:
                    shared.append(entry)
                    continue
                part = naming.part_of(data.prefix)
                by_owner.setdefault(part[0] if part else data.prefix, []).append(entry)
            self._listing_index = (shared, by_owner)
        shared, by_owner = self._listing_index
        return sorted(shared + by_owner.get(prefix, []), key=lambda e: e["name"])

    def newest(self, paths) -> float | None:
        """The latest modification time among `paths` (None when the listing gave none)."""
        times = [self.mtimes[p] for p in paths if self.mtimes.get(p) is not None]
        return max(times) if times else None

    def files_of(self, prefix: str) -> list:
        """Paths of a checkpoint prefix and of every leftover of a save to it (its merge inputs, unrenamed
        writes): a save in progress shows in any of them."""
        found = self.checkpoints.get(prefix)
        paths = [p for p, _ in found.files()] if found else []
        for leftover in self.leftovers:
            if leftover.belongs_to == prefix:
                paths += [p for p, _ in leftover.files]
        return paths

    def part_indexes_of(self, prefix: str) -> list:
        """Merge inputs of `prefix` that still have their part index, sorted by part number."""
        return sorted((lo for lo in self.leftovers if lo.what == "merge input" and lo.belongs_to == prefix
                       and any(p.endswith(naming.INDEX_SUFFIX) for p, _ in lo.files)), key=lambda lo: lo.name)

    def _all_files(self):
        for found in self.checkpoints.values():
            yield found.files()
        for leftover in self.leftovers:
            yield leftover.files
        yield self.state_files
        yield self.others


def group_directory(directory: str, files: "list[Listed]") -> DirectoryContents:
    """Sort the files (Listed) of one checkpoint directory into prefixes, leftovers and state files."""
    contents = DirectoryContents(directory)
    prefixes: dict[str, PrefixFiles] = {}
    listed = []
    for item in files:
        path, size = item.path, item.size
        if item.mtime is not None:
            contents.mtimes[path] = item.mtime
        if item.identity is not None:
            contents.identities[path] = item.identity
        listed.append((path, size))
    for path, size in sorted(listed):
        leaf = posixpath.basename(path)
        if _TEMPSTATE_RE.search(leaf):
            contents.leftovers.append(_unrenamed(path, size))
        elif leaf == STATE_FILE and posixpath.dirname(path) == directory:
            contents.state_files.append((path, size))
        elif _STATE_TEMP_RE.fullmatch(leaf):
            contents.leftovers.append(Leftover(path, "state file temp", "", [(path, size)]))
        elif path.endswith(naming.INDEX_SUFFIX):
            prefix = path[: -len(naming.INDEX_SUFFIX)]
            prefixes.setdefault(prefix, PrefixFiles(prefix)).index_size = size
        elif (name := parse_data_filename(path)) is not None:
            prefixes.setdefault(name.prefix, PrefixFiles(name.prefix)).data.append((path, size))
        else:
            contents.others.append((path, size))
    for prefix, found in sorted(prefixes.items()):
        part = naming.part_of(prefix)
        if part is None:
            contents.checkpoints[prefix] = found
            continue
        contents.leftovers.append(Leftover(prefix, "merge input", part[0], found.files(), _is_complete(found)))
    return contents


def _unrenamed(path: str, size: int) -> Leftover:
    """A `*.tempstate<N>` file: BundleWriter never renamed it into place."""
    final = _TEMPSTATE_RE.sub("", path)
    if final.endswith(naming.INDEX_SUFFIX):
        prefix = final[: -len(naming.INDEX_SUFFIX)]
    else:
        name = parse_data_filename(final)
        prefix = name.prefix if name else final
    part = naming.part_of(prefix)
    return Leftover(path, "unrenamed write", part[0] if part else prefix, [(path, size)])


def _is_complete(found: PrefixFiles) -> bool:
    if found.index_size is None or not found.data:
        return False
    return shard_coverage([parse_data_filename(path) for path, _ in found.data]).complete


@dataclass
class StateFile:
    """What a `checkpoint` state file (CheckpointState text proto) names."""

    latest: str | None
    all_paths: list

    def names(self) -> list[str]:
        return list(dict.fromkeys(([self.latest] if self.latest else []) + self.all_paths))


def parse_state_file(text: str) -> StateFile:
    """Parse the CheckpointState text proto TensorFlow writes; fields it does not know (a newer
    TensorFlow's) are skipped. Text that is not a CheckpointState is a FormatError: TensorFlow's
    get_checkpoint_state() then ignores the file and latest_checkpoint() returns None."""
    state = CheckpointState()
    try:
        text_format.Merge(text, state, allow_unknown_field=True)   # Merge, as TensorFlow reads it
    except text_format.ParseError as exc:
        raise FormatError(f"not a CheckpointState text proto: {exc}") from None
    decode = lambda raw: raw.decode("utf-8", "surrogateescape")
    return StateFile(decode(state.model_checkpoint_path) or None, [decode(p) for p in state.all_model_checkpoint_paths])


def resolve_state_name(directory: str, name: str, protocols=()) -> str:
    """A name from a state file as a filesystem path: relative names are relative to its directory; a
    URL of the directory's own store (`protocols`: its filesystem's `protocol`) loses its scheme as that
    filesystem does (`gs://b/run/ckpt-3` -> `b/run/ckpt-3`), a URL of another store is kept as written
    (no file here has that name). A trailing "/" is kept: `saver.save(sess, "model_dir/")` records the
    prefix `model_dir/`."""
    slash = "/" if name.endswith("/") else ""
    if "://" in name:
        own = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        path = fsspec.core.strip_protocol(name) if name.split("://", 1)[0] in own else name
    elif name.startswith("/"):
        return name
    else:
        path = posixpath.normpath(posixpath.join(directory, name))
    return path if path.endswith("/") else path + slash
