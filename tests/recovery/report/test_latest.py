"""recovery.report.latest: what tf.train.latest_checkpoint() returns for a run, now and after promote.sh,
from the join of each `checkpoint` state file's claim with the named checkpoint's record."""

import pytest

from recovery.records import CORRUPT, HEALTHY, REBUILT, UNRECOVERABLE, Record
from recovery.report.latest import (
    CheckpointState,
    StateFileClaim,
    join_items,
    latest_resolution,
    resolved_runs,
    state_claims,
    state_target,
)


def state_file(source: str, directory: str = "/r/a") -> Record:
    return Record(f"{directory}/checkpoint", HEALTHY, "", "/r", kind="state-file", directory=directory, source=source)


def test_the_named_prefix_is_where_tensorflow_looks():
    assert state_target(state_file("ckpt-2")) == "/r/a/ckpt-2"
    assert state_target(state_file("/elsewhere/ckpt-2")) == "/elsewhere/ckpt-2"
    assert state_target(state_file("gs://b/run/ckpt-2", "gs://b/run")) == "gs://b/run/ckpt-2"
    assert state_target(Record("gs://b/x/checkpoint", HEALTHY, "", "gs://b", kind="state-file", source="c-1")) == \
        "gs://b/x/c-1"                                     # no directory recorded: the state file's own
    assert state_target(state_file("")) is None            # names nothing
    assert state_target(Record("/r/a/ckpt-2", HEALTHY, "", "/r", directory="/r/a", source="sibling")) is None


@pytest.mark.parametrize("states,now,after", [
    ([CheckpointState(HEALTHY, False)], True, True),
    ([CheckpointState(REBUILT, False)], True, True),       # written in place: its index is there
    ([CheckpointState(REBUILT, True)], False, True),       # staged: there once promote.sh ran
    ([CheckpointState(CORRUPT, True)], False, False),      # an unreadable index stays until a person acts
    ([CheckpointState(UNRECOVERABLE, False)], False, False),
    ([], False, False),                                    # the named checkpoint is not there at all
], ids=["healthy", "rebuilt-in-place", "staged", "corrupt", "unrecoverable", "missing"])
def test_latest_checkpoint_resolves_now_and_after_promotion(states, now, after):
    run = latest_resolution("ckpt-2", states)
    assert (run.state_latest, run.resolves_now, run.resolves_after) == ("ckpt-2", now, after)
    assert run.checkpoints == 0 and not run.counts          # it carries the answer only, no counts


def test_the_join_pairs_each_claim_with_its_checkpoint_by_prefix():
    records = [state_file("ckpt-2"), state_file("ckpt-7", "/r/b"),
               Record("/r/a/ckpt-2", REBUILT, "", "/r", directory="/r/a", staged=True),
               Record("/r/a/ckpt-1", HEALTHY, "", "/r", directory="/r/a"),
               Record("/r/a/leftover_temp/part-0", HEALTHY, "", "/r", directory="/r/a", kind="leftover")]
    assert state_claims(records[0]) == [("/r/a/ckpt-2", StateFileClaim("/r", "/r/a", "ckpt-2"))]
    assert state_claims(records[2]) == [] and join_items(records[4]) == []
    joined = {}
    for record in records:
        for prefix, item in join_items(record):
            joined.setdefault(prefix, []).append(item)
    resolved = dict(resolved_runs(joined))
    assert set(resolved) == {("/r", "/r/a"), ("/r", "/r/b")}
    assert (resolved[("/r", "/r/a")].resolves_now, resolved[("/r", "/r/a")].resolves_after) == (False, True)
    assert (resolved[("/r", "/r/b")].resolves_now, resolved[("/r", "/r/b")].resolves_after) == (False, False)
    assert resolved_runs(joined.values()) == resolved_runs(joined)     # the groups alone, as Beam gives them
