"""How a vaulted entry relates to the data files a prefix has now, on real files: the same files, an
earlier save (same sizes, another identity or none), or other bytes (names or sizes differ)."""

import json
import os

import pytest

from recovery import storage, stores
from recovery.vault import (
    EARLIER_SAVE,
    ORIGIN_SEEN_HEALTHY,
    OTHER_BYTES,
    SAME_FILES,
    ShardRecord,
    VaultEntry,
    relation,
    shard_records,
)


def _entry(shards) -> VaultEntry:
    return VaultEntry("/r/ckpt-1", "/r", "0" * 64, 10, tuple(shards), "2025-12-05T02:30:00Z", ORIGIN_SEEN_HEALTHY)


def _present(directory, prefix="ckpt-1"):
    fs, path = storage.url_to_fs(str(directory))
    return shard_records(f"{path}/{prefix}", storage.ls(fs, path), stores.store_for_fs(fs))


@pytest.fixture
def run(tmp_path):
    for shard in range(2):
        (tmp_path / f"ckpt-1.data-0000{shard}-of-00002").write_bytes(bytes(100 + shard))
    (tmp_path / "ckpt-10.data-00000-of-00001").write_bytes(b"other prefix")
    return tmp_path


def test_the_same_files_are_the_same_files(run):
    then = _present(run)
    assert [s.name for s in then] == ["ckpt-1.data-00000-of-00002", "ckpt-1.data-00001-of-00002"]
    found = relation(_entry(then), _present(run))
    assert found.kind == SAME_FILES and "these very data files" in found.why


def test_a_file_written_again_with_the_same_size_is_an_earlier_save(run):
    then = _present(run)
    path = run / "ckpt-1.data-00001-of-00002"
    stat = os.stat(path)
    os.replace(path, str(path) + ".old")                  # a save renames a new file into place
    path.write_bytes(bytes(101))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    found = relation(_entry(then), _present(run))
    assert found.kind == EARLIER_SAVE and "ckpt-1.data-00001-of-00002 is not the file(s)" in found.why


def test_a_store_without_identity_leaves_it_unknown(run):
    then = [ShardRecord(s.name, s.size, None) for s in _present(run)]
    found = relation(_entry(then), _present(run))
    assert found.kind == EARLIER_SAVE and "no identity" in found.why


def test_other_sizes_or_names_are_other_bytes(run):
    then = _present(run)
    (run / "ckpt-1.data-00000-of-00002").write_bytes(bytes(120))
    found = relation(_entry(then), _present(run))
    assert found.kind == OTHER_BYTES
    assert "shard 0: 100 bytes then, 120 now" in found.why and "2025-12-05 02:30 UTC" in found.why
    for shard in range(2):
        os.remove(run / f"ckpt-1.data-0000{shard}-of-00002")
    (run / "ckpt-1.data-00000-of-00001").write_bytes(bytes(100))
    found = relation(_entry(then), _present(run))
    assert found.kind == OTHER_BYTES and "described 2 data file(s)" in found.why and "has 1" in found.why


def test_an_entry_of_another_format_does_not_load():
    entry = _entry(_present_like())
    assert VaultEntry.from_json(entry.to_json(), "x.json") == entry
    with pytest.raises(ValueError, match="not a vault entry"):
        VaultEntry.from_json(entry.to_json().replace(b"vault-entry/1", b"vault-entry/2"))
    with pytest.raises(ValueError, match="not a vault entry"):
        VaultEntry.from_json(b'{"format": "ckpt-rescue-vault-entry/1", "prefix": "p"}')


def _present_like():
    return [ShardRecord("ckpt-1.data-00000-of-00001", 10, "etag abc size 10")]


def test_an_entry_kept_before_the_stores_declared_identities_is_never_the_same_files(run):
    """Entries once stored the identity as a dict ({"mtime": ..., "ino": ...}): read back, it can equal
    no identity a store gives now, so such an entry is an earlier save at best, never the lost index."""
    now = _present(run)
    old = json.loads(_entry(now).to_json())
    stat = os.stat(run / now[0].name)
    for shard in old["shards"]:
        shard["identity"] = {"mtime": stat.st_mtime, "ino": stat.st_ino}
    entry = VaultEntry.from_json(json.dumps(old).encode(), "x.json")
    assert all(s.identity.startswith("before-stores ") for s in entry.shards)
    assert relation(entry, now).kind == EARLIER_SAVE
