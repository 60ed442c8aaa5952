"""What changed since the previous run, record by record: new, persists (since when), resolved; and
the `deleted` record of what the previous run saw and is gone now.

A record's `since` is when its status was first seen for its prefix; a finding carried night after
night keeps the night it was found. Without a previous run, `change` is "" and `since` is tonight.
"""

import dataclasses

from ..records import DELETED, HEALTHY, IN_PROGRESS, LISTING, NEW, PERSISTS, RESOLVED, Record
from .nightly import Nightly

NOT_FINDINGS = (HEALTHY, IN_PROGRESS)      # a previous status whose end is not "resolved"


def changed(record: Record, previous: Record | None, nightly: Nightly) -> Record:
    """`record` with `change` and `since` against the previous run's record of the same prefix and kind."""
    return dataclasses.replace(record, **change_fields(record.status, previous, nightly))


def change_fields(status: str, previous: Record | None, nightly: Nightly) -> dict:
    """{change, since} of a record of `status` against the previous run's record (see `changed`); apart,
    so a carried record is made once with them (memory/carry.py)."""
    if not nightly.known:
        return {"change": "", "since": nightly.now_iso}
    if previous is None:
        return {"change": NEW, "since": nightly.now_iso}
    if previous.status == status:
        since = previous.since or (nightly.previous.started if nightly.previous else nightly.now_iso)
        return {"change": PERSISTS, "since": since}
    found_gone = status == HEALTHY and previous.status not in NOT_FINDINGS
    return {"change": RESOLVED if found_gone else NEW, "since": nightly.now_iso}


def deletable(previous: Record) -> bool:
    """Does the disappearance of what this record was about deserve a `deleted` record?"""
    return previous.kind != LISTING


def deleted(previous: Record, root: str, nightly: Nightly, kept_until: str = "") -> Record | None:
    """The record of something the previous run saw (`previous`, its record) that is gone now; None
    once it has been reported for longer than --vault-keep-days (its vault entries go then too).
    `kept_until`: when the vault lets go of its indexes, for the reason."""
    if previous.status == DELETED:
        if nightly.expired(previous.since):
            return None
        return dataclasses.replace(previous, root=root, carried_from="")
    seen = nightly.previous.started if nightly.previous else previous.since
    what = {"checkpoint": "checkpoint", "leftover": "leftover", "state-file": "`checkpoint` state file"}.get(
        previous.kind, previous.kind)
    reason = (f"gone: the run of {seen or 'the previous night'} saw this {what} ({previous.status}, "
              f"{previous.data_files} data file(s), {previous.data_bytes} bytes) and none of its files are there now "
              "(deleted by a CheckpointManager keeping its last N, a lifecycle rule, or by mistake)")
    if kept_until:
        reason += f"; the vault keeps its index until {kept_until}"
    return Record(previous.prefix, DELETED, reason, root, previous.kind, previous.directory,
                  checks=(f"last seen {previous.status}: {previous.reason}",),
                  since=nightly.now_iso, change=NEW)
