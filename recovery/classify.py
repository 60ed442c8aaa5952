"""Judge every prefix of one directory with its neighbours in view: healthy, incomplete, corrupt,
or an orphan to rebuild; and say what each leftover and `checkpoint` state file means.

Only indexes and state files are read here (small); data files are judged by their listed sizes.
An index that exists but cannot be read makes its prefix an orphan whose rebuilt index may only be
staged: replacing an existing file is a person's decision.
"""

from dataclasses import dataclass, field

from tfbundle import FormatError, data_filename, read_index

from . import storage
from .discovery import DirectoryContents, Leftover, PrefixFiles, parse_state_file, resolve_state_name
from .records import (
    CHECKPOINT,
    CORRUPT,
    HEALTHY,
    INCOMPLETE,
    LEFTOVER,
    STATE_FILE,
    Record,
    inspect_command,
)


@dataclass
class OrphanTask:
    """A prefix whose index is missing (or unreadable) and must be rebuilt before it can be judged."""

    prefix: str                  # filesystem path
    display_prefix: str
    root: str
    directory: str               # display form
    listing: list                # ls-shaped entries of its directory, for the rebuild sources
    data_files: int
    data_bytes: int
    stage_only: bool = False     # its own index exists but is unreadable: never write in place
    finding: str = ""            # what classification saw, e.g. "index unreadable: bad magic"
    data_sizes: dict = field(default_factory=dict)   # path -> listed size


def classify_directory(fs, contents: DirectoryContents, root: str) -> list:
    """One Record or OrphanTask per checkpoint prefix, one Record per leftover and state file."""
    directory = storage.display(fs, contents.directory)
    results = []
    states = {}
    for found in contents.checkpoints.values():
        judged = classify_prefix(fs, found, root, directory, contents)
        states[found.prefix] = judged
        results.append(judged)
    results += [classify_leftover(fs, leftover, contents, states, root, directory) for leftover in contents.leftovers]
    results += [classify_state_file(fs, path, contents, root, directory) for path, _ in contents.state_files]
    return results


def classify_prefix(fs, found: PrefixFiles, root: str, directory: str,
                    contents: DirectoryContents) -> "Record | OrphanTask":
    display = storage.display(fs, found.prefix)

    def orphan(stage_only=False, finding="no index"):
        return OrphanTask(found.prefix, display, root, directory, contents.listing_for(found.prefix),
                          len(found.data), found.data_bytes, stage_only, finding, dict(found.data))

    if found.index_size is None:
        return orphan()
    try:
        index = read_index(storage.read_bytes(fs, found.index_path))
    except FileNotFoundError:
        return orphan(finding="the index vanished after the listing")
    except FormatError as exc:
        if not found.data:
            return Record(display, CORRUPT, f"index unreadable ({exc}) and no data files: nothing to rebuild from",
                          root, CHECKPOINT, directory, index_path=storage.display(fs, found.index_path),
                          command=inspect_command(display))
        return orphan(stage_only=True, finding=f"index unreadable: {exc}")
    return judge_sizes(fs, found, index, root, directory)


def judge_sizes(fs, found: PrefixFiles, index, root: str, directory: str) -> Record:
    """Healthy when every shard the index names is listed at exactly the size its entries reach."""
    display = storage.display(fs, found.prefix)
    num_shards = index.header.num_shards or 1
    expected = dict.fromkeys(range(num_shards), 0)
    for _, entry in index.data_entries():
        expected[entry.shard_id] = max(expected.get(entry.shard_id, 0), entry.offset + entry.size)
    listed = dict(found.data)
    missing, short, long = [], [], []
    for shard, needed in sorted(expected.items()):
        path = data_filename(found.prefix, shard, num_shards)
        if path not in listed:
            missing.append(shard)
        elif listed[path] < needed:
            short.append(f"shard {shard} has {listed[path]} of {needed} bytes")
        elif listed[path] > needed:
            long.append(f"shard {shard} has {listed[path] - needed} bytes more than its index accounts for")
    record = Record(display, HEALTHY, "", root, CHECKPOINT, directory,
                    index_path=storage.display(fs, found.index_path), data_files=len(found.data),
                    data_bytes=found.data_bytes)
    strays = sorted(p for p in listed if p not in {data_filename(found.prefix, s, num_shards) for s in expected})
    if missing or short:
        record.status = INCOMPLETE
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {num_shards} data shard(s) missing (shard "
                         f"{', '.join(map(str, missing[:8]))})")
        parts += short
        record.reason = "; ".join(parts) + ": TensorFlow cannot restore it; the lost bytes are not in this directory"
        record.command = inspect_command(display)
        return record
    if long:
        record.status = CORRUPT
        record.reason = ("; ".join(long) + ": the index and the data do not belong together (a copy from another "
                         "save, or an interrupted transfer)")
        record.command = inspect_command(display)
        return record
    record.reason = f"index reads ({len(index.entries)} entries) and all {num_shards} data shard(s) are complete"
    record.checks = [f"index readable: {len(index.entries)} entries, {num_shards} shard(s)",
                     "every data shard listed at exactly the size the index expects"]
    if strays:
        record.checks.append(f"note: data files the index does not name: {', '.join(strays[:3])}")
    return record


def classify_leftover(fs, leftover: Leftover, contents: DirectoryContents, states: dict, root: str,
                      directory: str) -> Record:
    name = storage.display(fs, leftover.name)
    record = Record(name, HEALTHY, "", root, LEFTOVER, directory, data_files=len(leftover.files),
                    data_bytes=sum(size for _, size in leftover.files))
    owner = contents.checkpoints.get(leftover.belongs_to)
    owner_name = storage.display(fs, leftover.belongs_to) if leftover.belongs_to else ""
    if leftover.what == "state file temp":
        record.reason = "temp file of a `checkpoint` state update that never got renamed; safe to delete"
    elif leftover.what == "unrenamed write":
        record.reason = ("a write TensorFlow never renamed into place (a save was interrupted, or is running now); "
                         + (f"{owner_name} itself is audited in its own record" if owner
                            else f"nothing of {owner_name} was completed"))
    elif owner is None:
        if leftover.complete:
            record.status = INCOMPLETE
            record.reason = (f"the save of {owner_name} stopped before its merge: a complete bundle survives at "
                             f"{name} (TensorFlow can restore from that prefix), but {owner_name} does not exist")
            record.command = inspect_command(name)
        else:
            record.reason = f"part of an interrupted save of {owner_name}; nothing of {owner_name} was completed"
    elif isinstance(states.get(leftover.belongs_to), OrphanTask):
        record.reason = (f"merge input of {owner_name}, which has no readable index: its part index is the best source "
                         "for the rebuild; keep it until that checkpoint is fixed")
    else:
        record.reason = f"merge input left behind after {owner_name} was written; see that checkpoint's record"
    return record


def classify_state_file(fs, path: str, contents: DirectoryContents, root: str, directory: str) -> Record:
    """A `checkpoint` file naming checkpoints that do not exist makes latest_checkpoint lie (or return None)."""
    display = storage.display(fs, path)
    record = Record(display, HEALTHY, "", root, STATE_FILE, directory)
    try:
        state = parse_state_file(storage.read_bytes(fs, path).decode("utf-8", "replace"))
    except OSError as exc:
        record.status, record.reason = INCOMPLETE, f"state file unreadable: {exc}"
        return record
    dangling, orphans = [], []
    for name in state.names():
        prefix = resolve_state_name(contents.directory, name, fs._strip_protocol)
        found = contents.checkpoints.get(prefix)
        if found is None and storage.parent(prefix) != contents.directory:
            found = _look_elsewhere(fs, prefix)
        if found is None:
            dangling.append(name)
        elif found.index_size is None:
            orphans.append(name)
    if not state.names():
        record.reason = "names no checkpoint"
    elif dangling:
        record.status = INCOMPLETE
        latest = " including the latest, so tf.train.latest_checkpoint() returns None and training restarts" \
            if state.latest in dangling else ""
        record.reason = (f"names {len(dangling)} checkpoint(s) that do not exist{latest}: "
                         f"{', '.join(dangling[:5])}")
        record.command = inspect_command(storage.display(fs, resolve_state_name(
            contents.directory, dangling[0], fs._strip_protocol)))
    else:
        record.reason = f"all {len(state.names())} checkpoint(s) it names exist"
    if orphans:
        record.checks.append(f"names {len(orphans)} checkpoint(s) without an index until rebuilt: "
                             f"{', '.join(orphans[:5])}")
    return record


def _look_elsewhere(fs, prefix: str) -> PrefixFiles | None:
    """A state file may name a checkpoint in another directory (absolute paths): ask the backend."""
    index = prefix + ".index"
    if storage.fresh_exists(fs, index):
        return PrefixFiles(prefix, index_size=storage.info(fs, index)["size"])
    data = storage.glob(fs, prefix + ".data-*")
    return PrefixFiles(prefix, data=[(p, 0) for p in data]) if data else None
