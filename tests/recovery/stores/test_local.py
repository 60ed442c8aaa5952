"""recovery/stores/local.py on this machine's disk: the identity of a file's bytes from its listing
entry (times set explicitly, never waited for), create-only writes, and which URLs are local."""

import os

import pytest

from recovery import storage
from recovery.stores import local_path, store_for, store_for_fs
from recovery.stores.local import STORE

NOON = 1_700_000_000_123_456_789      # ns


def _identity(path: str) -> str:
    fs, directory = storage.url_to_fs(os.path.dirname(path))
    assert store_for_fs(fs) is STORE
    listed = {entry["name"]: STORE.identity(entry) for entry in fs.ls(directory, detail=True)}
    found = {name: STORE.identity(entry) for name, entry in fs.find(directory, detail=True).items()}
    assert listed == found
    return listed[path]


def _write(path: str, data: bytes, mtime_ns: int) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_identity_changes_when_the_bytes_may_have(tmp_path):
    path = str(tmp_path / "ckpt-1.index")
    _write(path, b"index one", NOON)
    first = _identity(path)
    assert first is not None and _identity(path) == first
    _write(path, b"index two", NOON + 1_000)                 # rewritten in place a microsecond later
    assert _identity(path) != first
    replacement = str(tmp_path / "new")
    _write(replacement, b"index one", NOON)                  # same bytes and time, put in place by a rename
    os.replace(replacement, path)
    assert _identity(path) != first                          # a new inode


def test_a_rewrite_that_restores_the_time_on_the_same_inode_is_the_documented_blind_spot(tmp_path):
    path = str(tmp_path / "ckpt-1.index")
    _write(path, b"index one", NOON)
    first = _identity(path)
    _write(path, b"index two", NOON)                         # what `cp -p` onto the existing file does
    assert _identity(path) == first


def test_create_new_links_into_place_and_never_replaces(tmp_path):
    path = str(tmp_path / "ckpt-1.index")
    fs, _ = storage.url_to_fs(path)
    STORE.create_new(fs, path, b"first")
    with pytest.raises(FileExistsError):
        STORE.create_new(fs, path, b"second")
    assert open(path, "rb").read() == b"first"
    assert os.listdir(tmp_path) == ["ckpt-1.index"]          # no temp file left beside it


def test_bare_paths_and_file_urls_are_local_and_say_where():
    assert store_for("runs/a") is STORE and store_for("/runs/a") is STORE and store_for("file:///runs/a") is STORE
    assert local_path("file:///runs/a") == "/runs/a" and local_path("runs/a") == "runs/a"
    assert local_path("gs://b/runs") is None and local_path("memory://runs") is None


def _entries(directory) -> dict:
    """name -> entry of one directory, as the audit's listing takes them (storage.ls)."""
    fs, path = storage.url_to_fs(str(directory))
    return {os.path.basename(e["name"]): e for e in storage.ls(fs, path)}


def test_only_regular_files_are_files_and_everything_else_says_what_it_is(tmp_path):
    """A FIFO, a socket, a directory behind a link and a link to nothing are never files; a link to a
    regular file is that file, with its size and time (a run dir's `latest.index -> ckpt-3.index`)."""
    import socket

    _write(str(tmp_path / "ckpt-3.index"), b"0123456789", NOON)
    os.symlink("ckpt-3.index", tmp_path / "latest.index")
    os.mkfifo(tmp_path / "ckpt-1.data-00000-of-00001")
    os.symlink(str(tmp_path / "gone"), tmp_path / "ckpt-2.index")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), tmp_path / "latest")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "tb.sock"))
        found = _entries(tmp_path)
    link = found["latest.index"]
    assert (link["type"], link["size"], link["mtime"]) == ("file", 10, found["ckpt-3.index"]["mtime"])
    assert STORE.identity(link) == STORE.identity(found["ckpt-3.index"])      # the bytes it leads to
    assert (found["ckpt-1.data-00000-of-00001"]["type"], found["ckpt-1.data-00000-of-00001"]["what"],
            found["ckpt-1.data-00000-of-00001"]["unread"]) == ("other", "a FIFO (named pipe)", "special")
    assert found["ckpt-2.index"]["what"] == f"a dangling symbolic link (to {tmp_path / 'gone'}, which does not exist)"
    assert found["ckpt-2.index"]["unread"] == "dangling"
    assert (found["latest"]["what"], found["latest"]["unread"]) == (
        f"a symbolic link to a directory ({tmp_path / 'elsewhere'})", "linked-directory")
    assert (found["tb.sock"]["what"], found["elsewhere"]["type"]) == ("a socket", "directory")


def test_a_fifo_is_refused_without_ever_blocking_and_a_regular_file_reads(tmp_path):
    os.mkfifo(tmp_path / "ckpt-1.index")            # nobody ever writes it: opening it to read would wait forever
    fs, _ = storage.url_to_fs(str(tmp_path))
    with pytest.raises(storage.NotARegularFile, match=r"is a FIFO \(named pipe\), not a regular file; never opened"):
        storage.read_bytes(fs, str(tmp_path / "ckpt-1.index"))
    with pytest.raises(IsADirectoryError):
        storage.read_head(fs, str(tmp_path))
    assert not storage.is_transient(storage.NotARegularFile(22, "x", "p"))   # a finding, not a retry
    _write(str(tmp_path / "ckpt-2.index"), b"index", NOON)
    os.symlink("ckpt-2.index", tmp_path / "latest.index")
    assert storage.read_bytes(fs, str(tmp_path / "latest.index")) == b"index"


def test_what_takes_up_a_name_a_file_would_need(tmp_path):
    (tmp_path / "a.index").mkdir()
    os.mkfifo(tmp_path / "b.index")
    os.symlink(str(tmp_path / "gone"), tmp_path / "c.index")
    _write(str(tmp_path / "d.index"), b"x", NOON)
    os.symlink("d.index", tmp_path / "e.index")
    assert STORE.occupant(str(tmp_path / "a.index")) == "a directory"
    assert STORE.occupant(str(tmp_path / "b.index")) == "a FIFO (named pipe)"
    assert STORE.occupant(str(tmp_path / "c.index")).startswith("a dangling symbolic link")
    assert [STORE.occupant(str(tmp_path / n)) for n in ("d.index", "e.index", "f.index")] == [None, None, None]


def test_temp_files_beside_a_long_name_stay_within_the_limit(tmp_path):
    """create_new and write_replaceable write a temp file beside the target first: its name is short
    whatever the target's (a 250-byte name plus a suffix used to fail with "File name too long")."""
    fs, _ = storage.url_to_fs(str(tmp_path))
    long = str(tmp_path / ("ü" * 122 + ".index"))     # 250 bytes
    STORE.create_new(fs, long, b"created")
    STORE.write_replaceable(fs, long, b"replaced")
    assert open(long, "rb").read() == b"replaced" and os.listdir(tmp_path) == [os.path.basename(long)]


def test_the_local_find_gives_what_fsspecs_find_gives_for_every_kind_of_entry(tmp_path):
    """LocalStore.find (one os.scandir per directory) against fsspec's own find on the same tree: the
    same names in the same order, and the same fields the audit reads, for files, nested files, links to
    a file, to a directory (not descended into) and to nothing, a FIFO and a socket; a file or a missing
    path as fsspec answers them."""
    import socket

    import fsspec

    (tmp_path / "run" / "deep" / "deeper").mkdir(parents=True)
    _write(str(tmp_path / "run" / "ckpt-3.index"), b"0123456789", NOON)
    _write(str(tmp_path / "run" / "deep" / "deeper" / "ckpt-1.data-00000-of-00001"), b"x" * 7, NOON + 5)
    os.symlink("ckpt-3.index", tmp_path / "run" / "latest.index")
    os.symlink(str(tmp_path / "run" / "deep"), tmp_path / "run" / "linked")
    os.symlink(str(tmp_path / "gone"), tmp_path / "run" / "ckpt-2.index")
    os.mkfifo(tmp_path / "run" / "deep" / "ckpt-4.index")
    fs = fsspec.filesystem("file")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "run" / "tb.sock"))
        expected = fs.find(str(tmp_path), detail=True, withdirs=False)
        found = STORE.find(fs, str(tmp_path))
    assert list(found) == list(expected) and len(found) == 7
    for name, entry in found.items():
        assert entry == {key: expected[name][key] for key in entry}, name
        assert {"name", "size", "type", "islink", "mode", "mtime", "ino"} <= set(entry)
    assert [storage.listed(fs, [e])[0]["type"] for e in found.values()].count("file") == 3
    file = str(tmp_path / "run" / "ckpt-3.index")
    assert STORE.find(fs, file) == fs.find(file, detail=True, withdirs=False)
    assert STORE.find(fs, str(tmp_path / "missing")) == {}


def test_a_local_url_resolves_as_fsspec_resolves_it_and_a_relative_one_follows_the_working_directory(
        tmp_path, monkeypatch):
    """storage.url_to_fs keeps what a local URL resolved to (an audit asks for each directory's many times):
    the same answer fsspec gives, and a relative path resolved against the directory it is asked from."""
    import fsspec

    for url in (str(tmp_path / "a"), f"file://{tmp_path}/a", "relative/b"):
        assert storage.url_to_fs(url) == fsspec.core.url_to_fs(url)
        assert storage.url_to_fs(url) == fsspec.core.url_to_fs(url)      # asked again: the same
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    assert storage.url_to_fs("reports")[1] == f"{tmp_path}/one/reports"
    monkeypatch.chdir(tmp_path / "two")
    assert storage.url_to_fs("reports")[1] == f"{tmp_path}/two/reports"
    assert storage.url_to_fs("memory://m/x")[1] == "/m/x"      # not local: fsspec's every time
