"""The storage seam holds: a store declared here, in the test alone, for a scheme no project file
names (`seam://`), is used for listing, classification, rebuilding and the create-only write of a
whole audit, with nothing else in the project knowing of it.

Its filesystem is fsspec's in-memory one under another name, whose listings call the modification
time `seam_mtime` (no built-in store knows that key), and its create-only write is its own: so a
record's `mtime` and an index written in place can only have come through the registered store.
"""

import datetime
import os
import threading

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from storage_servers import upload_tree

from pipeline.cli import main as cli_main
from recovery import storage, stores
from recovery.listing import everything_under, top_level
from recovery.report.readback import read_records, read_summary
from recovery.stores.base import Store
from recovery.writeout import IndexAppeared, write_in_place

SAVED = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


class SeamFileSystem(MemoryFileSystem):
    """In-memory objects of their own, listed with the time under a name of their own."""

    protocol = ("seam",)
    store = {}
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("seam://"):] if isinstance(path, str) and path.startswith("seam://") else path
        return super()._strip_protocol(path)

    def ls(self, path, detail=True, **kwargs):
        found = super().ls(path, detail=detail, **kwargs)
        return [_renamed(entry) for entry in found] if detail else found

    def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
        found = super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        return {name: _renamed(entry) for name, entry in found.items()} if detail else found

    def info(self, path, **kwargs):
        return _renamed(super().info(path, **kwargs))


def _renamed(entry: dict) -> dict:
    entry = dict(entry)
    if "created" in entry:
        entry["seam_mtime"] = entry.pop("created")
    return entry


class SeamStore(Store):
    name = "seam"
    schemes = ("seam",)
    protocols = ("seam",)
    mtime_keys = ("seam_mtime",)
    in_process = True

    def __init__(self):
        self.created = []
        self._lock = threading.Lock()

    def create_new(self, fs, path: str, data: bytes) -> None:
        """Create-only under one lock: this filesystem lives in this process."""
        with self._lock:
            if fs.exists(path):
                raise FileExistsError(self.display(fs, path))
            fs.pipe_file(path, data)
            self.created.append(path)


@pytest.fixture(scope="module")
def seam():
    fsspec.register_implementation("seam", SeamFileSystem, clobber=True)
    store = SeamStore()
    stores.register(store)
    return store


def _uploaded(family, run: str) -> tuple:
    """The family's run directory under `run` with its latest save orphaned, every object saved at SAVED."""
    local = os.path.dirname(family.prefix)
    upload_tree(local, run)
    fs, run_path = storage.url_to_fs(run)
    name = os.path.basename(family.prefix)
    original = storage.read_bytes(fs, f"{run_path}/{name}.index")
    fs.rm(f"{run_path}/{name}.index")
    for path in fs.find(run_path):
        SeamFileSystem.store[path].created = SAVED
    return fs, run_path, name, original


def test_the_store_answers_for_its_scheme_and_filesystems(seam):
    fs, path = storage.url_to_fs("seam://lookup/x")
    assert stores.store_for("seam://lookup/x") is seam and stores.store_for_fs(fs) is seam
    assert storage.display(fs, path) == "seam:///lookup/x"
    assert stores.store_for("memory://x") is not seam and stores.store_for("/x") is not seam


def test_listing_reads_the_time_under_the_stores_own_key(seam):
    fs, directory = storage.url_to_fs("seam://listing/d")
    fs.pipe_file(f"{directory}/top.index", b"1")
    fs.pipe_file(f"{directory}/sub/x.index", b"12345")
    for path in fs.find(directory):
        SeamFileSystem.store[path].created = SAVED
    files, children = top_level(fs, directory)
    below = everything_under(fs, children[0])
    assert [(os.path.basename(p), size, mtime) for p, size, mtime, _ in files + below] == [
        ("top.index", 1, SAVED.timestamp()), ("x.index", 5, SAVED.timestamp())]


def test_a_create_only_write_goes_through_the_store(seam):
    fs, directory = storage.url_to_fs("seam://writes/run")
    fs.pipe_file(f"{directory}/ckpt-1.data-00000-of-00001", b"x" * 10)
    storage.write_new(fs, f"{directory}/ckpt-0.index", b"first")
    with pytest.raises(FileExistsError, match="seam:///writes/run/ckpt-0.index"):
        storage.write_new(fs, f"{directory}/ckpt-0.index", b"second")
    assert write_in_place(fs, f"{directory}/ckpt-1", b"index", {f"{directory}/ckpt-1.data-00000-of-00001": 10})
    with pytest.raises(IndexAppeared, match="identical bytes"):
        write_in_place(fs, f"{directory}/ckpt-1", b"index")
    assert seam.created[-2:] == [f"{directory}/ckpt-0.index", f"{directory}/ckpt-1.index"]
    assert storage.read_bytes(fs, f"{directory}/ckpt-0.index") == b"first"


@pytest.mark.tf
@pytest.mark.slow
def test_an_in_place_audit_lists_classifies_and_rebuilds_through_the_registered_store(seam, pristine_family,
                                                                                       tmp_path):
    fs, run_path, name, original = _uploaded(pristine_family("keras3_adam"), "seam://audit/run")
    report = str(tmp_path / "report")
    code = cli_main(["audit", "seam://audit/run", "--report-dir", report, "--min-age", "0", "--in-place"])
    assert code == 0
    records = {r.prefix: r for r in read_records(report)}
    orphaned = records[f"seam://{run_path}/{name}"]
    assert orphaned.status == "rebuilt" and not orphaned.staged, orphaned.reason
    assert orphaned.index_path == f"seam://{run_path}/{name}.index" and orphaned.mtime == SAVED.timestamp()
    assert f"{run_path}/{name}.index" in seam.created                   # written by the store's own create
    assert storage.read_bytes(fs, f"{run_path}/{name}.index") == original
    healthy = [r for r in records.values() if r.kind == "checkpoint" and r.prefix != orphaned.prefix]
    assert healthy and all(r.status == "healthy" and r.mtime == SAVED.timestamp() for r in healthy)
    assert "in_memory" in read_summary(report)["options"]["runner"]    # it lives in this process: so does the run
