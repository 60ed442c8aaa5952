"""recovery/memory/changes.py: new, persists (since when), resolved against the previous run's record,
and the `deleted` record of what is gone, until reported longer than --vault-keep-days."""

from recovery.memory.changes import changed, deleted
from recovery.memory.nightly import DAY, Nightly, PreviousRun, iso
from recovery.records import CORRUPT, DELETED, HEALTHY, IN_PROGRESS, NEW, PERSISTS, REBUILT, RESOLVED, Record

NOW = 1_796_500_000.0
PREVIOUS = PreviousRun("r0", "/rep/0", iso(NOW - DAY), iso(NOW - DAY + 60))


def nightly(previous=PREVIOUS, keep_days=30.0) -> Nightly:
    return Nightly("r1", NOW, "/rep/1", previous=previous, keep_days=keep_days)


def record(status: str, since: str = "") -> Record:
    return Record("/r/run/ckpt-1", status, "why", "/r", directory="/r/run", since=since, data_files=1, data_bytes=9)


def test_each_change_and_its_since():
    night, found = nightly(), iso(NOW - 5 * DAY)
    first = changed(record(HEALTHY), None, night)
    assert (first.change, first.since) == (NEW, iso(NOW))
    same = changed(record(CORRUPT), record(CORRUPT, since=found), night)
    assert (same.change, same.since) == (PERSISTS, found)                # found five nights ago, still so
    fixed = changed(record(HEALTHY), record(CORRUPT, since=found), night)
    assert (fixed.change, fixed.since) == (RESOLVED, iso(NOW))
    worse = changed(record(CORRUPT), record(HEALTHY, since=found), night)
    assert (worse.change, worse.since) == (NEW, iso(NOW))
    assert changed(record(HEALTHY), record(IN_PROGRESS), night).change == NEW        # deferred was no finding
    assert changed(record(HEALTHY), record(REBUILT), night).change == RESOLVED       # promoted since
    older = changed(record(CORRUPT), record(CORRUPT, since=""), night)               # a report of an older version
    assert older.since == PREVIOUS.started


def test_without_a_previous_run_nothing_is_new_and_since_is_tonight():
    first = changed(record(CORRUPT), None, nightly(previous=None))
    assert (first.change, first.since) == ("", iso(NOW))


def test_what_is_gone_is_deleted_until_reported_longer_than_keep_days():
    night = nightly(keep_days=2)
    gone = deleted(record(HEALTHY), "/r", night, kept_until="2026-12-09T02:30:00Z")
    assert gone.status == DELETED and gone.kind == "checkpoint" and gone.data_bytes == 0
    assert "gone" in gone.reason and "healthy, 1 data file(s), 9 bytes" in gone.reason
    assert "the vault keeps its index until 2026-12-09T02:30:00Z" in gone.reason
    again = changed(gone, record(HEALTHY), night)
    assert (again.change, again.since) == (NEW, iso(NOW))
    yesterday = record(DELETED, since=iso(NOW - DAY))
    still = deleted(yesterday, "/r", night)
    assert still.status == DELETED and changed(still, yesterday, night).since == iso(NOW - DAY)
    assert deleted(record(DELETED, since=iso(NOW - 3 * DAY)), "/r", night) is None   # longer than 2 days: done
