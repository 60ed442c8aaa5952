"""recovery.report.fold: records folded in one process give every run its latest_checkpoint() answer
and the same Overview whatever order the records come in."""

import random

from report_helpers import many_records, sample_records

from recovery.report.fold import Fold


def overview_of(records):
    fold = Fold()
    for record in records:
        fold.add(record)
    return fold.overview()


def test_each_run_gets_the_answer_of_its_state_file():
    runs = {(row["root"], row["directory"]): row for row in overview_of(sample_records()).runs()}
    # /r/a/checkpoint names ckpt-2, rebuilt and staged: not found now, found once promoted
    assert (runs[("/r/a", "/r/a")]["state_latest"], runs[("/r/a", "/r/a")]["resolves_now"],
            runs[("/r/a", "/r/a")]["resolves_after"]) == ("ckpt-2", False, True)
    assert runs[("gs://b/run", "gs://b/run")]["state_latest"] is None        # no state file there


def test_the_order_of_the_records_does_not_matter():
    records = many_records()
    shuffled = list(records)
    random.Random(3).shuffle(shuffled)
    one, other = overview_of(records), overview_of(shuffled)
    assert (one.totals, one.run_count, one.cause_count) == (other.totals, other.run_count, other.cause_count)
    assert (one.runs(), one.causes(), one.rebuilt()) == (other.runs(), other.causes(), other.rebuilt())
    resolved = [row for row in one.runs() if row["state_latest"] is not None]
    answers = {row["resolves_now"] for row in resolved}
    assert answers == {True, False}          # both answers occur, so the order had something to change
