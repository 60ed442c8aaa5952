"""recovery.report.aggregates: each aggregate made from parts of the records and merged equals the one
made from all of them in one pass (what lets Beam's combiners and write_reports agree), merging never
changes the aggregates merged in, they survive pickling (Beam encodes accumulators between stages),
and what the page shows is bounded and the right part."""

import copy
import pickle
import random

from report_helpers import many_records, sample_records

from recovery.records import CORRUPT, ERROR, HEALTHY, REBUILT, UNRECOVERABLE, Record
from recovery.report.aggregates import (
    CAUSE,
    CHANGE,
    HTML_CAUSES,
    HTML_REBUILT,
    HTML_RUNS,
    HTML_SAMPLES_PER_CAUSE,
    KINDS,
    LARGEST,
    RUN,
    TOTALS,
    Cause,
    Largest,
    Overview,
    Run,
    cause_of,
    keys_of,
    rebuilt_rank,
    run_key,
)
from recovery.report.schema import sort_key


def one_pass(records) -> dict:
    aggregates = {}
    for record in records:
        for key in keys_of(record):
            aggregates.setdefault(key, KINDS[key[0]]()).add(record)
    return aggregates


def in_chunks(records, chunks: int, seed: int) -> list:
    """The records dealt at random into `chunks` lists, each in a shuffled order."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    return [shuffled[i::chunks] for i in range(chunks)]


def comparable(key, aggregate):
    """What of an aggregate the report uses: the whole of Totals and Run; a cause's or change group's row;
    the largest rows."""
    if key[0] in (CAUSE, CHANGE):
        return aggregate.row(key[1])
    if key[0] == LARGEST:
        return aggregate.rows()
    return aggregate


def test_aggregates_merged_from_parts_equal_one_pass_over_every_record():
    records = many_records()           # seconds are quarters: their sums are exact in any order
    whole = one_pass(records)
    assert {key[0] for key in whole} == set(KINDS)
    for seed in range(3):
        parts = [one_pass(chunk) for chunk in in_chunks(records, 4, seed)]
        for key, aggregate in whole.items():
            found = [part[key] for part in parts if key in part]
            merged = KINDS[key[0]]().merge(found)
            assert comparable(key, merged) == comparable(key, aggregate), key
            pairwise = found[0].merge(found[1:]) if len(found) > 1 else found[0]    # Beam's way: into the first
            assert comparable(key, pairwise) == comparable(key, aggregate), key


def test_merging_changes_only_the_aggregate_merged_into():
    """Beam may hand the same accumulator to more than one merge: only the first may change."""
    parts = [one_pass(chunk) for chunk in in_chunks(many_records(600), 3, seed=7)]
    for key in parts[0]:
        others = [part[key] for part in parts[1:] if key in part]
        before = copy.deepcopy(others)
        KINDS[key[0]]().merge(others)
        parts[0][key].merge(others)
        assert others == before, key


def test_aggregates_survive_pickling():
    for key, aggregate in one_pass(many_records(600)).items():
        assert pickle.loads(pickle.dumps(aggregate)) == aggregate, key


def test_which_aggregates_a_record_counts_in():
    healthy, rebuilt, unrecoverable, corrupt = (sample_records()[i] for i in (0, 1, 2, 4))
    unchecked = Record("s3://b/run/ckpt-3", ERROR, "could not check: storage kept failing", "s3://b/run")
    assert keys_of(healthy) == [(TOTALS,), (RUN, "/r/a", "/r/a")]
    assert keys_of(rebuilt) == [(TOTALS,), (RUN, "/r/a", "/r/a"), (LARGEST,)]
    assert keys_of(unrecoverable)[2] == (CAUSE, "unrecoverable: no source fits: … & more")
    assert keys_of(corrupt)[2] == (CAUSE, "corrupt: index unreadable: bad magic")
    # `error` is no finding, but the page lists it as what to run again, grouped like the findings
    assert keys_of(unchecked) == [(TOTALS,), (RUN, "s3://b/run", "s3://b/run"),
                                  (CAUSE, "error: could not check: storage kept failing")]
    assert run_key(unchecked) == ("s3://b/run", "s3://b/run")        # no directory: the root is the run


def test_like_refusals_share_a_cause_and_particulars_are_taken_out():
    def cause(reason, status=UNRECOVERABLE):
        return cause_of(Record("/r/x", status, reason, "/r"))

    assert cause("no source fits: shard 3 has 21 bytes") == cause("no source fits: shard 9 has 6 bytes")
    assert cause("sibling /r/a/ckpt-1 has 12 tensors; the data 13") == "unrecoverable: sibling … has N tensors"
    # one cause, one row: the checkpoint named (by path or by name) is a particular too
    assert cause("its latest checkpoint /r/a/model.ckpt-200 has no index") == \
        cause("its latest checkpoint ckpt-1 has no index") == "unrecoverable: its latest checkpoint … has no index"
    assert cause("no source fits: sibling ckpt-2: short") != cause("no source fits: registered `n`: no graph")
    assert cause("shard 0 short", CORRUPT) != cause("shard 0 short")
    assert cause("") == "unrecoverable: (no reason given)"
    long = cause("word " * 60)
    assert len(long) < len("unrecoverable: ") + 170 and long.endswith(" …") and "wor …" not in long


def test_a_cause_keeps_the_first_records_in_file_order_and_never_holds_many():
    records = [Record(f"/r/run/ckpt-{i:03d}", UNRECOVERABLE, f"no source fits: {i}", "/r", directory="/r/run")
               for i in range(300)]
    cause = Cause()
    for record in reversed(records):
        cause.add(record)
        assert len(cause.samples) <= 2 * HTML_SAMPLES_PER_CAUSE
    row = cause.row(cause_of(records[0]))
    assert row["count"] == 300 and row["status"] == UNRECOVERABLE
    assert [s["prefix"] for s in row["samples"]] == [r.prefix for r in sorted(records, key=sort_key)][:20]


def test_the_largest_rebuilds_are_kept_and_no_more():
    records = [Record(f"/r/ckpt-{i}", REBUILT, "rebuilt", "/r", data_bytes=(i * 7919) % 1000, staged=True,
                      index_path=f"/rep/{i}.index") for i in range(3 * HTML_REBUILT)]
    largest = Largest()
    for record in records:
        largest.add(record)
        assert len(largest.kept) <= 2 * HTML_REBUILT
    expected = sorted(records, key=lambda r: (r.data_bytes, r.prefix), reverse=True)[:HTML_REBUILT]
    assert [row["prefix"] for row in largest.rows()] == [r.prefix for r in expected]
    assert largest.rows() == sorted(largest.rows(), key=rebuilt_rank, reverse=True)


def test_a_run_knows_its_latest_step_newest_file_and_kinds_in_any_order():
    records = [Record("/r/a/ckpt-9", HEALTHY, "", "/r", directory="/r/a", mtime=50.0),
               Record("/r/a/ckpt-10", REBUILT, "", "/r", directory="/r/a", staged=True, data_bytes=5, mtime=40.0),
               Record("/r/a/ckpt-10_temp/part-00000-of-00001", HEALTHY, "", "/r", directory="/r/a", kind="leftover"),
               Record("/r/a/checkpoint", HEALTHY, "", "/r", directory="/r/a", kind="state-file", source="ckpt-10"),
               Record("/r/a/model", UNRECOVERABLE, "no source fits", "/r", directory="/r/a", data_bytes=7)]
    rows = []
    for order in (records, records[::-1]):
        run = Run()
        for record in order:
            run.add(record)
        row = run.row(("/r", "/r/a"))
        assert (row["latest_step"], row["latest_prefix"], row["latest_status"]) == (10, "/r/a/ckpt-10", REBUILT)
        assert (row["checkpoints"], row["leftovers"], row["state_files"], row["needs_a_person"]) == (3, 1, 1, 1)
        assert row["newest_mtime"] == 50.0 and row["data_bytes"] == 12 and row["rebuilt_data_bytes"] == 5
        assert row["state_latest"] is None      # only the latest_checkpoint() join says
        rows.append(row)
    assert rows[0] == rows[1]
    resolved = Run(state_latest="ckpt-10", resolves_now=False, resolves_after=True)
    for merged in (Run().merge([run, resolved]), Run().merge([resolved, run])):
        assert (merged.state_latest, merged.resolves_now, merged.resolves_after) == ("ckpt-10", False, True)
        assert merged.checkpoints == 3


def test_the_overview_shows_the_runs_and_causes_a_person_needs_first_and_counts_all():
    records = many_records()
    aggregates = one_pass(records)
    whole = Overview()
    for keyed in aggregates.items():
        whole.add(keyed)
    runs = {key for key in aggregates if key[0] == RUN}
    assert whole.run_count == len(runs) > HTML_RUNS and len(whole.runs()) == HTML_RUNS
    needing = [key for key in runs if aggregates[key].needs_a_person]
    shown = {(row["root"], row["directory"]) for row in whole.runs()}
    assert {key[1:] for key in needing} <= shown      # fewer than HTML_RUNS need a person: all are shown
    causes = [aggregates[key].row(key[1]) for key in aggregates if key[0] == CAUSE]
    assert whole.cause_count == len(causes) > HTML_CAUSES and len(whole.causes()) == HTML_CAUSES
    assert [c["count"] for c in whole.causes()] == sorted((c["count"] for c in causes), reverse=True)[:HTML_CAUSES]
    assert whole.totals == aggregates[(TOTALS,)] and len(whole.rebuilt()) == HTML_REBUILT
    # an overview made of halves, merged, is the same
    items = list(aggregates.items())
    random.Random(1).shuffle(items)
    halves = [Overview(), Overview()]
    for i, keyed in enumerate(items):
        halves[i % 2].add(keyed)
    merged = Overview().merge(halves)
    assert (merged.totals, merged.run_count, merged.cause_count) == (whole.totals, whole.run_count, whole.cause_count)
    assert (merged.runs(), merged.causes(), merged.rebuilt()) == (whole.runs(), whole.causes(), whole.rebuilt())


def test_an_aggregate_of_a_kind_made_elsewhere_is_merged_into_the_overview_by_its_own_merge():
    """A nightly run's counts of directories come to the overview keyed ("night",) beside the records'
    aggregates: summed however they were split, in any order, and what was added is left as it was."""
    from recovery.memory.nightly import NightCounts

    counts = [NightCounts(listed=1, carried=1), NightCounts(listed=1, judged=1, kept=2, kept_bytes=300),
              NightCounts(gone=1)]
    whole = Overview()
    for each in counts:
        whole.add((("night",), each))
    halves = [Overview().add((("night",), counts[0])), Overview().add((("night",), counts[2]))
              .add((("night",), counts[1]))]
    merged = Overview().merge(halves)
    expected = NightCounts(listed=2, carried=1, judged=1, gone=1, kept=2, kept_bytes=300)
    assert whole.others == {"night": expected} and merged.others == {"night": expected}
    assert counts[0] == NightCounts(listed=1, carried=1) and pickle.loads(pickle.dumps(whole)).others == whole.others
    assert Overview().others == {} and whole.totals == Overview().totals      # nothing else counted
