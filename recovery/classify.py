"""Judge every prefix of one directory with its neighbours in view: healthy, incomplete, corrupt,
stale, or an orphan to rebuild; and say what each leftover and `checkpoint` state file means.

Only indexes, part indexes and state files are read here (small), and a few small tensors of each
healthy-looking checkpoint (spot_check.py); data files are judged by their listed sizes. An index
that exists but cannot be read makes its prefix an orphan whose rebuilt index may only be staged:
replacing an existing file is a person's decision.
"""

import dataclasses
import time

from tfbundle import FormatError, data_filename

from . import storage
from .discovery import DirectoryContents, Leftover, PrefixFiles
from .failures import isolated
from .part_indexes import compare_with_part_indexes
from .records import (
    CHECKPOINT,
    CORRUPT,
    ERROR,
    HEALTHY,
    IN_PROGRESS,
    INCOMPLETE,
    LEFTOVER,
    STALE,
    STATE_FILE,
    Record,
    inspect_command,
)
from .sizes import read_sized_index, shard_sizes
from .spot_check import spot_check
from .state_files import classify_state_file
from .tasks import OrphanTask

STEP = "classification"


def classify_directory(fs, contents: DirectoryContents, root: str, min_age: float = 0.0, now: float | None = None,
                       in_place: bool = False, verify_data=False, keep=None) -> list:
    """One Record or OrphanTask per checkpoint prefix, one Record per leftover and state file.

    Each is judged on its own: whatever one prefix's files hold (an index that does not decode, a read
    that fails), its neighbours still get their own verdicts, and a store that did not answer is that
    item's `error` (recovery/failures.py). A complete, self-consistent checkpoint is healthy at any age;
    a finding (an orphan, incomplete, stale, corrupt) on files younger than `min_age` seconds (at
    `now`) is deferred as in progress, and nothing is rebuilt for it. `in_place` says whether this run
    writes rebuilt indexes beside their data (what a state file's record tells about fixing its latest
    checkpoint); `verify_data` (a bool, or a predicate on the prefix as displayed) that a healthy
    checkpoint will be streamed afterwards. `keep(found, index_bytes, graph)`, if given, is called with
    the index of every healthy checkpoint as read, and its object graph's payload where the spot check
    read and verified it, else None (the vault keeps them: recovery/memory/directory.py).
    """
    directory = storage.display(fs, contents.directory)
    now = time.time() if now is None else now
    will_verify = verify_data if callable(verify_data) else (lambda _prefix: verify_data)
    results = []
    states = {}
    for found in contents.checkpoints.values():
        display = storage.display(fs, found.prefix)
        mtime = contents.newest(contents.files_of(found.prefix))
        read = {}
        judged = dataclasses.replace(isolated(STEP, classify_prefix, (fs, found, root, directory, contents,
                                                                      will_verify(display), read),
                                              display, root, directory), mtime=mtime)
        if _young(mtime, min_age, now) and _a_finding(judged):
            judged = _in_progress(display, root, CHECKPOINT, directory, mtime, min_age, now, judged,
                                  data_files=len(found.data), data_bytes=found.data_bytes)
        elif keep is not None and read and isinstance(judged, Record) and judged.status == HEALTHY:
            keep(found, read[found.prefix], read.get((found.prefix, "object graph")))
        states[found.prefix] = judged
        results.append(judged)
    for leftover in contents.leftovers:
        mtime = contents.newest([p for p, _ in leftover.files] + contents.files_of(leftover.belongs_to))
        name = storage.display(fs, leftover.name)
        if _young(mtime, min_age, now):     # a save writing it now, whatever its parts look like
            record = _in_progress(name, root, LEFTOVER, directory, mtime, min_age, now,
                                  data_files=len(leftover.files), data_bytes=sum(size for _, size in leftover.files))
        else:
            record = dataclasses.replace(isolated(STEP, classify_leftover, (fs, leftover, contents, states, root,
                                                                            directory), name, root, directory,
                                                  LEFTOVER), mtime=mtime)
        results.append(record)
    for path, _ in contents.state_files:
        mtime = contents.newest([path])
        name = storage.display(fs, path)
        record = dataclasses.replace(isolated(STEP, classify_state_file, (fs, path, contents, root, directory,
                                                                          states, in_place), name, root,
                                              directory, STATE_FILE), mtime=mtime)
        if _young(mtime, min_age, now) and _a_finding(record):
            record = _in_progress(name, root, STATE_FILE, directory, mtime, min_age, now, record)
        results.append(record)
    return results


def _a_finding(judged) -> bool:
    """Would this verdict need a person (or a rebuild)? A storage error stays an error at any age."""
    return isinstance(judged, OrphanTask) or judged.status not in (HEALTHY, ERROR)


def _young(mtime: float | None, min_age: float, now: float) -> bool:
    return bool(min_age) and mtime is not None and now - mtime < min_age


def _in_progress(name: str, root: str, kind: str, directory: str, mtime: float, min_age: float, now: float,
                 looked=None, **fields) -> Record:
    """`looked`: the verdict the files give now (a Record or OrphanTask), deferred rather than reported."""
    age = now - mtime
    seen = ""
    if isinstance(looked, OrphanTask):
        seen = f"for now it looks like an orphan ({looked.finding}); "
    elif isinstance(looked, Record):
        seen = f"for now it looks {looked.status} ({looked.reason.split(': ', 1)[0]}); "
    return Record(name, IN_PROGRESS, f"newest file written {_duration(age)} ago, less than --min-age "
                  f"({_duration(min_age)}): a save may still be writing it; {seen}not judged and nothing rebuilt "
                  "this run (--min-age 0 judges it now)", root, kind, directory, mtime=mtime, **fields)


def _duration(seconds: float) -> str:
    if seconds < 0:
        return f"{-seconds:.0f} s in the future (clock skew)"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def classify_prefix(fs, found: PrefixFiles, root: str, directory: str, contents: DirectoryContents,
                    full_check_follows: bool = False, read: dict | None = None) -> "Record | OrphanTask":
    """`full_check_follows`: --verify-data will stream this checkpoint, so one damaged tensor the spot
    check finds is left for it to report with every other one. `read`: where the index bytes as read
    go (prefix -> bytes; and (prefix, "object graph") -> the graph's payload when the spot check read
    it), for a caller that keeps them without reading them again."""
    display = storage.display(fs, found.prefix)

    def orphan(stage_only=False, finding="no index", status_if_staged=CORRUPT):
        return OrphanTask(found.prefix, display, root, directory, contents.listing_for(found.prefix),
                          len(found.data), found.data_bytes, stage_only, finding, dict(found.data),
                          status_if_staged)

    if found.index_size is None:
        return orphan()
    try:
        index_bytes = storage.read_bytes(fs, found.index_path)
    except FileNotFoundError:
        return orphan(finding="the index vanished after the listing")
    if read is not None:
        read[found.prefix] = index_bytes
    try:
        index = read_sized_index(index_bytes)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the index cannot be trusted
        reason = exc if isinstance(exc, FormatError) else f"{type(exc).__name__}: {exc}"
        if not found.data:
            return Record(display, CORRUPT, f"index unreadable ({reason}) and no data files: nothing to rebuild from",
                          root, CHECKPOINT, directory, index_path=storage.display(fs, found.index_path),
                          command=inspect_command(display))
        return orphan(stage_only=True, finding=f"index unreadable: {reason}")
    parts = contents.part_indexes_of(found.prefix)
    if parts:
        verdict = compare_with_part_indexes(fs, found, index, index_bytes, parts)
        if verdict.stale:
            return orphan(stage_only=True, finding=verdict.finding, status_if_staged=STALE)
        if verdict.corrupt:
            return Record(display, CORRUPT, verdict.finding, root, CHECKPOINT, directory,
                          index_path=storage.display(fs, found.index_path), data_files=len(found.data),
                          data_bytes=found.data_bytes, bytes_scanned=verdict.bytes_read,
                          command=inspect_command(display))
    record = judge_sizes(fs, found, index, root, directory)
    if parts:
        record = dataclasses.replace(record, checks=(*record.checks, verdict.finding),
                                     bytes_scanned=record.bytes_scanned + verdict.bytes_read)
    if record.status != HEALTHY:
        return record
    spot = spot_check(fs, found.prefix, index)
    if read is not None and spot.graph is not None:
        read[(found.prefix, "object graph")] = spot.graph
    record = dataclasses.replace(record, bytes_scanned=record.bytes_scanned + spot.bytes_read)
    if spot.looks_stale:
        return orphan(stage_only=True, status_if_staged=STALE, finding=(
            f"the index does not describe the data beside it: {'; '.join(spot.mismatches[:2])}. Most likely the "
            "index is from an earlier save to this prefix that stopped after TensorFlow renamed the new data into "
            "place and before it wrote the new index (or the data is damaged)"))
    if spot.mismatches and not full_check_follows:
        return dataclasses.replace(record, status=CORRUPT, command=inspect_command(display), reason=(
            f"{spot.mismatches[0]} (spot check; the other {len(spot.checked)} checked tensor(s) match): the data is "
            "damaged (bit rot, a bad copy); --verify-data checks every tensor"))
    if spot.mismatches:
        return dataclasses.replace(record, checks=(*record.checks,
                                                   f"spot check: {spot.mismatches[0]}; --verify-data follows"))
    if spot.checked:
        return dataclasses.replace(record, checks=(
            *record.checks, f"spot check: {len(spot.checked)} small tensor(s) ({spot.bytes_read} bytes) match their "
                            f"CRCs in the index: {', '.join(spot.checked)}"))
    return record


def judge_sizes(fs, found: PrefixFiles, index, root: str, directory: str) -> Record:
    """Healthy when every shard the index names is listed at exactly the size its entries reach."""
    display = storage.display(fs, found.prefix)
    num_shards = index.header.num_shards or 1
    listed = dict(found.data)
    shards = shard_sizes(index, lambda shard: listed.get(data_filename(found.prefix, shard, num_shards)))
    missing = [s.shard for s in shards if s.missing]
    short = [f"shard {s.shard} has {s.size} of {s.needed} bytes" for s in shards if s.short]
    long = [f"shard {s.shard} has {s.size - s.needed} bytes more than its index accounts for" for s in shards if s.long]

    def record(status: str, reason: str, **fields) -> Record:
        return Record(display, status, reason, root, CHECKPOINT, directory,
                      index_path=storage.display(fs, found.index_path), data_files=len(found.data),
                      data_bytes=found.data_bytes, **fields)

    if missing or short:
        lost = ([f"{len(missing)} of {num_shards} data shard(s) missing (shard {', '.join(map(str, missing[:8]))})"]
                if missing else []) + short
        return record(INCOMPLETE, "; ".join(lost) + ": TensorFlow cannot restore it; the lost bytes are not in this "
                      "directory", command=inspect_command(display))
    if long:
        return record(CORRUPT, "; ".join(long) + ": the index and the data do not belong together (a copy from "
                      "another save, or an interrupted transfer)", command=inspect_command(display))
    strays = sorted(p for p in listed if p not in {data_filename(found.prefix, s.shard, num_shards) for s in shards})
    checks = [f"index readable: {len(index.entries)} entries, {num_shards} shard(s)",
              "every data shard listed at exactly the size the index expects"]
    if strays:
        checks.append(f"note: data files the index does not name: {', '.join(strays[:3])}")
    return record(HEALTHY, f"index reads ({len(index.entries)} entries) and all {num_shards} data shard(s) are "
                  "complete", checks=checks)


def classify_leftover(fs, leftover: Leftover, contents: DirectoryContents, states: dict, root: str,
                      directory: str) -> Record:
    """What a leftover of an interrupted save means, given the verdict of the checkpoint it belongs to."""
    name = storage.display(fs, leftover.name)
    status, reason, command = _leftover_verdict(fs, leftover, contents, states, name)
    return Record(name, status, reason, root, LEFTOVER, directory, data_files=len(leftover.files),
                  data_bytes=sum(size for _, size in leftover.files), command=command)


def _leftover_verdict(fs, leftover: Leftover, contents: DirectoryContents, states: dict, name: str) -> tuple:
    owner = contents.checkpoints.get(leftover.belongs_to)
    owner_name = storage.display(fs, leftover.belongs_to) if leftover.belongs_to else ""
    if leftover.what == "state file temp":
        return HEALTHY, "temp file of a `checkpoint` state update that never got renamed; safe to delete", ""
    if leftover.what == "unrenamed write":
        return HEALTHY, ("a write TensorFlow never renamed into place (a save was interrupted, or is running now); "
                         + (f"{owner_name} itself is audited in its own record" if owner
                            else f"nothing of {owner_name} was completed")), ""
    if owner is None and leftover.complete:
        return INCOMPLETE, (f"the save of {owner_name} stopped before its merge: a complete bundle survives at "
                            f"{name} (TensorFlow can restore from that prefix), but {owner_name} does not exist"), \
            inspect_command(name)
    if owner is None:
        return HEALTHY, f"part of an interrupted save of {owner_name}; nothing of {owner_name} was completed", ""
    if getattr(states.get(leftover.belongs_to), "status_if_staged", "") == STALE:
        return HEALTHY, (f"merge input of {owner_name}, whose index is stale: this part index describes the data "
                         "now beside it and is the source of the staged rebuild; keep it until that checkpoint is "
                         "fixed"), ""
    if isinstance(states.get(leftover.belongs_to), OrphanTask):
        return HEALTHY, (f"merge input of {owner_name}, which has no readable index: its part index is the best "
                         "source for the rebuild; keep it until that checkpoint is fixed"), ""
    return HEALTHY, f"merge input left behind after {owner_name} was written; see that checkpoint's record", ""
