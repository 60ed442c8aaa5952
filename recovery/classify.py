"""Judge every prefix of one directory with its neighbours in view: healthy, incomplete, corrupt,
or an orphan to rebuild; and say what each leftover and `checkpoint` state file means.

Only indexes and state files are read here (small); data files are judged by their listed sizes.
An index that exists but cannot be read makes its prefix an orphan whose rebuilt index may only be
staged: replacing an existing file is a person's decision.
"""

import time
import traceback
from dataclasses import dataclass, field

from tfbundle import (
    OBJECT_GRAPH_KEY,
    FormatError,
    checksummer,
    crc_mask,
    data_filename,
    index_filename,
    naming,
    read_index,
)

from . import storage
from .counters import COUNTER_KEYS
from .discovery import DirectoryContents, Leftover, PrefixFiles, parse_state_file, resolve_state_name
from .records import (
    CHECKPOINT,
    CORRUPT,
    HEALTHY,
    IN_PROGRESS,
    INCOMPLETE,
    LEFTOVER,
    STALE,
    STATE_FILE,
    UNRECOVERABLE,
    Record,
    inspect_command,
)
from .sizes import shard_sizes

# The cheap check every healthy-looking index gets: the CRCs of a few small tensors (step counters,
# the object graph, the smallest other tensors) against the data, in one batch of ranged reads.
SPOT_CHECK_TENSORS = 3
SPOT_CHECK_BYTES = 1 << 20
COUNTER_SUFFIXES = (*COUNTER_KEYS, "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE",
                    "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")


@dataclass
class OrphanTask:
    """A prefix whose index is missing (or unreadable, or stale) and must be rebuilt before it can be judged."""

    prefix: str                  # filesystem path
    display_prefix: str
    root: str
    directory: str               # display form
    listing: list                # ls-shaped entries of its directory, for the rebuild sources
    data_files: int
    data_bytes: int
    stage_only: bool = False     # its own index exists but is unreadable or stale: never write in place
    finding: str = ""            # what classification saw, e.g. "index unreadable: bad magic"
    data_sizes: dict = field(default_factory=dict)   # path -> listed size
    status_if_staged: str = CORRUPT   # the status of a stage-only rebuild: CORRUPT (unreadable) or STALE
    mtime: float | None = None   # newest file of the prefix (epoch seconds)


def classify_directory(fs, contents: DirectoryContents, root: str, min_age: float = 0.0, now: float | None = None,
                       in_place: bool = False, verify_data: bool = False) -> list:
    """One Record or OrphanTask per checkpoint prefix, one Record per leftover and state file.

    Each is judged on its own: whatever one prefix's files hold (an index that does not decode, a read
    that fails), its neighbours still get their own verdicts. Files younger than `min_age` seconds
    (at `now`) are reported in progress and not read. `in_place` says whether this run writes rebuilt
    indexes beside their data (what a state file's record tells about fixing its latest checkpoint);
    `verify_data` that every healthy checkpoint will be streamed afterwards.
    """
    directory = storage.display(fs, contents.directory)
    now = time.time() if now is None else now
    results = []
    states = {}
    for found in contents.checkpoints.values():
        display = storage.display(fs, found.prefix)
        mtime = contents.newest(contents.files_of(found.prefix))
        if _young(mtime, min_age, now):
            judged = _in_progress(display, root, CHECKPOINT, directory, mtime, min_age, now,
                                  data_files=len(found.data), data_bytes=found.data_bytes)
        else:
            judged = _isolated(classify_prefix, (fs, found, root, directory, contents, verify_data), display, root,
                               directory)
            judged.mtime = mtime
        states[found.prefix] = judged
        results.append(judged)
    for leftover in contents.leftovers:
        mtime = contents.newest([p for p, _ in leftover.files] + contents.files_of(leftover.belongs_to))
        name = storage.display(fs, leftover.name)
        if _young(mtime, min_age, now):
            record = _in_progress(name, root, LEFTOVER, directory, mtime, min_age, now, data_files=len(leftover.files),
                                  data_bytes=sum(size for _, size in leftover.files))
        else:
            record = _isolated(classify_leftover, (fs, leftover, contents, states, root, directory), name, root,
                               directory, LEFTOVER)
            record.mtime = mtime
        results.append(record)
    for path, _ in contents.state_files:
        mtime = contents.newest([path])
        name = storage.display(fs, path)
        if _young(mtime, min_age, now):
            record = _in_progress(name, root, STATE_FILE, directory, mtime, min_age, now)
        else:
            record = _isolated(classify_state_file, (fs, path, contents, root, directory, states, in_place),
                               name, root, directory, STATE_FILE)
            record.mtime = mtime
        results.append(record)
    return results


def _young(mtime: float | None, min_age: float, now: float) -> bool:
    return bool(min_age) and mtime is not None and now - mtime < min_age


def _in_progress(name: str, root: str, kind: str, directory: str, mtime: float, min_age: float, now: float,
                 **fields) -> Record:
    age = now - mtime
    return Record(name, IN_PROGRESS, f"newest file written {_duration(age)} ago, less than --min-age "
                  f"({_duration(min_age)}): a save may still be writing it; not judged and nothing rebuilt this run",
                  root, kind, directory, mtime=mtime, **fields)


def _duration(seconds: float) -> str:
    if seconds < 0:
        return f"{-seconds:.0f} s in the future (clock skew)"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _isolated(judge, args: tuple, name: str, root: str, directory: str, kind: str = CHECKPOINT):
    """Run one item's judgement; whatever it raises becomes that item's record, not its directory's."""
    try:
        return judge(*args)
    except Exception as exc:  # noqa: BLE001 - one item's surprise must not take its neighbours' verdicts
        return Record(name, UNRECOVERABLE, f"classification failed: {_describe(exc)}", root, kind, directory,
                      command=inspect_command(name))


def _describe(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    return last + (f" (at {'/'.join(frames[-1].filename.split('/')[-2:])}:{frames[-1].lineno})" if frames else "")


def classify_prefix(fs, found: PrefixFiles, root: str, directory: str, contents: DirectoryContents,
                    full_check_follows: bool = False) -> "Record | OrphanTask":
    """`full_check_follows`: --verify-data will stream this checkpoint, so one damaged tensor the spot
    check finds is left for it to report with every other one."""
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
    try:
        index = read_index(index_bytes)
        _check_decoded(index)
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
        record.checks.append(verdict.finding)
        record.bytes_scanned += verdict.bytes_read
    if record.status != HEALTHY:
        return record
    spot = spot_check(fs, found.prefix, index)
    record.bytes_scanned += spot.bytes_read
    if spot.looks_stale:
        return orphan(stage_only=True, status_if_staged=STALE, finding=(
            f"the index does not describe the data beside it: {'; '.join(spot.mismatches[:2])}. Most likely the "
            "index is from an earlier save to this prefix that stopped after TensorFlow renamed the new data into "
            "place and before it wrote the new index (or the data is damaged)"))
    if spot.mismatches and not full_check_follows:
        record.status, record.command = CORRUPT, inspect_command(display)
        record.reason = (f"{spot.mismatches[0]} (spot check; the other {len(spot.checked)} checked tensor(s) match): "
                         "the data is damaged (bit rot, a bad copy); --verify-data checks every tensor")
        return record
    if spot.mismatches:
        record.checks.append(f"spot check: {spot.mismatches[0]}; --verify-data follows")
    elif spot.checked:
        record.checks.append(f"spot check: {len(spot.checked)} small tensor(s) ({spot.bytes_read} bytes) match their "
                             f"CRCs in the index: {', '.join(spot.checked)}")
    return record


def _check_decoded(index) -> None:
    """Fields of the wrong wire type decode to the wrong Python type: catch that before anything adds them."""
    for key, entry in index.entries.items():
        for name in ("dtype", "shard_id", "offset", "size", "crc32c"):
            value = getattr(entry, name)
            if not isinstance(value, int) or value < 0:
                raise FormatError(f"entry {key!r}: field {name} is {type(value).__name__} {value!r}, not a "
                                  "non-negative integer (a wrong protobuf wire type)")
        if not all(isinstance(d, int) and d >= 0 for d in entry.shape):
            raise FormatError(f"entry {key!r}: shape {entry.shape!r} is not a list of non-negative sizes")
    if not isinstance(index.header.num_shards, int) or index.header.num_shards < 0:
        raise FormatError(f"header num_shards is {index.header.num_shards!r}")


@dataclass
class SpotCheck:
    checked: list = field(default_factory=list)      # tensor names whose CRC matched
    mismatches: list = field(default_factory=list)   # what did not match, in words
    bytes_read: int = 0
    counter_differs: bool = False

    @property
    def looks_stale(self) -> bool:
        """An index from another save: its step counter differs, or more than one tensor does, or nothing
        checked matches. One tensor alone that differs beside others that match is damaged data."""
        return bool(self.mismatches) and (self.counter_differs or len(self.mismatches) > 1 or not self.checked)


def spot_check(fs, prefix: str, index, limit: int = SPOT_CHECK_TENSORS, budget: int = SPOT_CHECK_BYTES) -> SpotCheck:
    """The CRCs of a few small tensors against the data: step counters first (they change with every
    save), then the object graph, then the smallest other tensors; at most `limit` tensors and `budget`
    bytes, read in one batch of ranged reads."""
    entries = [(k, e) for k, e in index.data_entries() if e.size]
    chosen, spent = [], 0
    counters = [(k, e) for k, e in entries if k.decode("utf-8", "replace").endswith(COUNTER_SUFFIXES)]
    graph = [(k, e) for k, e in entries if k == OBJECT_GRAPH_KEY.encode()]
    others = sorted((item for item in entries if item not in counters and item not in graph), key=lambda kv: kv[1].size)
    for key, entry in counters + graph + others:
        if len(chosen) < limit and spent + entry.size <= budget and (key, entry) not in chosen:
            chosen.append((key, entry))
            spent += entry.size
    result = SpotCheck()
    if not chosen:
        return result
    num_shards = index.header.num_shards or 1
    paths = [data_filename(prefix, e.shard_id, num_shards) for _, e in chosen]
    blobs = fs.cat_ranges(paths, [e.offset for _, e in chosen], [e.offset + e.size for _, e in chosen],
                          on_error="raise")
    for (key, entry), blob in zip(chosen, blobs):
        name = key.decode("utf-8", "replace")
        result.bytes_read += len(blob)
        actual = tensor_crc(entry, blob)
        if actual == entry.crc32c:
            result.checked.append(name)
            continue
        shown = f"data {actual:#010x}" if actual is not None else "the data is not such a tensor"
        result.mismatches.append(f"tensor {name!r} (shard {entry.shard_id}, bytes {entry.offset}-"
                                 f"{entry.offset + entry.size}): checksum does not match (index {entry.crc32c:#010x}, "
                                 f"{shown})")
        result.counter_differs |= name.endswith(COUNTER_SUFFIXES)
    return result


def tensor_crc(entry, blob: bytes) -> int | None:
    """The masked CRC BundleWriter would store for these bytes; None when they are not such a tensor."""
    if len(blob) != entry.size:
        return None
    try:
        summer = checksummer(entry.dtype, entry.shape, entry.size, count_nonfinite=False)
        summer.feed(blob)
    except (FormatError, ValueError):
        return None
    return crc_mask(summer.crc) if summer.done else None


@dataclass
class PartVerdict:
    finding: str
    stale: bool = False
    corrupt: bool = False
    bytes_read: int = 0


def compare_with_part_indexes(fs, found: PrefixFiles, index, index_bytes: bytes, parts: list) -> PartVerdict:
    """An index beside the part indexes of a merge into the same prefix: do they describe the same data?

    TensorFlow's merge renames the part data into place before it writes P.index, so a crash in
    between leaves the new data beside the old index (a reused prefix) and the part index that
    describes the new data. Agreement: the merge finished and only its clean-up was cut short.
    Disagreement: a few tensors whose CRCs differ are read to see which index the data follows.
    """
    where = storage.display(fs, storage.parent(parts[0].name))
    merged, num_parts, problem = _merged_part_entries(fs, parts)
    if problem:
        return PartVerdict(f"note: the part index in {where} was not compared: {problem}")
    if num_parts == 1 and _part_index_bytes(fs, parts[0]) == index_bytes:
        return PartVerdict(f"the part index left in {where} is byte-identical to the index (a merge whose "
                           "clean-up was interrupted)")
    own = _comparable(index.entries, index.header.num_shards or 1)
    if own == merged and (index.header.num_shards or 1) == num_parts:
        return PartVerdict(f"the part indexes left in {where} describe the same tensors as the index (a merge whose "
                           "clean-up was interrupted)")
    listed = dict(found.data)
    sizes_fit = all(listed.get(data_filename(found.prefix, s, num_parts)) == n
                    for s, n in _shard_ends(merged, num_parts).items())
    differing = sorted((key for key in set(own) | set(merged) if own.get(key) != merged.get(key)),
                       key=lambda k: (_size_of(merged.get(k) or own.get(k)), k))
    probes = [k for k in differing if _size_of(merged.get(k)) and _size_of(merged[k]) <= SPOT_CHECK_BYTES]
    probes = probes[:SPOT_CHECK_TENSORS]
    part_ok = own_ok = None
    bytes_read = 0
    if sizes_fit and probes:
        part_ok, read = _entries_match(fs, found.prefix, num_parts, [(k, merged[k]) for k in probes])
        bytes_read += read
        own_probes = [(k, own[k]) for k in probes if k in own and len(own[k]) > 4]
        own_ok, read = (_entries_match(fs, found.prefix, index.header.num_shards or 1, own_probes) if own_probes
                        else (False, 0))
        bytes_read += read
    shown = ", ".join(repr(k.decode("utf-8", "replace")) for k in differing[:3])
    if part_ok and not own_ok:
        return PartVerdict(f"stale index: the part index left in {where} by a later save describes the data "
                           f"({len(probes)} tensor(s) whose CRCs differ read as the part index says: {shown}) and the "
                           "index does not. TensorFlow's merge renamed the new data into place and stopped before it "
                           "wrote the index", stale=True, bytes_read=bytes_read)
    if own_ok and not part_ok:
        return PartVerdict(f"note: the part index left in {where} is from an earlier interrupted save; the data "
                           f"follows the index ({len(probes)} tensor(s) checked: {shown})", bytes_read=bytes_read)
    if part_ok is None:
        detail = ("the part index does not account for the data files' sizes" if not sizes_fit
                  else "they differ only in layout, which the data cannot decide")
        if sizes_fit:
            return PartVerdict(f"the index and the part index left in {where} disagree on {shown}; {detail}",
                               corrupt=True)
        return PartVerdict(f"note: the part index left in {where} differs from the index and {detail}")
    return PartVerdict(f"neither the index nor the part index left in {where} matches the data at {shown}: the data "
                       "is from another save, or damaged", corrupt=True, bytes_read=bytes_read)


def _part_index_path(part: Leftover) -> str:
    return next(p for p, _ in part.files if p.endswith(naming.INDEX_SUFFIX))


def _part_index_bytes(fs, part: Leftover) -> bytes:
    return storage.read_bytes(fs, _part_index_path(part))


def _merged_part_entries(fs, parts: list):
    """Entries as MergeBundles would write them from these part indexes (shard = part number), the part
    count, or a problem that keeps them from being compared."""
    numbered = [(naming.part_of(part.name), part) for part in parts]
    count = numbered[0][0][2]
    if sorted(n[1] for n, _ in numbered) != list(range(count)) or any(n[2] != count for n, _ in numbered):
        return None, count, f"found {len(parts)} of {count} part indexes"
    merged = {}
    for (_, number, _), part in sorted(numbered, key=lambda item: item[0][1]):
        try:
            part_index = read_index(_part_index_bytes(fs, part))
            _check_decoded(part_index)
        except (FormatError, OSError) as exc:
            return None, count, f"{storage.display(fs, _part_index_path(part))} is unreadable: {exc}"
        for key, value in _comparable(part_index.entries, 1, shard=number).items():
            if len(value) == 3 and key in merged:
                merged[key] = (value[0], value[1], merged[key][2] + value[2])
            else:
                merged.setdefault(key, value)
    return merged, count, ""


def _comparable(entries: dict, num_shards: int, shard: int | None = None) -> dict:
    """key -> (dtype, shape, shard, offset, size, crc) for data entries, (dtype, shape, slices) for
    partitioned tensors' full entries."""
    out = {}
    for key, entry in entries.items():
        if entry.slices:
            out[key] = (entry.dtype, tuple(entry.shape), tuple(entry.slices))
        else:
            out[key] = (entry.dtype, tuple(entry.shape), entry.shard_id if shard is None else shard, entry.offset,
                        entry.size, entry.crc32c)
    return out


def _size_of(comparable) -> int:
    return comparable[4] if comparable is not None and len(comparable) > 4 else 0


def _shard_ends(comparable: dict, num_shards: int) -> dict:
    ends = dict.fromkeys(range(num_shards), 0)
    for value in comparable.values():
        if len(value) > 3:
            ends[value[2]] = max(ends.get(value[2], 0), value[3] + value[4])
    return ends


def _entries_match(fs, prefix: str, num_shards: int, probes: list) -> tuple:
    """(every probed tensor's bytes match its CRC, bytes read); probes are (key, comparable entry)."""
    from tfbundle import BundleEntry

    paths = [data_filename(prefix, v[2], num_shards) for _, v in probes]
    blobs = fs.cat_ranges(paths, [v[3] for _, v in probes], [v[3] + v[4] for _, v in probes], on_error="raise")
    ok = True
    for (_, v), blob in zip(probes, blobs):
        entry = BundleEntry(v[0], v[1], v[2], v[3], v[4], v[5])
        ok = ok and tensor_crc(entry, blob) == entry.crc32c
    return ok, sum(len(b) for b in blobs)


def judge_sizes(fs, found: PrefixFiles, index, root: str, directory: str) -> Record:
    """Healthy when every shard the index names is listed at exactly the size its entries reach."""
    display = storage.display(fs, found.prefix)
    num_shards = index.header.num_shards or 1
    listed = dict(found.data)
    shards = shard_sizes(index, lambda shard: listed.get(data_filename(found.prefix, shard, num_shards)))
    missing = [s.shard for s in shards if s.missing]
    short = [f"shard {s.shard} has {s.size} of {s.needed} bytes" for s in shards if s.short]
    long = [f"shard {s.shard} has {s.size - s.needed} bytes more than its index accounts for" for s in shards if s.long]
    record = Record(display, HEALTHY, "", root, CHECKPOINT, directory,
                    index_path=storage.display(fs, found.index_path), data_files=len(found.data),
                    data_bytes=found.data_bytes)
    strays = sorted(p for p in listed if p not in {data_filename(found.prefix, s.shard, num_shards) for s in shards})
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
    elif getattr(states.get(leftover.belongs_to), "status_if_staged", "") == STALE:
        record.reason = (f"merge input of {owner_name}, whose index is stale: this part index describes the data now "
                         "beside it and is the source of the staged rebuild; keep it until that checkpoint is fixed")
    elif isinstance(states.get(leftover.belongs_to), OrphanTask):
        record.reason = (f"merge input of {owner_name}, which has no readable index: its part index is the best source "
                         "for the rebuild; keep it until that checkpoint is fixed")
    else:
        record.reason = f"merge input left behind after {owner_name} was written; see that checkpoint's record"
    return record


def classify_state_file(fs, path: str, contents: DirectoryContents, root: str, directory: str,
                        states: dict | None = None, in_place: bool = False) -> Record:
    """What `tf.train.latest_checkpoint()` makes of a `checkpoint` state file.

    It looks only at `model_checkpoint_path` and only for `<that prefix>.index` (checked against
    TensorFlow 2.21): when that index is missing it logs "Couldn't match files" and returns None,
    without falling back to an older checkpoint, so `ckpt.restore(tf.train.latest_checkpoint(dir))`
    restores nothing and training starts from scratch.
    """
    display = storage.display(fs, path)
    record = Record(display, HEALTHY, "", root, STATE_FILE, directory)
    states = states or {}
    try:
        state = parse_state_file(storage.read_bytes(fs, path).decode("utf-8", "replace"))
    except OSError as exc:
        record.status, record.reason = INCOMPLETE, f"state file unreadable: {exc}"
        return record
    except FormatError as exc:
        record.status = INCOMPLETE
        record.reason = (f"state file unreadable ({exc}): TensorFlow ignores it, so tf.train.latest_checkpoint() "
                         "returns None and training restarts")
        return record
    record.source = state.latest or ""     # what tf.train.latest_checkpoint() will look for (the report joins on it)
    dangling, orphans = [], []
    for name in state.names():
        prefix = resolve_state_name(contents.directory, name, fs._strip_protocol)
        found = contents.checkpoints.get(prefix)
        if found is None and storage.prefix_directory(prefix) != contents.directory:
            found = _look_elsewhere(fs, prefix)
        if found is None:
            dangling.append(name)
        elif found.index_size is None:
            orphans.append(name)
    if not state.names():
        record.reason = "names no checkpoint"
        return record
    restarts = ("so tf.train.latest_checkpoint() returns None (it does not fall back to an older checkpoint) and "
                "training that restores from it starts from scratch")
    latest = state.latest
    latest_prefix = resolve_state_name(contents.directory, latest, fs._strip_protocol) if latest else ""
    older = [n for n in reversed(state.all_paths) if n != latest and n not in dangling and n not in orphans]
    fallback = f"; or edit the state file to name {older[0]}, the newest it lists that has its index" if older else ""
    if latest in dangling:
        record.status = INCOMPLETE
        record.reason = (f"its latest checkpoint {latest} does not exist (no index, no data), {restarts}; no rebuild "
                         f"can fix that{fallback}")
        record.command = inspect_command(display)
    elif latest in orphans:
        judged = states.get(latest_prefix)
        shown = storage.display(fs, latest_prefix)
        if isinstance(judged, Record) and judged.status == IN_PROGRESS:
            record.reason = f"its latest checkpoint {latest} has no index yet and is still being written"
        elif in_place:
            record.reason = (f"its latest checkpoint {latest} has no index, {restarts}. This run rebuilds it in place "
                             f"(--in-place), which fixes that: see the record of {shown} (if it is not rebuilt, that "
                             "record says why)")
        else:
            record.status = INCOMPLETE
            record.reason = (f"its latest checkpoint {latest} has no index, {restarts}. A staged rebuild does not fix "
                             f"that until it is promoted: run the command in the record of {shown} (or re-run with "
                             f"--in-place){fallback}")
            record.command = inspect_command(shown)
    elif getattr(states.get(latest_prefix), "stage_only", False):
        what = "stale" if states[latest_prefix].status_if_staged == STALE else "unreadable"
        shown = storage.display(fs, latest_prefix)
        record.status, record.command = INCOMPLETE, inspect_command(shown)
        record.reason = (f"its latest checkpoint {latest} has an index that is {what}: tf.train.latest_checkpoint() "
                         f"returns it and restoring from it fails until the index staged in the record of {shown} "
                         "replaces it")
    elif dangling:
        record.reason = (f"its latest checkpoint {latest} exists; {len(dangling)} older one(s) it lists do not "
                         f"({', '.join(dangling[:5])}): latest_checkpoint() is unaffected, CheckpointManager drops "
                         "them from its list")
    else:
        record.reason = (f"all {len(state.names())} checkpoint(s) it names exist, and its latest ({latest}) has "
                         "its index")
    older_orphans = [n for n in orphans if n != latest]
    if older_orphans:
        record.checks.append(f"names {len(older_orphans)} older checkpoint(s) without an index until rebuilt "
                             f"(latest_checkpoint() is unaffected): {', '.join(older_orphans[:5])}")
    return record


def _look_elsewhere(fs, prefix: str) -> PrefixFiles | None:
    """A state file may name a checkpoint in another directory (absolute paths): ask the backend."""
    index = index_filename(prefix)
    if storage.fresh_exists(fs, index):
        return PrefixFiles(prefix, index_size=storage.info(fs, index)["size"])
    data = storage.glob(fs, prefix + ".data-*")
    return PrefixFiles(prefix, data=[(p, 0) for p in data]) if data else None
