"""Does tf.train.latest_checkpoint() resolve, per run directory: the join of each `checkpoint` state
file's claim (the prefix it names as latest) with that checkpoint's own record.

The join is by prefix, and its items are small: a state file contributes its claim, a checkpoint its
verdict. `resolved_runs` turns each joined prefix into a Run aggregate carrying the answer, which
merges into the run's other counts (aggregates.Run.merge).
"""

import posixpath
from typing import NamedTuple

from ..records import CHECKPOINT, HEALTHY, REBUILT, STATE_FILE
from .aggregates import Run, run_key


class StateFileClaim(NamedTuple):
    """A `checkpoint` state file's claim, joined by the prefix it names as latest: its run and how it
    names it."""

    root: str
    directory: str
    name: str


class CheckpointState(NamedTuple):
    """A checkpoint's side of that join: its verdict, and whether its index is only staged."""

    status: str
    staged: bool


def join_items(record) -> list:
    """(prefix, StateFileClaim | CheckpointState) pairs that join a state file's latest name with that
    checkpoint's record. Small items: a local runner buffers one per checkpoint."""
    if record.kind == CHECKPOINT:
        return [(record.prefix, CheckpointState(record.status, bool(record.staged)))]
    return state_claims(record)


def state_claims(record) -> list:
    """join_items' claims alone: (prefix, StateFileClaim) for a state file that names a checkpoint."""
    target = state_target(record)
    return [] if target is None else [(target, StateFileClaim(*run_key(record), record.source))]


def state_target(record) -> str | None:
    """The prefix a `checkpoint` state file names as latest (what tf.train.latest_checkpoint() looks for)."""
    name = record.source
    if record.kind != STATE_FILE or not name:
        return None
    if "://" in name or name.startswith("/"):
        return name
    return posixpath.join(record.directory or posixpath.dirname(record.prefix), name)


def latest_resolution(state_name: str, targets: list) -> Run:
    """Whether latest_checkpoint() returns the named checkpoint now, and after promote.sh ran, given
    the CheckpointStates of that prefix (none when it has no record).

    TensorFlow returns the named prefix only when its index exists: a healthy checkpoint or one
    rebuilt in place resolves now; a staged rebuild resolves once promoted.
    """
    now = any(t.status == HEALTHY or (t.status == REBUILT and not t.staged) for t in targets)
    after = now or any(t.status == REBUILT and t.staged for t in targets)
    return Run(state_latest=state_name, resolves_now=now, resolves_after=after)


def resolved_within(batch, claims=()) -> tuple[list, list]:
    """A batch holding every record of its directories (classification's): (run key, Run) for each claim
    whose checkpoint is among them, answered here, and the other claims, (prefix, StateFileClaim), for
    the join. A prefix's records all come from its directory's classification, so none is elsewhere;
    a claim naming another directory's checkpoint, or one sent to be rebuilt or checked, is joined.
    `claims`: more of the directory's claims, (prefix, StateFileClaim) (a carried form's)."""
    states = {}
    for record in batch:
        if record.kind == CHECKPOINT:
            states.setdefault(record.prefix, []).append(CheckpointState(record.status, bool(record.staged)))
    resolved, joined = [], []
    for target, claim in [*(claim for record in batch for claim in state_claims(record)), *claims]:
        if target in states:
            resolved.append(((claim.root, claim.directory), latest_resolution(claim.name, states[target])))
        else:
            joined.append((target, claim))
    return resolved, joined


def resolved_runs(joined) -> list:
    """From prefix -> [join items] (or the groups alone): (run key, Run carrying the
    latest_checkpoint() verdicts) for every claim."""
    out = []
    for items in joined.values() if isinstance(joined, dict) else joined:
        items = list(items)      # a few per prefix: the checkpoint and the state files naming it
        targets = [i for i in items if isinstance(i, CheckpointState)]
        for claim in (i for i in items if isinstance(i, StateFileClaim)):
            out.append(((claim.root, claim.directory), latest_resolution(claim.name, targets)))
    return out
