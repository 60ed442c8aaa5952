"""transforms/memory.py alone, on TestPipeline: a rebuild's record compared with the previous night's
and remembered in tonight's snapshot of its directory (its index kept in the vault); the directories
the previous run listed that are gone, found by a join of keys, each a `deleted` record per thing it held."""

import json
import os
import shutil

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from nightly_helpers import NIGHT, T0
from source_helpers import orphan

from recovery import storage
from recovery.listing import everything_under
from recovery.memory.directory import Judging, night_of
from recovery.memory.nightly import Nightly, PreviousRun, iso
from recovery.memory.snapshots import MemoryStore
from recovery.prefix_steps import AuditSettings, plan_orphan, rebuild_in_one
from recovery.records import DELETED, NEW, REBUILT
from recovery.vault import Vault
from transforms.memory import NIGHT as NIGHT_TAG
from transforms.memory import REBUILD, DirectoryKey, GoneDirectories, Remember

pytestmark = pytest.mark.tf


def _night(directory: str, nightly: Nightly):
    fs, path = storage.url_to_fs(directory)
    return night_of(fs, os.path.dirname(path), path, everything_under(fs, path), nightly, Judging())


def _nights(tmp_path) -> tuple:
    vault = str(tmp_path / "vault")
    Vault.open(vault, create=True)                       # the launcher makes it before any work
    first = Nightly("night-1", T0, str(tmp_path / "r1"), vault=vault)
    previous = PreviousRun("night-1", str(tmp_path / "r1"), iso(T0), iso(T0 + 60))
    second = Nightly("night-2", T0 + NIGHT, str(tmp_path / "r2"), vault=vault, compare=vault, previous=previous)
    return vault, first, second


def test_a_rebuilds_record_is_compared_and_remembered_with_its_index(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    directory = os.path.dirname(family.prefix)
    vault, first, second = _nights(tmp_path)
    assert not _night(directory, first).orphans
    original = orphan(family.prefix)
    tonight = _night(directory, second)
    [task] = tonight.orphans
    settings = AuditSettings(second.report_dir, vault=vault)
    fs, _ = storage.url_to_fs(task.root)
    record = rebuild_in_one(fs, task, plan_orphan(fs, task, settings), settings, 0.0)
    assert record.status == REBUILT and record.source.startswith("vaulted index of")

    def check(found):
        [remembered] = found
        assert (remembered.change, remembered.since) == (NEW, iso(T0 + NIGHT))
        assert any(c.startswith("staged index kept in the vault as ") for c in remembered.checks)

    with test_pipeline.TestPipeline() as p:
        out = (p | beam.Create([record])
               | beam.ParDo(Remember(second, REBUILD)).with_outputs(NIGHT_TAG, main="records"))
        assert_that(out.records, check)
        assert_that(out[NIGHT_TAG], lambda counts: all(c.vault_failed == 0 for c in counts), label="counts")
    snapshot = MemoryStore(vault).latest(directory, leave_out_run="later")
    assert snapshot.head.run_id == "night-2" and snapshot.complete
    assert snapshot.current()[(family.prefix, "checkpoint")].status == REBUILT
    with open(record.index_path, "rb") as f:
        assert f.read() == original


def test_directories_gone_since_the_previous_run_become_deleted_records(family_copy, tmp_path):
    kept, gone = (os.path.dirname(family_copy(name).prefix) for name in ("keras3_adam", "sharded"))
    root = os.path.dirname(os.path.commonpath([kept, gone]))
    vault, first, second = _nights(tmp_path)
    held = {r.prefix for r in _night(gone, first).records}
    _night(kept, first)
    previous = tmp_path / "directories.jsonl"
    previous.write_text("".join(json.dumps({"root": root, "directory": d}) + "\n" for d in (kept, gone)))
    shutil.rmtree(gone)

    def check(found):
        assert {r.prefix for r in found} == held
        assert {(r.status, r.change, r.since) for r in found} == {(DELETED, NEW, iso(T0 + NIGHT))}

    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create([DirectoryKey(root, kept)]) | GoneDirectories(second, str(previous), [root])
        assert_that(out.records, check)
        assert_that(out[NIGHT_TAG], lambda counts: sum(c.gone for c in counts) == 1 or [][0], label="gone")
