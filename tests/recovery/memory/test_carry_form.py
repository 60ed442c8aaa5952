"""recovery/memory/carry_form.py: which judged records a carried form stands for (only those whose carried
line is the same whatever night carries them), that it reads back as written, and when a carrying night
may use it."""

import dataclasses

import pytest

from recovery.memory.carry import carried, unchanged_note
from recovery.memory.carry_form import form_of, from_bytes, to_bytes, usable
from recovery.memory.nightly import Nightly, PreviousRun
from recovery.memory.snapshots import COVERED_PART, Head, MemoryStore
from recovery.records import CORRUPT, HEALTHY, IN_PROGRESS, REBUILT, Record, inspect_command
from recovery.report.aggregates import Run, Totals
from recovery.report.parts import lines_for

ROOT, RUN = "/data", "/data/run"
JUDGED = "2026-12-05T02:30:00Z"


def _records() -> list:
    def rec(name, status=HEALTHY, **fields):
        return Record(f"{RUN}/{name}", status, "ok", ROOT, directory=RUN, since=JUDGED, change="new", **fields)

    return [rec("ckpt-1", data_bytes=10, mtime=5.0), rec("ckpt-2", data_bytes=20, mtime=6.0),
            rec("checkpoint", kind="state-file", source="ckpt-2"),
            rec("ckpt-3", REBUILT, staged=True, index_path="/rep/rebuilt/ckpt-3.index"),     # staged again
            rec("ckpt-4", CORRUPT, command=inspect_command(f"{RUN}/ckpt-4")),                # sampled, a command
            rec("ckpt-5", IN_PROGRESS),                                                       # not final
            dataclasses.replace(rec("ckpt-6"), since="")]                                     # since unknown


def test_a_form_covers_only_records_carried_alike_every_night_and_reads_back_as_written():
    form = form_of(_records(), ROOT, JUDGED)
    assert sorted(p.rsplit("/", 1)[1] for p, _ in form.covers) == ["checkpoint", "ckpt-1", "ckpt-2"]
    back = from_bytes(to_bytes(form))
    assert (back.covers, back.lines, back.counts, back.claims) == (form.covers, form.lines, form.counts, form.claims)
    assert back.aggregates == form.aggregates and set(back.aggregates) == {("totals",), ("run", ROOT, RUN)}
    assert back.aggregates[("run", ROOT, RUN)].resolves_now is True   # the state file's claim answered among them
    assert isinstance(back.aggregates[("totals",)], Totals) and isinstance(back.aggregates[("run", ROOT, RUN)], Run)
    assert back.counts == {"status_healthy": 3, "kind_checkpoint": 2, "kind_state-file": 1, "bytes_scanned": 0,
                           "records": 3}
    note = unchanged_note(JUDGED)
    nightly = Nightly("r2", 0.0, "/rep2", previous=PreviousRun("r1", "/rep", JUDGED, JUDGED))
    snapshot = _snapshot(_records())
    by_hand = [r for r in carried(snapshot, ROOT, nightly, lambda r: r, snapshot.current())
               if (r.prefix, r.kind) in form.covers]
    assert all(note in r.checks and r.change == "persists" for r in by_hand)
    expected = sorted((pair for r in by_hand for _, pair in lines_for(r)), key=lambda pair: pair[0])
    assert [pair for _, pair in form.part_lines()] == expected


def _snapshot(records):
    from recovery.memory.snapshots import Snapshot

    return Snapshot(Head(RUN, ROOT, "d", JUDGED, "r1", "/rep", len(records)), "/v/m", {(r.prefix, r.kind): r
                                                                                        for r in records})


@pytest.mark.parametrize("damage", [b"", b"{}", b'{"format": "other/1"}\n', b"\xff"])
def test_anything_but_a_form_is_refused(damage):
    with pytest.raises(ValueError):
        from_bytes(damage)
    good = to_bytes(form_of(_records(), ROOT, JUDGED))
    with pytest.raises(ValueError):
        from_bytes(good.rsplit(b"\n", 2)[0] + b"\n")       # a line short of what it covers


def test_a_form_is_used_only_where_it_reports_what_carrying_each_record_would(tmp_path):
    store = MemoryStore(str(tmp_path / "vault"))
    folder = store.folder(RUN, 1_796_500_000.0, "r1")
    form = form_of(_records(), ROOT, JUDGED)
    covered = [r for r in _records() if (r.prefix, r.kind) in form.covers]
    store.write_head(folder, Head(RUN, ROOT, "d", JUDGED, "r1", "/rep", len(_records())))
    store.write_records(folder, [r for r in _records() if (r.prefix, r.kind) not in form.covers])
    store.write_records(folder, covered, COVERED_PART)
    fresh = lambda: MemoryStore(str(tmp_path / "vault"))._newest_complete(RUN, "", None)   # noqa: E731
    assert usable(form, fresh(), ROOT, True, True, False)
    assert not usable(form, fresh(), "/other-root", True, True, False)       # another root names them
    assert not usable(form, fresh(), ROOT, False, True, False)               # compared with another memory
    assert not usable(form, fresh(), ROOT, True, False, False)               # no previous run known
    assert not usable(form, fresh(), ROOT, True, True, True)                 # verifying tonight
    assert not usable(None, fresh(), ROOT, True, True, False)
    read = fresh()
    read.judged()                                                             # its covered part read already
    assert not usable(form, read, ROOT, True, True, False)
    store.write_records(folder, [dataclasses.replace(covered[0], reason="verified")], "verified", when=2e9)
    assert not usable(form, fresh(), ROOT, True, True, False)                # a verification over one of them
