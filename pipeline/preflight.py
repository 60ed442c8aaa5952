"""Before any work: can every cloud path be reached, with credentials, in a few seconds?

The storage clients (gcsfs, s3fs) retry for minutes when the network, a credential or a bucket is
missing, and then fail with a traceback. Here every path whose store asks for it (gs://, s3://: the
store's `probe`, recovery/stores/) gets one bounded call (short timeouts, no retries), all paths at
once, and a usage error (exit 2) that names what is missing and how to provide it. Local and
memory:// paths are checked by the commands themselves.
"""

import dataclasses
import importlib.util
import os
import tempfile
import time

from recovery.stores import local_path, store_for
from recovery.stores.probing import CONNECT_SECONDS, READ_SECONDS, TRANSIENT, in_background, short

from .cli import UsageError

TOTAL_SECONDS = 8.0   # every path is checked at the same time; the whole check ends within this
RETRY_PAUSE = 1.0     # a store that answered "try again" gets one more call inside the time budget


def check_access(paths: list) -> None:
    """Raise UsageError naming every (label, url) whose store cannot be reached or read.

    `paths` holds (label, url) pairs such as ("ROOT", "gs://b/runs") or ("--report-dir", "s3://b/r");
    entries whose url is None or local are skipped.
    """
    remote = [(label, url) for label, url in paths if url and store_for(url).checks_access]
    if not remote:
        return
    unique = list(dict.fromkeys(url for _, url in remote))
    deadline = time.monotonic() + TOTAL_SECONDS
    stages = {url: {"now": "starting"} for url in unique}
    running = {url: in_background(_check_one, url, stages[url]) for url in unique}   # all at once
    problems = {}
    for url, (thread, outcome) in running.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            problems[url] = [(f"no answer within {TOTAL_SECONDS:.0f} s while {stages[url]['now']}",
                              "check the network and credentials; run again with --debug to see the storage "
                              "client's own logs")]
        elif "error" in outcome:
            problems[url] = [(f"the check itself failed: {short(outcome['error'])}", "run again with --debug")]
        else:
            problems[url] = outcome["value"]
    for url, found in problems.items():
        if found and all(p.startswith(TRANSIENT) for p, _ in found) and \
                deadline - time.monotonic() > RETRY_PAUSE + READ_SECONDS + CONNECT_SECONDS:
            time.sleep(RETRY_PAUSE)
            try:
                problems[url] = _check_one(url, stages[url])
            except Exception as exc:  # noqa: BLE001 - reported as the check's own failure
                problems[url] = [(f"the check itself failed: {short(exc)}", "run again with --debug")]
    grouped = {}   # the same problems (no network, no credentials) usually hit every path: say them once
    for label, url in remote:
        if problems[url]:
            grouped.setdefault(tuple(problems[url]), []).append(f"{label} {url}")
    if grouped:
        lines = ["cannot access cloud storage (checked before any work; nothing was read or written):"]
        for found, where in grouped.items():
            lines.append(f"  {', '.join(dict.fromkeys(where))}:")
            for problem, fix in found:
                lines.append(f"    {problem}")
                lines.append(f"      fix: {fix}")
        every = [p for found in grouped for p, _ in found]
        if all(p.startswith(TRANSIENT) for p in every):
            from recovery.storage import StorageUnavailable

            raise StorageUnavailable("\n".join(lines))
        raise UsageError("\n".join(lines))


def check_output_dir(label: str, url: str) -> None:
    """A local output directory must be creatable and writable; probed with a temporary entry, removed at once.

    Remote directories need no parents; their access is checked by check_access.
    """
    path = local_path(url)
    if path is None:
        return
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{label} {url}: {existing} is a file, so no directory can be made there")
    try:
        if existing == path:
            fd, probe = tempfile.mkstemp(prefix=".ckpt-rescue-probe-", dir=path)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".ckpt-rescue-probe-", dir=existing))
    except OSError as exc:
        where = path if existing == path else f"{existing} (to create {path})"
        raise UsageError(f"{label} {url}: cannot write in {where}: {exc.strerror or exc}") from None


def check_output_file(label: str, url: str) -> None:
    """A local output file must not exist yet (nothing is overwritten) and its directory must be writable."""
    path = local_path(url)
    if path is None:
        return
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise UsageError(f"{label} {url} is a directory; give a file name, e.g. {os.path.join(url, 'ckpt.index')}")
    if os.path.lexists(path):
        raise UsageError(f"{label} {url} already exists and is never overwritten; choose another name")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError(f"{label} {url}: no such directory {directory} (it is not created for you)")
    check_output_dir(label, directory)


@dataclasses.dataclass
class TreeSize:
    """What a bounded walk of local roots saw: `over` when it stopped at a limit before the end."""

    files: int
    bytes: int
    over: bool


def local_tree_size(roots: list, max_files: int, max_bytes: int) -> TreeSize | None:
    """Files and bytes under local roots, walking no further than the first limit passed (the file count
    from names alone: a tree too large for one process is found without a stat per file); None for a
    remote root (its listing costs requests, and a bucket is seldom small).

    The audit runs small trees in one process: starting worker processes costs seconds."""
    paths = []
    for root in roots:
        path = local_path(root)
        if path is None:
            return None
        paths.append(path)
    found, todo = [], list(paths)
    while todo:                          # names first: a tree over the file limit is found without a stat
        try:
            entries = os.scandir(todo.pop())
        except OSError:
            continue                     # unreadable: the listing itself will say so
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                        continue
                except OSError:
                    pass
                found.append(entry)
                if len(found) > max_files:
                    return TreeSize(len(found), 0, True)
    seen = TreeSize(0, 0, False)
    for entry in found:                  # then the sizes of a tree under it
        try:
            size = entry.stat().st_size
        except OSError:
            size = 0                     # a dangling link: still a file for the listing
        seen.files += 1
        seen.bytes += size
        if seen.bytes > max_bytes:
            seen.over = True
            return seen
    return seen


def _check_one(url: str, stage: dict) -> list:
    """[(problem, fix)] for one URL; empty when one listing call under it succeeded. `stage` says what is
    being waited for, in case the whole check runs out of time."""
    store = store_for(url)
    missing = [name for name in store.requires if importlib.util.find_spec(name) is None]   # found, not imported
    if missing:
        return [(f"{url.split('://', 1)[0]}:// paths need {', '.join(missing)}, not installed", store.install_hint)]
    return store.probe(url, stage)
