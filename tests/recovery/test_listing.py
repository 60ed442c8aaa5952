"""recovery.listing's split of sibling directories into prefix groups, and group listings on disk."""

import os

from hypothesis import given
from hypothesis import strategies as st

from recovery import storage
from recovery.listing import everything_under_group, listed_under, sibling_groups, top_level
from recovery.unread import unread_record

names = st.lists(st.text(alphabet="ab-1_", max_size=5), max_size=60)    # "": objects named `parent//...`


@given(names, st.integers(min_value=1, max_value=80))
def test_each_group_prefix_selects_exactly_its_members_and_groups_partition_the_names(siblings, limit):
    groups = sibling_groups(siblings, limit)
    assert sorted(m for _, members in groups for m in members) == sorted(set(siblings))
    for prefix, members in groups:
        # an object under sibling S is named S/...: the prefix must select S's objects iff S is a member
        assert {s for s in set(siblings) if (s + "/").startswith(prefix)} == set(members)
    if len(set(siblings)) <= limit:
        assert all(len(members) == 1 for _, members in groups)   # few enough: each directory alone


def test_a_thousand_runs_make_about_the_limit_of_groups():
    groups = sibling_groups([f"run-{i:04d}" for i in range(1000)], 64)
    assert len(groups) == 64 and max(len(m) for _, m in groups) == 100


def test_a_group_on_disk_lists_below_its_members_only(tmp_path):
    for relative in ("p/run-1/a.index", "p/run-10/b.index", "p/run-2/c.index", "p/run-1x.index"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"1")
    fs, path = storage.url_to_fs(str(tmp_path / "p"))
    found, unread = everything_under_group(fs, path, "run-1", ("run-1", "run-10"))
    assert sorted(os.path.relpath(f[0], path) for f in found) == ["run-1/a.index", "run-10/b.index"] and not unread


def test_an_index_vault_inside_a_root_is_never_listed(tmp_path):
    """Its .index files have no data beside them: the vault is left out by its marker, whether a directory
    listing or a recursive group listing comes to it, and a vault-looking folder without one is not."""
    from recovery.listing import everything_under, top_level
    from recovery.vault import ORIGIN_SEEN_HEALTHY, ShardRecord, Vault

    (tmp_path / "root" / "run").mkdir(parents=True)
    (tmp_path / "root" / "run" / "ckpt-1.data-00000-of-00001").write_bytes(b"x")
    from tfbundle import BundleHeader, write_index

    index = write_index(BundleHeader(num_shards=1), {})
    vault = Vault.open(str(tmp_path / "root" / "keep" / "vault"), create=True)
    vault.keep(str(tmp_path / "root" / "run" / "ckpt-1"), index, [ShardRecord("ckpt-1.data-00000-of-00001", 1)],
               ORIGIN_SEEN_HEALTHY, 1_796_500_000.0)
    (tmp_path / "root" / "keep" / "not-a-vault" / "v1").mkdir(parents=True)
    (tmp_path / "root" / "keep" / "not-a-vault" / "v1" / "x.index").write_bytes(index)
    fs, root = storage.url_to_fs(str(tmp_path / "root"))
    found = sorted(os.path.relpath(f.path, root) for f in everything_under(fs, root))
    assert found == ["keep/not-a-vault/v1/x.index", "run/ckpt-1.data-00000-of-00001"]
    assert top_level(fs, str(tmp_path / "root" / "keep" / "vault")) == ([], [], [])
    assert everything_under_group(fs, f"{root}/keep", "", ("not-a-vault", "vault")).files == [
        f for f in everything_under(fs, f"{root}/keep")]


def test_what_is_not_a_regular_file_is_listed_apart_and_gets_its_own_record(tmp_path):
    """Never opened nor followed: a FIFO named like a data file needs a person, a socket is noted, a link to
    a directory outside the root says where the checkpoints it hides are, one inside the root does not."""
    import socket

    run, outside = tmp_path / "root" / "run", tmp_path / "outside"
    run.mkdir(parents=True)
    outside.mkdir()
    (run / "ckpt-1.index").write_bytes(b"1")
    os.mkfifo(run / "ckpt-1.data-00000-of-00001")
    os.symlink(str(outside), run / "latest")
    os.symlink(str(run), tmp_path / "root" / "alias")
    root = str(tmp_path / "root")
    fs, _ = storage.url_to_fs(root)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(run / "tb.sock"))
        found = listed_under(fs, str(run))
        level = top_level(fs, root)
    assert [f[0] for f in found.files] == [str(run / "ckpt-1.index")]
    assert [u.path for u in level.unread] == [str(tmp_path / "root" / "alias")] and level.children == [str(run)]
    records = {u.path: unread_record(root, fs, u) for u in found.unread + level.unread}
    fifo = records[str(run / "ckpt-1.data-00000-of-00001")]
    assert (fifo.kind, fifo.status, fifo.directory) == ("listing", "unrecoverable", str(run))
    assert fifo.reason.startswith("a FIFO (named pipe), named like a checkpoint's data file")
    assert records[str(run / "tb.sock")].status == "healthy" and "not a checkpoint file's" in records[
        str(run / "tb.sock")].reason
    latest = records[str(run / "latest")]
    assert (latest.status, latest.source) == ("healthy", str(outside)) and "not followed" in latest.reason
    alias = records[str(tmp_path / "root" / "alias")]
    assert alias.source == "" and "audited under their own path" in alias.reason


def test_a_local_listing_made_from_stat_is_the_one_made_from_find_entries(tmp_path):
    """The local store lists regular files straight from their stat (stores/local.py files_under): the
    same files, sizes, times, identities and order as from find()'s entries, with what is not a regular
    file (a FIFO, a socket, a dangling link, a link to a directory, a link to a file, which is that file)
    typed alike, a report directory inside the root left out and a report's staged indexes hidden."""
    import socket

    from recovery import stores
    from recovery.listing import _found

    root = tmp_path / "root"
    run = root / "run"
    (run / "ckpt-2_temp").mkdir(parents=True)
    for name in ("ckpt-2.index", "ckpt-2.data-00000-of-00001", "ckpt-2_temp/part-00000-of-00001.index",
                 "checkpoint", "b\udcf3d-name.index"):
        (run / name).write_bytes(b"x" * len(name))
    os.symlink("ckpt-2.index", run / "latest.index")
    os.symlink(str(tmp_path / "gone"), run / "ckpt-3.index")
    os.symlink(str(tmp_path), run / "up")
    os.mkfifo(run / "ckpt-1.data-00000-of-00001")
    (root / "plain" / "deeper").mkdir(parents=True)           # regular files only
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001", "deeper/ckpt-2.index", "a"):
        (root / "plain" / name).write_bytes(b"y" * len(name))
    report = root / "report"
    (report / "rebuilt").mkdir(parents=True)
    (report / ".ckpt-rescue-report").write_text("{}")
    (report / "rebuilt" / "ckpt-9.index").write_bytes(b"staged")
    other_report = run / "rep"
    (other_report / "rebuilt").mkdir(parents=True)
    (other_report / ".ckpt-rescue-report").write_text("{}")
    (other_report / "rebuilt" / "ckpt-8.index").write_bytes(b"staged")
    fs, _ = storage.url_to_fs(str(root))
    store = stores.store_for_fs(fs)
    assert store.files_under(fs, str(run)) is not None        # the local store's own way is the one tested
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(run / "tb.sock"))
        for directory, exclude in ((str(root), str(report)), (str(run), None), (str(root), None),
                                   (str(root / "plain"), None)):
            made = listed_under(fs, directory, exclude)
            assert made == _found(fs, store.find(fs, directory), exclude), (directory, exclude)
            assert [f.path for f in made.files] == sorted(f.path for f in made.files)
    paths = {f.path for f in listed_under(fs, str(root), str(report)).files}
    assert str(run / "latest.index") in paths and str(run / "ckpt-2_temp/part-00000-of-00001.index") in paths
    assert not any("rebuilt" in p or "/report/" in p for p in paths)
    assert listed_under(fs, str(run / "checkpoint")).files == _found(fs, store.find(fs, str(run / "checkpoint")),
                                                                      None).files      # a file: find's answer
