"""recovery/stores/memory.py: memory:// lives in this process, reads its times from `created` and
gives no identity of an object's bytes (nothing is carried from one run to the next)."""

import datetime

import pytest

from recovery import storage
from recovery.listing import everything_under
from recovery.stores import store_for, store_for_fs
from recovery.stores.memory import STORE

SAVED = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def test_times_from_created_and_no_identity():
    fs, directory = storage.url_to_fs("memory://memory-store/run")
    assert store_for("memory://x") is STORE and store_for_fs(fs) is STORE and STORE.in_process
    fs.pipe_file(f"{directory}/ckpt-1.index", b"index")
    fs.store[f"{directory}/ckpt-1.index"].created = SAVED
    assert everything_under(fs, directory) == [(f"{directory}/ckpt-1.index", 5, SAVED.timestamp(), None)]
    assert all(STORE.identity(entry) is None for entry in fs.ls(directory, detail=True))


def test_a_create_only_write_checks_then_writes():
    fs, directory = storage.url_to_fs("memory://memory-store/writes")
    storage.write_new(fs, f"{directory}/ckpt-1.index", b"first")
    with pytest.raises(FileExistsError, match="memory:///memory-store/writes/ckpt-1.index"):
        storage.write_new(fs, f"{directory}/ckpt-1.index", b"second")
    assert storage.read_bytes(fs, f"{directory}/ckpt-1.index") == b"first"
