"""recovery/memory/snapshots.py: a directory's snapshot is read back as written, only when complete;
the newest complete one is what it was when last judged; superseded ones go after keep-days."""

import pytest

from recovery.memory.nightly import DAY, iso
from recovery.memory.snapshots import Head, MemoryStore
from recovery.records import HEALTHY, REBUILT, Record

NOW = 1_796_500_000.0
DIRECTORY = "/data/run"


def head(when: float, run: str, records: int, digest: str = "d1") -> Head:
    return Head(DIRECTORY, "/data", digest, iso(when), run, "/rep", records, "with", (("ckpt-1.index", 5, "i"),))


def records(status: str = HEALTHY) -> list:
    return [Record(f"{DIRECTORY}/ckpt-{i}", status, "ok", "/data", directory=DIRECTORY) for i in (1, 2)]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_the_newest_complete_snapshot_is_read_back_as_written(where, tmp_path):
    store = MemoryStore(str(tmp_path / "vault") if where == "local" else f"memory://snap-{tmp_path.name}")
    old = store.folder(DIRECTORY, NOW - DAY, "r0")
    store.write_head(old, head(NOW - DAY, "r0", 2))
    store.write_records(old, records())
    new = store.folder(DIRECTORY, NOW, "r1")                  # a run that stopped before its rebuilds reported
    store.write_head(new, head(NOW, "r1", 3, digest="d2"))
    store.write_records(new, records(REBUILT))
    found = store.latest(DIRECTORY)
    assert found.head == head(NOW - DAY, "r0", 2) and found.complete
    assert sorted(r.prefix for r in found.current().values()) == [f"{DIRECTORY}/ckpt-1", f"{DIRECTORY}/ckpt-2"]
    assert store.latest(DIRECTORY, leave_out_run="r0") is None
    store.write_records(new, [Record(f"{DIRECTORY}/ckpt-3", HEALTHY, "ok", "/data", directory=DIRECTORY)])
    assert store.latest(DIRECTORY, leave_out_run="x").head.run_id == "r1"     # complete now (a new look)
    verified = Record(f"{DIRECTORY}/ckpt-1", "corrupt", "bit rot", "/data", directory=DIRECTORY)
    store.write_records(new, [verified], "verified", when=NOW + DAY)
    assert store.latest(DIRECTORY, leave_out_run="y").current()[(verified.prefix, "checkpoint")] == verified
    assert store.named(DIRECTORY, iso(NOW)) == new


def test_superseded_snapshots_go_after_keep_days_never_the_one_kept(tmp_path):
    store = MemoryStore(str(tmp_path / "vault"))
    folders = []
    for days, run in ((40, "a"), (35, "b"), (1, "c")):
        folder = store.folder(DIRECTORY, NOW - days * DAY, run)
        store.write_head(folder, head(NOW - days * DAY, run, 2))
        store.write_records(folder, records())
        folders.append(folder)
    assert store.drop_older(DIRECTORY, folders[1], NOW - 30 * DAY) == 1     # "a": older, superseded
    assert sorted(store.folders(DIRECTORY)) == sorted(f.rsplit("/", 1)[1] for f in folders[1:])
    store.drop_directory(DIRECTORY)
    assert store.folders(DIRECTORY) == {}


def test_records_with_names_that_are_not_utf8_or_ascii_read_back_as_written(tmp_path):
    """A snapshot's lines are orjson's, but a name read as a lone surrogate (bytes that are not UTF-8)
    is written escaped by json and read back by json; a name in another script stays itself."""
    store = MemoryStore(str(tmp_path / "vault"))
    written = [Record(f"{DIRECTORY}/\udcf3ckpt-1", HEALTHY, "ok \udcf3", "/data", directory=DIRECTORY,
                      checks=("spot check: 名前/kernel",)),
               Record(f"{DIRECTORY}/模型-2", HEALTHY, "ok", "/data", directory=DIRECTORY, evidence={"confirmed": 3})]
    folder = store.folder(DIRECTORY, NOW, "r0")
    store.write_head(folder, head(NOW, "r0", 2))
    store.write_records(folder, written)
    found = store.latest(DIRECTORY)
    assert found.complete and sorted(found.current().values(), key=lambda r: r.prefix) == sorted(
        written, key=lambda r: r.prefix)


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"format": "other/1"}', b"\xff\xfe{}", b"[1, 2]",
                                    b'{"format": "ckpt-rescue-memory/1", "directory": "/data/run", "files": [[1',
                                    b'{"format": "ckpt-rescue-memory/1", "directory": "/data/run"}',
                                    b'{"format": "ckpt-rescue-memory/1", "files": 7}'])
def test_a_damaged_head_is_no_snapshot_and_the_one_before_it_is_used(damage, tmp_path):
    """A head that is not a snapshot's (cut short, not JSON, another format, bytes that are not UTF-8):
    its snapshot is passed over, never a crash; a head in a name that is not UTF-8 reads back."""
    store = MemoryStore(str(tmp_path / "vault"))
    older = store.folder(DIRECTORY, NOW - DAY, "r0")
    store.write_head(older, head(NOW - DAY, "r0", 2))
    store.write_records(older, records())
    newer = store.folder(DIRECTORY, NOW, "r1")
    store.write_records(newer, records())
    (tmp_path / "vault" / newer.split("/vault/", 1)[1] / "head.json").write_bytes(damage)
    assert store.latest(DIRECTORY).head == head(NOW - DAY, "r0", 2)
    odd = Head("/data/r\udcf3n", "/data", "d1", iso(NOW), "r2", "/rep", 0, "with", (("ckpt-\udcf3.index", 5, "i"),))
    assert Head.from_json(odd.to_json()) == odd


def test_record_parts_read_back_whatever_gzip_and_line_layout_they_come_in(tmp_path):
    """A part as this module writes it (one gzip member, a record a line) is read in one pass; one of
    concatenated gzip members, or with blank lines and no final line break, reads back the same; a part
    cut short or whose line is not JSON still fails, as before, rather than giving fewer records."""
    import gzip

    from recovery.memory.snapshots import gunzipped, parse_jsonl
    from recovery.report.schema import record_line

    written = records() + [Record(f"{DIRECTORY}/ckpt-{i}", REBUILT, "rebuilt", "/data", directory=DIRECTORY)
                           for i in (3, 4)]
    text = "".join(record_line(r) for r in written).encode()
    lines = text.splitlines(keepends=True)
    assert gunzipped(gzip.compress(text, mtime=0)) == text
    assert gunzipped(gzip.compress(b"".join(lines[:2])) + gzip.compress(b"".join(lines[2:]))) == text
    expected = [__import__("json").loads(line) for line in lines]
    assert parse_jsonl(text) == expected
    assert parse_jsonl(b"\n".join(line.rstrip(b"\n") for line in lines)) == expected      # no final break
    assert parse_jsonl(b"\n" + b"\n\n".join(lines) + b"  \n") == expected                 # blank lines
    assert parse_jsonl(b"") == [] and parse_jsonl(b"\n") == []
    with pytest.raises((EOFError, OSError)):
        gunzipped(gzip.compress(text)[:-12])         # cut short
    with pytest.raises(ValueError):
        parse_jsonl(text + b'{"prefix": "/data/run/ckpt-3", "status\n')

    store = MemoryStore(str(tmp_path / "vault"))
    folder = store.folder(DIRECTORY, NOW, "r0")
    store.write_head(folder, head(NOW, "r0", len(written)))
    store.write_records(folder, written[:2])
    part = tmp_path / "vault" / folder.split("/vault/", 1)[1] / "records-concatenated.jsonl.gz"
    part.write_bytes(gzip.compress(b"".join(lines[2:3])) + gzip.compress(b"".join(lines[3:]) + b"\n"))
    assert sorted(store.latest(DIRECTORY).records.values(), key=lambda r: r.prefix) == written


def test_a_covered_part_is_read_only_when_asked_for(tmp_path):
    """A covered part (the records a carried form stands for) counts toward a complete snapshot by the
    number its name carries, unread; current() reads it; current_read() does not. A covered part whose
    name says no number is read at once, as any records part."""
    from recovery.memory.snapshots import COVERED_PART

    store = MemoryStore(str(tmp_path / "vault"))
    folder = store.folder(DIRECTORY, NOW, "r0")
    covered = [Record(f"{DIRECTORY}/ckpt-{i}", HEALTHY, "ok", "/data", directory=DIRECTORY, since="s")
               for i in (3, 4, 5)]
    store.write_head(folder, head(NOW, "r0", 5))
    store.write_records(folder, records())
    path = store.write_records(folder, covered, COVERED_PART)
    assert path.split("/")[-1].startswith(f"{COVERED_PART}-3-")
    snapshot = store.latest(DIRECTORY)
    assert snapshot.complete and len(snapshot.pending) == 1 and len(snapshot.records) == 2
    assert sorted(snapshot.current_read()) == sorted((r.prefix, r.kind) for r in records())
    assert sorted(snapshot.current()) == sorted((r.prefix, r.kind) for r in records() + covered)
    assert snapshot.pending == [] and len(snapshot.records) == 5

    unnumbered = store.folder(DIRECTORY, NOW + 1, "r1")
    store.write_head(unnumbered, head(NOW + 1, "r1", 5))
    store.write_records(unnumbered, records())
    (tmp_path / "vault" / path.split("/vault/", 1)[1]).rename(
        tmp_path / "vault" / unnumbered.split("/vault/", 1)[1] / "covered-abc.jsonl.gz")
    again = MemoryStore(str(tmp_path / "vault"))._newest_complete(DIRECTORY, "", None)
    assert again.head.run_id == "r1" and again.pending == [] and len(again.records) == 5


@pytest.mark.parametrize("part", ["records", "covered"])
def test_a_part_that_cannot_be_read_back_makes_its_snapshot_unreadable_never_an_error(part, tmp_path):
    """Cut short: the snapshot is still the newest (it says why its directory is judged afresh), it is
    never carried, and what could be read is what a night compares with. An intact one is none of that."""
    from recovery.memory.carry import cannot_carry
    from recovery.memory.nightly import Nightly
    from recovery.memory.snapshots import COVERED_PART, RECORDS_PART

    store = MemoryStore(str(tmp_path / "vault"))
    older = store.folder(DIRECTORY, NOW - DAY, "r0")
    store.write_head(older, head(NOW - DAY, "r0", 2))
    store.write_records(older, records())
    folder = store.folder(DIRECTORY, NOW, "r1")
    store.write_head(folder, head(NOW, "r1", 4))
    kept = [Record(f"{DIRECTORY}/ckpt-{i}", HEALTHY, "ok", "/data", directory=DIRECTORY, since="s") for i in (3, 4)]
    store.write_records(folder, kept)
    damaged = store.write_records(folder, records(), COVERED_PART if part == "covered" else RECORDS_PART)
    tonight = Nightly("r2", NOW + DAY, "/rep2", vault=str(tmp_path / "vault"), judged_with="with")

    intact = MemoryStore(str(tmp_path / "vault"))._newest_complete(DIRECTORY, "", None)
    assert not intact.unreadable and len(intact.current()) == 4 and cannot_carry(intact, "d1", tonight) == ""

    local = tmp_path / "vault" / damaged.split("/vault/", 1)[1]
    local.write_bytes(local.read_bytes()[:-9])
    snapshot = MemoryStore(str(tmp_path / "vault"))._newest_complete(DIRECTORY, "", None)
    assert snapshot.head.run_id == "r1"
    current = snapshot.current()
    assert sorted(current) == sorted((r.prefix, r.kind) for r in kept)
    assert local.name in snapshot.unreadable
    assert cannot_carry(snapshot, "d1", tonight).startswith(f"its snapshot of {iso(NOW)} cannot be read back (")
