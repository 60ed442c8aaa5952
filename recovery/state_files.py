"""What `tf.train.latest_checkpoint()` makes of a `checkpoint` state file, given the verdicts of the
prefixes beside it.

It looks only at `model_checkpoint_path` and only for `<that prefix>.index` (checked against
TensorFlow 2.21): when that index is missing it logs "Couldn't match files" and returns None,
without falling back to an older checkpoint, so `ckpt.restore(tf.train.latest_checkpoint(dir))`
restores nothing and training starts from scratch.
"""

import dataclasses

from tfbundle import FormatError, index_filename

from . import storage
from .discovery import DirectoryContents, PrefixFiles, parse_state_file, resolve_state_name
from .records import HEALTHY, IN_PROGRESS, INCOMPLETE, STALE, STATE_FILE, Record, inspect_command


def classify_state_file(fs, path: str, contents: DirectoryContents, root: str, directory: str,
                        states: dict | None = None, in_place: bool = False) -> Record:
    """The state file's record; `states`: prefix -> the Record or OrphanTask of each prefix beside it;
    `in_place`: whether this run writes rebuilt indexes beside their data."""
    display = storage.display(fs, path)
    record = Record(display, HEALTHY, "", root, STATE_FILE, directory)
    states = states or {}
    try:
        state = parse_state_file(storage.read_bytes(fs, path).decode("utf-8", "replace"))
    except OSError as exc:
        return dataclasses.replace(record, status=INCOMPLETE, reason=f"state file unreadable: {exc}")
    except FormatError as exc:
        return dataclasses.replace(record, status=INCOMPLETE, reason=(
            f"state file unreadable ({exc}): TensorFlow ignores it, so tf.train.latest_checkpoint() returns None "
            "and training restarts"))
    # what tf.train.latest_checkpoint() will look for (the report joins on it)
    record = dataclasses.replace(record, source=state.latest or "")
    dangling, orphans = [], []
    for name in state.names():
        prefix = resolve_state_name(contents.directory, name, fs.protocol)
        found = contents.checkpoints.get(prefix)
        if found is None and storage.prefix_directory(prefix) != contents.directory:
            found = _look_elsewhere(fs, prefix)
        if found is None:
            dangling.append(name)
        elif found.index_size is None:
            orphans.append(name)
    if not state.names():
        return dataclasses.replace(record, reason="names no checkpoint")
    status, reason, command = _latest_verdict(fs, state, contents, states, in_place, display, dangling, orphans)
    checks = []
    older_orphans = [n for n in orphans if n != state.latest]
    if older_orphans:
        checks.append(f"names {len(older_orphans)} older checkpoint(s) without an index until rebuilt "
                      f"(latest_checkpoint() is unaffected): {', '.join(older_orphans[:5])}")
    return dataclasses.replace(record, status=status, reason=reason, command=command, checks=checks)


def _latest_verdict(fs, state, contents: DirectoryContents, states: dict, in_place: bool, display: str,
                    dangling: list, orphans: list) -> tuple:
    """(status, reason, command): what becomes of latest_checkpoint() and what fixes it."""
    restarts = ("so tf.train.latest_checkpoint() returns None (it does not fall back to an older checkpoint) and "
                "training that restores from it starts from scratch")
    latest = state.latest
    latest_prefix = resolve_state_name(contents.directory, latest, fs.protocol) if latest else ""
    older = [n for n in reversed(state.all_paths) if n != latest and n not in dangling and n not in orphans]
    fallback = f"; or edit the state file to name {older[0]}, the newest it lists that has its index" if older else ""
    if latest in dangling:
        return INCOMPLETE, (f"its latest checkpoint {latest} does not exist (no index, no data), {restarts}; no "
                            f"rebuild can fix that{fallback}"), inspect_command(display)
    if latest in orphans:
        judged = states.get(latest_prefix)
        shown = storage.display(fs, latest_prefix)
        if isinstance(judged, Record) and judged.status == IN_PROGRESS:
            return HEALTHY, f"its latest checkpoint {latest} has no index yet and is still being written", ""
        if in_place:
            return HEALTHY, (f"its latest checkpoint {latest} has no index, {restarts}. This run rebuilds it in place "
                             f"(--in-place), which fixes that: see the record of {shown} (if it is not rebuilt, that "
                             "record says why)"), ""
        return INCOMPLETE, (f"its latest checkpoint {latest} has no index, {restarts}. A staged rebuild does not fix "
                            f"that until it is promoted: run the command in the record of {shown} (or re-run with "
                            f"--in-place){fallback}"), inspect_command(shown)
    if getattr(states.get(latest_prefix), "stage_only", False):
        what = "stale" if states[latest_prefix].status_if_staged == STALE else "unreadable"
        shown = storage.display(fs, latest_prefix)
        return INCOMPLETE, (f"its latest checkpoint {latest} has an index that is {what}: tf.train.latest_checkpoint() "
                            f"returns it and restoring from it fails until the index staged in the record of {shown} "
                            "replaces it"), inspect_command(shown)
    if dangling:
        return HEALTHY, (f"its latest checkpoint {latest} exists; {len(dangling)} older one(s) it lists do not "
                         f"({', '.join(dangling[:5])}): latest_checkpoint() is unaffected, CheckpointManager drops "
                         "them from its list"), ""
    return HEALTHY, (f"all {len(state.names())} checkpoint(s) it names exist, and its latest ({latest}) has its "
                     "index"), ""


def _look_elsewhere(fs, prefix: str) -> PrefixFiles | None:
    """A state file may name a checkpoint in another directory (absolute paths): ask the backend."""
    index = index_filename(prefix)
    if storage.fresh_exists(fs, index):
        return PrefixFiles(prefix, index_size=storage.info(fs, index)["size"])
    data = storage.glob(fs, prefix + ".data-*")
    return PrefixFiles(prefix, data=[(p, 0) for p in data]) if data else None
