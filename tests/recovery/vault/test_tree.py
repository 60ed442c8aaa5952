"""The vault's tree: the marker, content-addressed create-only entries, idempotent and race-safe keeps,
reads that ignore what is not committed, pruning and sizes; locally, on memory://, on fake-gcs-server
(which enforces ifGenerationMatch=0) and on moto's S3 server (which enforces If-None-Match: *)."""

import hashlib
import json
import os
import posixpath
import threading
import uuid

import pytest
from source_helpers import tree_digest

from recovery import storage
from recovery.vault import (
    ORIGIN_REBUILT,
    ORIGIN_SEEN_HEALTHY,
    ShardRecord,
    Vault,
    VaultDamaged,
    VaultError,
    keep_checkpoint,
    vault_for,
)
from recovery.vault.tree import MARKER, MARKER_FORMAT
from tfbundle import index_filename

pytestmark = pytest.mark.tf    # the indexes kept are TensorFlow's own

WHEN = 1764901800.0          # 2025-12-05 02:30:00 UTC
LATER = WHEN + 86400


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


@pytest.fixture(scope="module")
def index_bytes(pristine_family):
    """A real index TensorFlow wrote (keras3_adam's latest save), and another of the same run."""
    family = pristine_family("keras3_adam")
    with open(index_filename(family.prefix), "rb") as f, open(index_filename(family.siblings[-1]), "rb") as g:
        return f.read(), g.read()


def _shards(size: int = 4801) -> list:
    return [ShardRecord("ckpt-3.data-00000-of-00001", size, "generation 17")]


def _vault_url(scheme: str, tmp_path, request) -> str:
    """A fresh, empty vault location on `scheme`."""
    if scheme == "local":
        return str(tmp_path / "vault")
    if scheme == "memory":
        return f"memory://vault-{uuid.uuid4().hex[:12]}"
    request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")   # no faults: the real servers
    bucket = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(bucket)
    fs.mkdir(path)
    return bucket + "/vault"


def test_keep_stores_the_index_under_its_checksum_and_commits_it_with_its_entry(tmp_path, index_bytes):
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    data, _ = index_bytes
    kept = vault.keep("/data/run/ckpt-3", data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "run-1")
    assert kept.created
    base = tmp_path / "vault" / "v1" / _sha("/data/run") / _sha("/data/run/ckpt-3") / _sha(data)
    assert (base.parent / (base.name + ".index")).read_bytes() == data
    entry = json.loads((base.parent / (base.name + ".json")).read_text())
    assert entry == {"format": "ckpt-rescue-vault-entry/1", "prefix": "/data/run/ckpt-3", "directory": "/data/run",
                     "index_sha256": _sha(data), "index_size": len(data), "first_seen": "2025-12-05T02:30:00Z",
                     "origin": "seen-healthy", "run_id": "run-1",
                     "shards": [{"name": "ckpt-3.data-00000-of-00001", "size": 4801, "identity": "generation 17"}]}
    marker = json.loads((tmp_path / "vault" / MARKER).read_text())
    assert marker["format"] == MARKER_FORMAT
    [found] = vault.entries("/data/run/ckpt-3")
    assert found == kept.entry and found.seen_on == "2025-12-05 02:30 UTC"
    assert vault.read_index(found) == data
    usage = vault.usage()
    assert (usage.directories, usage.prefixes, usage.entries, usage.uncommitted) == (1, 1, 1, 0)
    assert usage.index_bytes == len(data) and usage.entry_bytes == len(kept.entry.to_json())


def test_keep_records_the_local_identity_of_each_data_file(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    kept = keep_checkpoint(vault, family.prefix, ORIGIN_SEEN_HEALTHY, WHEN, "run-1")
    data_file = family.prefix + ".data-00000-of-00001"
    stat = os.stat(data_file)
    assert kept.entry.shards == (ShardRecord(os.path.basename(data_file), stat.st_size,
                                             f"{round(stat.st_mtime * 1e9)}:{stat.st_size}:{stat.st_ino}"),)


@pytest.mark.parametrize("scheme", ["local", "memory", "gs", "s3"])
def test_keeping_again_changes_nothing_and_identity_is_the_stores(scheme, tmp_path, request, index_bytes):
    """Re-runs are idempotent: the first sighting's date and run stay; nothing is rewritten. The
    identity recorded is what the store gives: a generation on GCS, an ETag on S3, none on memory://."""
    url = _vault_url(scheme, tmp_path, request)
    vault = Vault.open(url, create=True)
    data, other = index_bytes
    runs = f"{url}-runs" if scheme != "local" else str(tmp_path / "runs")
    fs, runs_path = storage.url_to_fs(runs)
    if storage.is_local(fs):
        fs.makedirs(runs_path + "/run", exist_ok=True)
    fs.pipe_file(runs_path + "/run/ckpt-3.index", data)
    fs.pipe_file(runs_path + "/run/ckpt-3.data-00000-of-00001", b"\0" * 4801)
    first = keep_checkpoint(vault, runs + "/run/ckpt-3", ORIGIN_SEEN_HEALTHY, WHEN, "night-1")
    assert first.created
    identity = first.entry.shards[0].identity or ""
    assert identity.split(" ")[0] == {"local": identity.split(" ")[0], "memory": "", "gs": "generation",
                                      "s3": "etag"}[scheme]
    assert (identity == "") == (scheme == "memory")
    vault_fs, vault_root = storage.url_to_fs(url)
    before = {p: (i["size"], vault_fs.cat_file(p)) for p, i in vault_fs.find(vault_root, detail=True).items()}
    again = keep_checkpoint(vault, runs + "/run/ckpt-3", ORIGIN_SEEN_HEALTHY, LATER, "night-2")
    assert not again.created and again.entry == first.entry and again.entry.run_id == "night-1"
    after = {p: (i["size"], vault_fs.cat_file(p)) for p, i in vault_fs.find(vault_root, detail=True).items()}
    assert after == before
    assert Vault.open(url).entries(runs + "/run/ckpt-3") == [first.entry]
    if scheme == "gs":      # gcs:// is the same place as gs://
        assert vault.entries(runs.replace("gs://", "gcs://") + "/run/ckpt-3") == [first.entry]
    # A new index of the same prefix is a second entry; newest first.
    newer = vault.keep(runs + "/run/ckpt-3", other, list(first.entry.shards), ORIGIN_SEEN_HEALTHY, LATER, "night-2")
    assert newer.created
    assert [e.run_id for e in vault.entries(runs + "/run/ckpt-3")] == ["night-2", "night-1"]


def _race(vault: Vault, prefix: str, payloads: list) -> list:
    """Keep each payload from its own thread, all released at the same instant."""
    start = threading.Barrier(len(payloads))
    results = [None] * len(payloads)

    def keeper(i, data):
        start.wait()
        results[i] = vault.keep(prefix, data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN + i, f"writer-{i}")

    threads = [threading.Thread(target=keeper, args=(i, data)) for i, data in enumerate(payloads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("scheme", ["local", "gs", "s3"])
def test_workers_racing_to_keep_one_index_leave_exactly_one_entry(scheme, tmp_path, request, index_bytes):
    vault = Vault.open(_vault_url(scheme, tmp_path, request), create=True)
    data, _ = index_bytes
    for round_number in range(3):
        prefix = f"/data/exp/ckpt-{round_number}"
        results = _race(vault, prefix, [data] * 4)
        winners = [r for r in results if r.created]
        assert len(winners) == 1, results
        [committed] = vault.entries(prefix)
        assert committed == winners[0].entry
        assert all(r.entry == committed for r in results)   # the losers report the winner's entry
        assert vault.read_index(committed) == data


def test_racing_to_create_the_vault_gives_one_marker(tmp_path, request):
    url = _vault_url("s3", tmp_path, request)
    opened, start = [], threading.Barrier(4)

    def opener():
        start.wait()
        opened.append(Vault.open(url, create=True))

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 4
    fs, root = storage.url_to_fs(url)
    assert [posixpath.basename(p) for p in fs.find(root)] == [MARKER]


def test_an_index_without_its_entry_is_not_in_the_vault_until_a_keep_commits_it(tmp_path, index_bytes):
    """A keep that stopped between its two writes leaves an .index alone: readers ignore it."""
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    data, _ = index_bytes
    base = tmp_path / "vault" / "v1" / _sha("/data/run") / _sha("/data/run/ckpt-3")
    base.mkdir(parents=True)
    (base / f"{_sha(data)}.index").write_bytes(data)
    assert vault.entries("/data/run/ckpt-3") == [] and vault.directory_entries("/data/run") == {}
    assert vault.usage().uncommitted == 1 and vault.usage().entries == 0
    assert vault.keep("/data/run/ckpt-3", data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "run-2").created
    assert [e.run_id for e in vault.entries("/data/run/ckpt-3")] == ["run-2"]


@pytest.mark.parametrize("scheme", ["local", "gs"])
def test_an_entry_named_by_its_checksum_is_read_without_listing_and_only_when_committed(
        scheme, tmp_path, request, index_bytes):
    """What a carried night asks for every staged rebuild: the entry of one index by its sha256. The one
    entries() lists, and nothing for another checksum, a hidden prefix, a name that is no checksum, or
    an entry whose index is gone (not committed)."""
    vault = Vault.open(_vault_url(scheme, tmp_path, request), create=True)
    data, other = index_bytes
    kept = vault.keep("/data/run/ckpt-3", data, _shards(), ORIGIN_REBUILT, WHEN, "run-1").entry
    assert vault.entry("/data/run/ckpt-3", _sha(data)) == kept == vault.entries("/data/run/ckpt-3")[0]
    assert vault.read_index(vault.entry("/data/run/ckpt-3", _sha(data))) == data
    assert vault.entry("/data/run/ckpt-3", _sha(other)) is None
    assert vault.entry("/data/run/ckpt-4", _sha(data)) is None
    assert vault.without("/data/run/ckpt-3").entry("/data/run/ckpt-3", _sha(data)) is None
    assert vault.entry("/data/run/ckpt-3", "../" + _sha(data)[3:]) is None
    vault.fs.rm_file(kept.index_location)
    assert vault.entry("/data/run/ckpt-3", _sha(data)) is None and vault.entries("/data/run/ckpt-3") == []


def test_a_stored_copy_that_is_not_its_bytes_is_refused_and_never_overwritten(tmp_path, index_bytes):
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    data, _ = index_bytes
    [entry] = [vault.keep("/data/run/ckpt-3", data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "run-1").entry]
    damaged = bytearray(data)
    damaged[100] ^= 0x01
    with open(entry.index_location, "wb") as f:        # the storage under the vault rotted
        f.write(damaged)
    with pytest.raises(VaultDamaged, match="damaged"):
        vault.read_index(entry)
    os.remove(entry.location)                          # and the entry went missing: a keep finds the copy bad
    with pytest.raises(VaultDamaged):
        vault.keep("/data/run/ckpt-3", data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "run-2")
    with open(entry.index_location, "rb") as f:
        assert f.read() == bytes(damaged)


def test_keep_refuses_what_is_not_an_index_or_not_an_origin(tmp_path, index_bytes):
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    with pytest.raises(ValueError, match="not an index"):
        vault.keep("/data/run/ckpt-3", b"not an index at all", _shards(), ORIGIN_SEEN_HEALTHY, WHEN)
    with pytest.raises(ValueError, match="origin"):
        vault.keep("/data/run/ckpt-3", index_bytes[0], _shards(), "found-somewhere", WHEN)
    assert vault.usage().entries == 0


def test_a_location_holding_something_else_is_refused_and_left_alone(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    run = os.path.dirname(family.prefix)
    before = tree_digest(run)
    with pytest.raises(VaultError, match="is not a vault: it holds 7 other object") as refused:
        Vault.open(run, create=True)
    assert "ckpt-1" in str(refused.value) or "checkpoint" in str(refused.value)
    assert tree_digest(run) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / MARKER).write_text(json.dumps({"format": "ckpt-rescue-vault/9"}))
    with pytest.raises(VaultError, match="ckpt-rescue-vault/9"):
        Vault.open(str(tmp_path / "other"), create=True)
    (tmp_path / "other" / MARKER).write_text("{ not json")
    with pytest.raises(VaultError, match="says format None"):
        Vault.open(str(tmp_path / "other"))
    with pytest.raises(VaultError, match="no vault there"):
        Vault.open(str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(VaultError, match="cannot read ckpt-rescue-vault.json there"):
        Vault.open(str(tmp_path / "a-file"), create=True)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_spellings_of_one_place_share_entries_and_directories_group_them(tmp_path, index_bytes):
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    data, other = index_bytes
    vault.keep(f"file://{tmp_path}/run/ckpt-3", data, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "a")
    vault.keep(f"{tmp_path}/run/ckpt-2", other, _shards(), ORIGIN_REBUILT, WHEN, "a")
    vault.keep(f"{tmp_path}/elsewhere/ckpt-2", other, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "a")
    assert [e.prefix for e in vault.entries(f"{tmp_path}/run/ckpt-3")] == [f"{tmp_path}/run/ckpt-3"]
    grouped = vault.directory_entries(f"{tmp_path}/run/")
    assert sorted(grouped) == [f"{tmp_path}/run/ckpt-2", f"{tmp_path}/run/ckpt-3"]
    assert grouped[f"{tmp_path}/run/ckpt-2"][0].origin == ORIGIN_REBUILT
    hidden = vault.without(f"{tmp_path}/run/ckpt-3")
    assert sorted(hidden.directory_entries(f"{tmp_path}/run")) == [f"{tmp_path}/run/ckpt-2"]
    assert hidden.entries(f"{tmp_path}/run/ckpt-3") == [] and vault.entries(f"{tmp_path}/run/ckpt-3")


def test_pruning_a_prefix_removes_its_entries_only(tmp_path, index_bytes):
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    data, other = index_bytes
    for blob, when in ((data, WHEN), (other, LATER)):
        vault.keep("/data/run/ckpt-3", blob, _shards(), ORIGIN_SEEN_HEALTHY, when, "a")
    vault.keep("/data/run/ckpt-2", other, _shards(), ORIGIN_SEEN_HEALTHY, WHEN, "a")
    assert vault.usage().entries == 3
    assert vault.prune_prefix("/data/run/ckpt-3") == 2
    assert vault.entries("/data/run/ckpt-3") == [] and len(vault.entries("/data/run/ckpt-2")) == 1
    assert not (tmp_path / "vault" / "v1" / _sha("/data/run") / _sha("/data/run/ckpt-3")).exists()
    [kept] = vault.entries("/data/run/ckpt-2")
    vault.remove(kept)
    assert vault.usage() == vault.usage().__class__(0, 0, 0, 0, 0, 0)
    assert vault.prune_prefix("/data/run/never-kept") == 0


def test_vault_for_opens_once_per_process(tmp_path):
    url = str(tmp_path / "vault")
    with pytest.raises(VaultError):
        vault_for(url)
    created = vault_for(url, create=True)
    assert vault_for(url, create=True) is created and vault_for(url).url == created.url
