"""recovery.report.summary: summary.json's counts agree with each other and with the records, every
root and status is present, and the exit code follows docs/running.md (1 wins over 3)."""

import csv

from report_helpers import META, exit_code, sample_records, summarize

from recovery.records import (
    CORRUPT,
    ERROR,
    EXIT_ATTENTION,
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    HEALTHY,
    INCOMPLETE,
    REBUILT,
    STATUSES,
    UNRECOVERABLE,
    Record,
)
from recovery.report.files import write_reports
from recovery.report.summary import exit_code_for, statuses_of


def test_summary_counts_every_status_per_root_and_kind_and_the_exit_code():
    records = sample_records()
    summary = summarize(records, META, 1_700_000_012.5)
    assert summary["counts"] == {**dict.fromkeys(STATUSES, 0), HEALTHY: 3, REBUILT: 1, UNRECOVERABLE: 1, CORRUPT: 1,
                                 INCOMPLETE: 1}
    assert summary["per_root"]["/r/a"] == {"records": 4, "counts": {**dict.fromkeys(STATUSES, 0), HEALTHY: 2,
                                                                     REBUILT: 1, UNRECOVERABLE: 1}}
    assert summary["per_root"]["/r/empty"]["records"] == 0     # a root with nothing in it still shows
    assert summary["kinds"] == {"checkpoint": 5, "leftover": 1, "state-file": 1}
    assert summary["checkpoints"] == 5 and summary["needs_a_person"] == 3
    # counts that agree: each kind's row adds up to its count, each status's column to the status count
    for kind, row in summary["per_kind"].items():
        assert sum(row.values()) == summary["kinds"][kind]
    for status in STATUSES:
        assert sum(row[status] for row in summary["per_kind"].values()) == summary["counts"][status]
    assert summary["per_status"][REBUILT] == {"records": 1, "data_bytes": 100, "bytes_scanned": 100, "seconds": 0.0}
    assert summary["duration_seconds"] == 12.5
    assert summary["data_bytes"] == 207 and summary["bytes_scanned"] == 100 and summary["rebuilt_data_bytes"] == 100
    assert summary["staged_indexes"] == 2 and summary["written_in_place"] == 0
    assert summary["exit_code"] == 1 == exit_code(records)
    assert exit_code([r for r in records if r.status in (HEALTHY, REBUILT)]) == 0
    assert summary["version"] and summary["run_id"] == "r1" and summary["command"] == META["command"]


def test_could_not_check_exits_3_unless_something_needs_a_person(tmp_path):
    fine = [r for r in sample_records() if r.status in (HEALTHY, REBUILT)]
    unchecked = Record("s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing", "s3://b/run")
    assert exit_code(fine + [unchecked]) == 3
    assert exit_code(sample_records() + [unchecked]) == 1        # a finding wins over "could not check"
    write_reports(str(tmp_path / "rep"), fine + [unchecked], META, 1_700_000_001.0)
    rows = list(csv.reader(open(tmp_path / "rep" / "failures.csv", newline="")))
    assert rows[1:] == [["s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing"]]


def test_exit_codes_are_the_named_ones_and_statuses_keep_their_order():
    assert exit_code_for({}) == EXIT_OK
    assert exit_code_for({HEALTHY: 4, ERROR: 1}) == EXIT_COULD_NOT_CHECK
    assert exit_code_for({HEALTHY: 4, ERROR: 1, "stale": 1}) == EXIT_ATTENTION
    assert exit_code_for({HEALTHY: 4, ERROR: 0, UNRECOVERABLE: 0}) == EXIT_OK     # zeros are nothing found
    assert statuses_of({"zz-new": 1, HEALTHY: 2, "aa-new": 1}) == [*STATUSES, "aa-new", "zz-new"]


def test_a_status_from_a_newer_writer_is_counted_and_shown_after_the_known_ones():
    records = sample_records() + [Record("/r/a/ckpt-5", "salvaged", "partly", "/r/a", directory="/r/a")]
    summary = summarize(records, META, 1_700_000_001.0)
    assert list(summary["counts"]) == [*STATUSES, "salvaged"] and summary["counts"]["salvaged"] == 1
    assert summary["per_root"]["/r/a"]["counts"]["salvaged"] == 1
    assert summary["records"] == sum(summary["counts"].values()) == len(records)


def test_symbolic_links_not_followed_are_counted_and_named_the_same_however_merged():
    """Listing records with a `source` are links to directories outside their root: summary.json counts
    them and names the first NOT_FOLLOWED_SHOWN, in order, whether one process or many workers added them."""
    from recovery.report.aggregates import NOT_FOLLOWED_SHOWN, Totals

    links = [Record(f"/r/run-{i:02d}/latest", HEALTHY, "not followed", "/r", kind="listing", source=f"/data/run-{i}")
             for i in range(NOT_FOLLOWED_SHOWN + 5)]
    noted = Record("/r/run-00/alias", HEALTHY, "its target lies inside this root", "/r", kind="listing")
    whole = summarize(list(reversed(links)) + [noted], META, 1_700_000_012.5)
    assert whole["not_followed"]["count"] == NOT_FOLLOWED_SHOWN + 5
    shown = [f"/r/run-{i:02d}/latest -> /data/run-{i}" for i in range(NOT_FOLLOWED_SHOWN)]
    assert whole["not_followed"]["where"] == shown
    halves = [Totals(), Totals()]
    for i, record in enumerate(links + [noted]):
        halves[i % 2].add(record)
    merged = halves[0].merge([halves[1]])
    assert (merged.not_followed, merged.not_followed_where) == (whole["not_followed"]["count"],
                                                                whole["not_followed"]["where"])
    assert summarize(sample_records(), META, 1.0)["not_followed"] == {"count": 0, "where": []}
