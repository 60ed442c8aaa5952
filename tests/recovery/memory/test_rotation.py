"""recovery/memory/rotation.py: --verify-share 1/N reads every checkpoint at least once in any N
consecutive runs, whatever the nights skipped, and a record says when it was last verified."""

import dataclasses

from recovery.memory.rotation import VERIFIED, due, not_due_note, stamped, verified_on, without_verification_notes
from recovery.records import HEALTHY, Record

PREFIXES = [f"gs://b/run-{d}/ckpt-{s}" for d in range(7) for s in range(1, 40)]


def test_every_prefix_comes_round_within_n_runs_from_any_round():
    for share in (1, 3, 7):
        for start in (0, 5, 11):
            seen = {p for r in range(start, start + share) for p in PREFIXES if due(p, share, r)}
            assert seen == set(PREFIXES)
    assert all(due(p, None, 3) for p in PREFIXES)       # no share: every one, every run
    tonight = [p for p in PREFIXES if due(p, 7, 4)]
    assert 0 < len(tonight) < len(PREFIXES) / 3         # a share, not everything


def test_a_record_says_when_it_was_verified_and_when_it_will_be():
    record = Record("/r/ckpt-1", HEALTHY, "ok", "/r", checks=("index readable", VERIFIED + ")"))
    verified = stamped(record, "2026-12-05T02:30:00Z")
    assert verified_on(verified) == "2026-12-05T02:30:00Z"
    later = not_due_note(dataclasses.replace(verified, checks=("index readable",)), verified, 7, 1)
    assert verified_on(later) == "2026-12-05T02:30:00Z" and "--verify-share 1/7" in later.checks[-1]
    never = not_due_note(Record("/r/ckpt-2", HEALTHY, "ok", "/r"), None, 7, 1)
    assert verified_on(never) is None and "not verified by --verify-data yet" in never.checks[-1]
    assert without_verification_notes(later).checks == ("index readable",)
