"""The nightly audit that remembers, night after night on local disk (issue 13), with checkpoints
TensorFlow wrote in the session: the vault keeps every healthy index and brings a lost one back
byte-identical with every tensor confirmed; each record says new, persists (since when), resolved or
deleted; an unchanged directory is carried forward, a changed one judged again; retention; the
--verify-share rotation; and a run that could not check is loud. Every run has its own clock (--now)."""

import glob
import gzip
import json
import os
import shutil
import subprocess

import pytest
from command_helpers import run_printed
from nightly_helpers import NIGHT, T0, audit_night, iso_night, set_times
from source_helpers import orphan, tf_restores_all

from recovery.memory.carry import KEPT_AS
from recovery.memory.rotation import VERIFIED, due, verified_on
from recovery.records import CORRUPT, DELETED, HEALTHY, IN_PROGRESS, NEW, PERSISTS, REBUILT, RESOLVED
from recovery.vault import Vault
from tfbundle import index_filename, read_index

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _tree(family_copy, tmp_path, *names) -> tuple:
    """(root, {name: run directory}) holding a copy of each family's run, every file an hour older than night 1."""
    root = tmp_path / "tree"
    runs = {}
    for name in names:
        family = family_copy(name)
        runs[name] = str(root / "runs" / name)
        shutil.copytree(os.path.dirname(family.prefix), runs[name])
    set_times(str(root), T0 - 3600)
    return str(root), runs


def _in(run: str, name: str) -> str:
    return os.path.join(run, name)


def test_three_nights_say_new_persists_resolved_and_deleted(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam", "sharded")
    adam, sharded = runs["keras3_adam"], runs["sharded"]
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")

    first = audit_night(root, reports, 1, vault=vault)
    assert first.code == 0 and {r.status for r in first.records.values()} == {HEALTHY}
    assert {(r.change, r.since) for r in first.records.values()} == {("", iso_night(1))}   # no previous run
    assert first.summary["previous_run"] is None and first.summary["warnings"] == []
    assert first.summary["directories"] == {"listed": 2, "carried": 0, "judged": 2, "gone": 0}
    kept = [p for p, r in first.records.items() if r.kind == "checkpoint"]
    assert first.summary["vault"]["kept"] == len(kept) == 5
    assert first.summary["vault"]["kept_bytes"] == sum(os.path.getsize(index_filename(p)) for p in kept)

    for name in os.listdir(adam):                       # CheckpointManager's rotation deletes the oldest
        if name.startswith("ckpt-1."):
            os.remove(_in(adam, name))
    lost = orphan(_in(adam, "ckpt-3"))                  # and the latest lost its index
    second = audit_night(root, reports, 2, vault=vault)
    assert second.code == 1                             # the state file names a checkpoint without its index
    assert second.status(_in(adam, "ckpt-1")) == (DELETED, NEW, iso_night(2))
    assert second.status(_in(adam, "ckpt-3")) == (REBUILT, NEW, iso_night(2))
    assert second.status(_in(adam, "checkpoint"))[:2] == ("incomplete", NEW)
    assert second.status(_in(adam, "ckpt-2")) == (HEALTHY, PERSISTS, iso_night(1))
    rebuilt = second.records[_in(adam, "ckpt-3")]
    assert rebuilt.source.startswith("vaulted index of ckpt-3 as it was on 2026-12-05 02:30 UTC")
    with open(rebuilt.index_path, "rb") as f:
        assert f.read() == lost                         # the lost index itself
    tensors = len(read_index(lost).entries)
    said = rebuilt.checks + tuple(rebuilt.evidence["confirmed"])
    assert any(f"{tensors} of {tensors} tensors confirmed by the index as it was on 2026-12-05 02:30 UTC: the rebuilt "
               "index is byte-identical to it" in line for line in said)
    for prefix in (p for p in second.records if p.startswith(sharded)):     # untouched: carried, nothing read
        record = second.records[prefix]
        assert (record.status, record.change, record.since, record.carried_from) == (
            HEALTHY, PERSISTS, iso_night(1), iso_night(1))
        assert record.bytes_scanned == 0 and any("unchanged since 2026-12-05T02:30:00Z" in c for c in record.checks)
    assert second.summary["previous_run"]["run_id"] == first.summary["run_id"]
    assert second.summary["changes"] == {"new": 2, "deleted": 1, "resolved": 0,
                                         "persists": len(second.records) - 3}
    assert second.summary["directories"] == {"listed": 2, "carried": 1, "judged": 1, "gone": 0}
    assert second.summary["carried"] == len([p for p in second.records if p.startswith(sharded)])
    assert "since the run of " in second.out and "new 2, deleted 1, resolved 0" in second.out

    assert run_printed(rebuilt.command).returncode == 0              # promote it as the record says
    assert tf_restores_all(_in(adam, "ckpt-3"))
    third = audit_night(root, reports, 3, vault=vault)
    assert third.code == 0
    assert third.status(_in(adam, "ckpt-3")) == (HEALTHY, RESOLVED, iso_night(3))
    assert third.status(_in(adam, "checkpoint")) == (HEALTHY, RESOLVED, iso_night(3))
    assert third.status(_in(adam, "ckpt-1")) == (DELETED, PERSISTS, iso_night(2))   # reported every night
    assert third.status(_in(adam, "ckpt-2")) == (HEALTHY, PERSISTS, iso_night(1))
    assert {third.records[p].carried_from for p in third.records if p.startswith(sharded)} == {iso_night(1)}
    assert third.summary["changes"]["resolved"] == 2 and third.summary["changes"]["deleted"] == 0
    page = open(os.path.join(third.report, "report.html")).read()
    # the verdict answers first, what changed right under it (both above the fold: tests/pipeline/test_report.py)
    assert page.index('id="verdict"') < page.index('id="changes"') < page.index('id="totals"')
    assert 'id="changes-deleted"' in page and 'id="changes-resolved"' in page and "ckpt-1" in page


def test_a_carried_staged_rebuild_is_staged_again_and_promote_sh_still_works(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam, vault, reports = runs["keras3_adam"], str(tmp_path / "vault"), str(tmp_path / "reports")
    audit_night(root, reports, 1, vault=vault)
    lost = orphan(_in(adam, "ckpt-3"))
    second = audit_night(root, reports, 2, vault=vault)
    assert second.records[_in(adam, "ckpt-3")].status == REBUILT
    third = audit_night(root, reports, 3, vault=vault)           # nothing changed: carried, staged again
    record = third.records[_in(adam, "ckpt-3")]
    assert (record.status, record.carried_from, record.since) == (REBUILT, iso_night(2), iso_night(2))
    assert record.index_path.startswith(third.report) and third.summary["directories"]["carried"] == 1
    with open(record.index_path, "rb") as f:
        assert f.read() == lost
    done = subprocess.run(["sh", os.path.join(third.report, "promote.sh")], capture_output=True, text=True)
    assert done.returncode == 0 and "1 promoted" in done.stdout, done.stdout + done.stderr
    with open(index_filename(_in(adam, "ckpt-3")), "rb") as f:
        assert f.read() == lost


def _unname_vaulted_copies(vault: str) -> int:
    """Snapshots as an older version wrote them: a staged record's checks do not name its vaulted index.
    Returns how many records named one."""
    named = 0
    for path in glob.glob(os.path.join(vault, "memory", "*", "*", "records-*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            records = [json.loads(line) for line in f if line.strip()]
        for record in records:
            kept = [c for c in record["checks"] if not c.startswith(KEPT_AS)]
            named += len(kept) < len(record["checks"])
            record["checks"] = kept
        with gzip.open(path, "wt") as f:
            f.write("".join(json.dumps(record, sort_keys=True) + "\n" for record in records))
    return named


def test_a_carried_staged_rebuild_that_names_no_vaulted_copy_is_found_by_its_files_or_judged_again(
        family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam, vault, reports = runs["keras3_adam"], str(tmp_path / "vault"), str(tmp_path / "reports")
    orphan(_in(adam, "ckpt-3"))                                  # lost before the vault ever saw it
    first = audit_night(root, reports, 1, vault=vault)
    staged = first.records[_in(adam, "ckpt-3")]
    assert staged.status == REBUILT and staged.staged
    with open(staged.index_path, "rb") as f:
        rebuilt = f.read()
    assert _unname_vaulted_copies(vault) == 1
    second = audit_night(root, reports, 2, vault=vault)          # the vault's rebuilt entry for these very files
    record = second.records[_in(adam, "ckpt-3")]
    assert second.summary["directories"]["carried"] == 1 and record.carried_from == iso_night(1)
    assert record.index_path.startswith(second.report)
    with open(record.index_path, "rb") as f:
        assert f.read() == rebuilt
    for entry in Vault.open(vault).entries(_in(adam, "ckpt-3")):
        Vault.open(vault).remove(entry)
    third = audit_night(root, reports, 3, vault=vault)           # no copy to stage again: read and rebuilt
    record = third.records[_in(adam, "ckpt-3")]
    assert third.summary["directories"] == {"listed": 1, "carried": 0, "judged": 1, "gone": 0}
    assert (record.status, record.carried_from) == (REBUILT, "")
    with open(record.index_path, "rb") as f:
        assert f.read() == rebuilt


def test_a_vaulted_index_over_bytes_damaged_in_place_names_the_damaged_tensors(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam, vault, reports = runs["keras3_adam"], str(tmp_path / "vault"), str(tmp_path / "reports")
    audit_night(root, reports, 1, vault=vault)
    prefix = _in(adam, "ckpt-3")
    index = read_index(orphan(prefix))
    key, entry = max(((k, e) for k, e in index.entries.items() if e.dtype == 1), key=lambda ke: ke[1].size)
    data = prefix + ".data-00000-of-00001"
    stat = os.stat(data)
    with open(data, "r+b") as f:                        # bit rot: one mantissa bit, same size, time and inode
        f.seek(entry.offset)
        byte = f.read(1)
        f.seek(entry.offset)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = audit_night(root, reports, 2, vault=vault)
    record = second.records[prefix]
    assert record.status == "unrecoverable" and second.code == 1
    assert "do not match the index as it was on 2026-12-05 02:30 UTC" in record.reason
    assert key.decode() in record.reason and "damaged in place" in record.reason
    assert any(key.decode() in line and "changed after the index of 2026-12-05 02:30 UTC was vaulted" in line
               for line in record.evidence["cannot_confirm"])
    assert not os.path.exists(os.path.join(second.report, "rebuilt"))


def test_a_re_saved_prefix_does_not_use_the_stale_vault_entry(tmp_path):
    import numpy as np
    import tensorflow as tf

    run = tmp_path / "tree" / "run"
    prefix = str(run / "latest")
    tf.train.Checkpoint(v=tf.Variable(np.arange(4, dtype=np.float32))).write(prefix)   # save_weights("latest")
    set_times(str(tmp_path / "tree"), T0 - 3600)
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    assert audit_night(str(tmp_path / "tree"), reports, 1, vault=vault).records[prefix].status == HEALTHY
    tf.train.Checkpoint(v=tf.Variable(np.arange(6, dtype=np.float32))).write(prefix)   # saved again, other size
    orphan(prefix)
    second = audit_night(str(tmp_path / "tree"), reports, 2, vault=vault)
    record = second.records[prefix]
    assert record.status != REBUILT and not record.source.startswith("vaulted")
    said = " ".join([record.reason, *record.refusals, *record.evidence.get("cannot_confirm", [])])
    assert "is for other bytes (shard 0: 98 bytes then, 106 now): the prefix was re-saved since" in said


def test_an_unchanged_directory_is_carried_and_full_reads_it_again(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam", "sharded")
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    first = audit_night(root, reports, 1, vault=vault)
    second = audit_night(root, reports, 2, vault=vault)
    assert second.summary["directories"] == {"listed": 2, "carried": 2, "judged": 0, "gone": 0}
    assert second.summary["bytes_scanned"] == 0 and second.summary["carried"] == len(first.records)
    assert second.summary["vault"]["kept"] == 0                    # nothing new to keep
    full = audit_night(root, reports, 3, "--full", vault=vault)
    assert full.summary["directories"]["carried"] == 0 and full.summary["bytes_scanned"] > 0
    assert {(r.status, r.change, r.carried_from) for r in full.records.values()} == {(HEALTHY, PERSISTS, "")}
    os.utime(index_filename(_in(runs["sharded"], "sharded-100")), (T0, T0))    # touched: judged again
    fourth = audit_night(root, reports, 4, vault=vault)
    assert fourth.summary["directories"] == {"listed": 2, "carried": 1, "judged": 1, "gone": 0}


def test_a_fresh_copy_and_an_empty_root_are_loud(family_copy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    night = audit_night(str(empty), str(tmp_path / "reports-empty"), 1)
    assert night.code == 4
    assert night.out.splitlines()[0].startswith("WARNING: nothing was judged")
    assert any(f"no checkpoint found under {empty}" in w for w in night.summary["warnings"])
    assert night.summary["directories"] == {"listed": 0, "carried": 0, "judged": 0, "gone": 0}   # counted: none
    assert 'id="warnings"' in open(os.path.join(night.report, "report.html")).read()

    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam = runs["keras3_adam"]
    for name in ("ckpt-1", "ckpt-2", "ckpt-3"):         # copied without its indexes, a minute ago
        orphan(_in(adam, name))
    set_times(root, T0 - 60)
    copied = audit_night(root, str(tmp_path / "reports"), 1, min_age="10")
    assert copied.code == 4 and copied.summary["deferred"] == 3
    assert copied.out.splitlines()[0] == ("WARNING: most prefixes were deferred (3 of 4 in progress: files younger "
                                          "than --min-age 10 min): run with --min-age 0 after a copy")
    assert {copied.records[_in(adam, n)].status for n in ("ckpt-1", "ckpt-2", "ckpt-3")} == {IN_PROGRESS}
    page = open(os.path.join(copied.report, "report.html")).read()
    assert page.index("run with --min-age 0 after a copy") < page.index('id="verdict"')


def test_a_root_emptied_or_gone_since_the_previous_run_is_loud(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam", "sharded")
    a, b = runs["keras3_adam"], runs["sharded"]
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    first = audit_night([a, b], reports, 1, vault=vault)
    held = [p for p in first.records if p.startswith(b)]
    for name in os.listdir(b):                          # a lifecycle rule emptied it
        os.remove(_in(b, name))
    second = audit_night([a, b], reports, 2, vault=vault)
    assert second.code == 4
    assert f"root {b} held {len(held)} record(s) in the previous run and holds none now" in second.out.splitlines()[0]
    assert {second.status(p) for p in held} == {(DELETED, NEW, iso_night(2))}
    assert second.summary["directories"]["gone"] == 1
    os.rmdir(b)
    third = audit_night([a, b], reports, 3, vault=vault)
    assert third.code == 4 and third.out.splitlines()[0] == (f"WARNING: root {b} does not exist (nearest that exist: "
                                                             f"{os.path.dirname(b)})")
    assert {third.status(p) for p in held} == {(DELETED, PERSISTS, iso_night(2))}
    assert {r.status for p, r in third.records.items() if p.startswith(a)} == {HEALTHY}


def test_retention_prunes_only_entries_of_checkpoints_gone_longer_than_keep_days(family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam, vault, reports = runs["keras3_adam"], str(tmp_path / "vault"), str(tmp_path / "reports")
    keep = ("--vault-keep-days", "2")
    audit_night(root, reports, 1, *keep, vault=vault)
    for name in os.listdir(adam):
        if name.startswith("ckpt-1."):
            os.remove(_in(adam, name))
    gone = _in(adam, "ckpt-1")
    assert audit_night(root, reports, 2, *keep, vault=vault).status(gone)[0] == DELETED
    third = audit_night(root, reports, 3, *keep, vault=vault)        # one day gone: still reported, still kept
    assert third.status(gone) == (DELETED, PERSISTS, iso_night(2)) and Vault.open(vault).entries(gone)
    fifth = audit_night(root, reports, 5, *keep, vault=vault)        # three days gone: forgotten
    assert gone not in fifth.records and fifth.summary["vault"]["pruned"] == 1
    assert Vault.open(vault).entries(gone) == []
    for name in ("ckpt-2", "ckpt-3"):       # kept four nights ago, longer than keep-days: they exist, they stay
        assert Vault.open(vault).entries(_in(adam, name))[0].first_seen == iso_night(1)


def test_entries_a_nightly_re_save_superseded_go_after_keep_days_never_the_newest(tmp_path):
    import numpy as np
    import tensorflow as tf

    prefix = str(tmp_path / "tree" / "run" / "latest")
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    for night in range(1, 5):                           # save_weights("latest") every night, new values
        tf.train.Checkpoint(v=tf.Variable(np.full(4, night, dtype=np.float32))).write(prefix)
        set_times(str(tmp_path / "tree"), T0 + (night - 1) * NIGHT - 3600)
        assert audit_night(str(tmp_path / "tree"), reports, night, "--vault-keep-days", "2",
                           vault=vault).records[prefix].status == HEALTHY
    kept = Vault.open(vault).entries(prefix)
    assert [e.first_seen for e in kept] == [iso_night(4), iso_night(3), iso_night(2)]   # night 1's went
    with open(index_filename(prefix), "rb") as f:
        assert Vault.open(vault).read_index(kept[0]) == f.read()


def test_the_previous_report_alone_says_what_changed(family_copy, tmp_path):
    """--previous REPORT_DIR, no vault: every record compared, deletions found; nothing is carried."""
    root, runs = _tree(family_copy, tmp_path, "keras3_adam")
    adam, reports = runs["keras3_adam"], str(tmp_path / "reports")
    first = audit_night(root, reports, 1)
    for name in os.listdir(adam):
        if name.startswith("ckpt-1."):
            os.remove(_in(adam, name))
    second = audit_night(root, reports, 2, "--previous", first.report)
    assert second.summary["previous_run"]["run_id"] == first.summary["run_id"] and second.summary["vault"] is None
    assert second.status(_in(adam, "ckpt-1")) == (DELETED, NEW, iso_night(2))
    assert second.status(_in(adam, "ckpt-2")) == (HEALTHY, PERSISTS, iso_night(1))
    assert second.summary["directories"]["carried"] == 0


def test_verify_share_reads_every_checkpoint_within_n_runs_also_carried_and_after_a_skipped_night(
        family_copy, tmp_path):
    root, runs = _tree(family_copy, tmp_path, "keras3_adam", "sharded")
    vault, reports = str(tmp_path / "vault"), str(tmp_path / "reports")
    share = ("--verify-data", "--verify-share", "1/3")
    verified = {}
    for n in (1, 2, 4):                                 # night 3 was skipped
        night = audit_night(root, reports, n, *share, vault=vault)
        assert night.code == 0
        tonight = {p for p, r in night.records.items() if verified_on(r) == iso_night(n)
                   and any(c.startswith(VERIFIED) for c in r.checks)}
        for prefix in tonight:
            verified.setdefault(prefix, []).append(n)
        for prefix, record in night.records.items():
            if record.kind == "checkpoint" and prefix not in tonight:
                assert any("--verify-share 1/3" in c for c in record.checks), record.checks   # says when
        if n > 1:
            assert night.summary["directories"]["carried"] == 2    # verified inside carried directories
    checkpoints = {p for p, r in night.records.items() if r.kind == "checkpoint"}
    assert set(verified) == checkpoints                  # every one within three runs
    assert all(len(v) == 1 for v in verified.values())

    # bit rot inside a carried directory is found on the night its checkpoint is due
    victim = _in(runs["keras3_adam"], "ckpt-2")
    data = victim + ".data-00000-of-00001"
    stat = os.stat(data)
    with open(data, "r+b") as f:
        f.seek(stat.st_size // 2)
        byte = f.read(1)
        f.seek(stat.st_size // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rounds = {5: 3, 6: 4, 7: 5}
    when = next(n for n, r in rounds.items() if due(victim, 3, r))
    for n in range(5, when + 1):
        night = audit_night(root, reports, n, *share, vault=vault)
        record = night.records[victim]
        if n < when:
            assert record.status == HEALTHY and record.carried_from
    assert record.status == CORRUPT and record.change == NEW and night.code == 1
