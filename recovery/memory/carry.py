"""Records carried forward from an unchanged directory: the last snapshot's records, said to be
carried ("unchanged since DATE"), nothing of the directory read. A staged rebuild is staged again in
tonight's report directory from the vault's copy of the index it staged (no data read), so its
command and promote.sh still work.
"""

import dataclasses

from .. import storage
from ..records import DELETED, ERROR, IN_PROGRESS, Record, amended, promote_command, replace_command
from ..vault import ORIGIN_REBUILT, SAME_FILES, relation
from ..writeout import stage_index
from .changes import change_fields
from .nightly import Nightly
from .snapshots import Snapshot

UNCHANGED = "directory unchanged since "
KEPT_AS = "staged index kept in the vault as "      # + its vaulted .index


class CannotCarry(Exception):
    """Why an unchanged directory must be read after all."""


def cannot_carry(snapshot: Snapshot | None, digest: str | None, nightly: Nightly) -> str:
    """Why this directory is judged tonight rather than carried ("" when it may be carried)."""
    if nightly.full:
        return "--full"
    if digest is None:
        return "the store gives no identity of its files"
    if snapshot is None:
        return "not judged before"
    head = snapshot.head
    if snapshot.unreadable:
        return _unreadable(snapshot)
    if head.gone or head.digest != digest:
        return f"its listing changed since {head.judged}"
    if head.judged_with != nightly.judged_with:
        return f"judged on {head.judged} by another version or with other options or registry"
    records = [*snapshot.records.values(), *snapshot.verified.values()]     # a covered part holds none of
    #                                                                       these verdicts (carry_form.py)
    if any(r.status in (ERROR, IN_PROGRESS) for r in records):
        return f"a verdict of {head.judged} was not final (error or in-progress)"
    if any(r.status == DELETED and nightly.expired(r.since) for r in records):
        return "a deletion it reported is older than --vault-keep-days"
    return ""


def carried(snapshot: Snapshot, root: str, nightly: Nightly, restage, before: dict,
            covered: frozenset = frozenset()) -> list[Record]:
    """The snapshot's records as tonight's: `carried_from` its date, nothing scanned, a line in `checks`
    that says so, and what changed against `before` (the previous run's records by key_of), each made
    once (a directory carries a hundred). `restage(record) -> Record` stages a staged record's index
    again (CannotCarry if not). The records `covered` (their keys) by a carried form are left out."""
    judged = snapshot.head.judged
    note = unchanged_note(judged)
    out = []
    records = snapshot.current_read() if covered else snapshot.current()
    if snapshot.unreadable:       # a covered part, read only now
        raise CannotCarry(_unreadable(snapshot))
    for key, record in records.items():
        if key in covered:
            continue
        record = as_carried(record, root, judged, note, change_fields(record.status, before.get(key), nightly))
        if needs_staging(record):
            record = restage(record)
        out.append(record)
    return out


def _unreadable(snapshot: Snapshot) -> str:
    return f"its snapshot of {snapshot.head.judged} cannot be read back ({snapshot.unreadable})"


def unchanged_note(judged: str) -> str:
    return f"{UNCHANGED}{judged}: carried forward, nothing of it read this run (--full reads it)"


def as_carried(record: Record, root: str, judged: str, note: str, change: dict) -> Record:
    """One record as a night that carries it reports it (`change`: its change_fields)."""
    checks = tuple(line for line in record.checks if not line.startswith(UNCHANGED))
    return amended(record, root=root, carried_from=judged, bytes_scanned=0, seconds=0.0, checks=(*checks, note),
                   **change)


def needs_staging(record: Record) -> bool:
    """A carried record whose index is staged under a report directory: staged again in tonight's."""
    return bool(record.staged and record.index_path and record.status != DELETED)


def kept_as(record: Record, entry) -> Record:
    """The record of a staged rebuild, naming the vault's copy of its index (what restage finds)."""
    checks = tuple(line for line in record.checks if not line.startswith(KEPT_AS))
    return dataclasses.replace(record, checks=(*checks, f"{KEPT_AS}{entry.index_location} (sha256 "
                                                        f"{entry.index_sha256})"))


def _kept_sha(record: Record) -> str | None:
    for line in record.checks:
        if line.startswith(KEPT_AS) and "(sha256 " in line:
            return line.rsplit("(sha256 ", 1)[1].rstrip(")")
    return None


def _tonight(record: Record, report_dir: str, staged: str) -> str:
    """The record's command for its index staged again at `staged`: a promote command names tonight's
    report directory, any other the new staged path."""
    if not record.command.startswith("ckpt-rescue promote "):
        return record.command.replace(record.index_path, staged)
    if record.command.endswith(" --replace"):
        return replace_command(report_dir, record.prefix)
    return promote_command(report_dir, record.prefix)


def restager(vault, report_dir: str, present):
    """`restage` for carried(): the vault's copy of the index the record staged (named in its checks),
    else the newest `rebuilt` entry of the prefix for its data files as listed now (`present(prefix) ->
    [ShardRecord]`), staged again in `report_dir`."""
    report_fs, report_path = storage.url_to_fs(report_dir)
    shown_report = storage.display(report_fs, report_path)

    def restage(record: Record) -> Record:
        if vault is None:
            raise CannotCarry(f"{record.prefix}: its staged index is not kept anywhere (no --vault)")
        sha = _kept_sha(record)
        if sha is not None:
            named = vault.entry(record.prefix, sha)
            found = [named] if named is not None else []
        else:                       # an older record: the copy is matched by the data files listed now
            now = present(record.prefix)
            found = [entry for entry in vault.entries(record.prefix)
                     if entry.origin == ORIGIN_REBUILT and relation(entry, now).kind == SAME_FILES][:1]
        if not found:
            raise CannotCarry(f"{record.prefix}: the vault holds no copy of the index it staged")
        staged = storage.display(report_fs, stage_index(report_fs, report_path, record.prefix,
                                                        vault.read_index(found[0])))
        return dataclasses.replace(record, index_path=staged, command=_tonight(record, shown_report, staged))

    return restage
