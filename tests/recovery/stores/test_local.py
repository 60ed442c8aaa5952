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
