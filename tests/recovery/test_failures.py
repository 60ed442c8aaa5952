"""The one failure policy (recovery/failures.py), on what classification makes of a real directory
TensorFlow wrote: a store that did not answer is `error` for every kind of element, anything else is
the step's refusal; the element itself is never changed. Faults at the real emulators' boundary, for
classification's own reads, are in test_storage_faults.py."""

import dataclasses
import errno
import os
import pickle

import pytest
from source_helpers import classify_local, orphan

from recovery import storage
from recovery.failures import RangeFailure, describe, failure_record, isolated, tree_failure
from recovery.records import CORRUPT, ERROR, HEALTHY, LISTING, STALE, STATE_FILE, UNRECOVERABLE, Record
from recovery.tasks import OrphanTask

pytestmark = pytest.mark.tf


@pytest.fixture
def judged(family_copy):
    """(orphan task, healthy record, state file record) of keras3_adam with its latest index lost."""
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    results = classify_local(os.path.dirname(family.prefix))
    task, healthy = results[family.prefix], results[family.siblings[0]]
    assert isinstance(task, OrphanTask) and healthy.status == HEALTHY
    return task, healthy, results[os.path.join(os.path.dirname(family.prefix), "checkpoint")]


def store_kept_failing(path: str) -> Exception:
    """What recovery.storage raises when the store keeps failing: a reset connection, as the clients see it."""
    try:
        with storage.unavailable_if_transient(storage.url_to_fs(path)[0], path):
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    except storage.StorageUnavailable as exc:
        return exc
    raise AssertionError("a reset connection is transient")


def unreadable(path: str) -> Exception:
    """What reading a file the filesystem cannot read raises (/proc/self/mem: EINVAL or EIO): not the
    store's silence, an answer."""
    os.symlink("/proc/self/mem", path)
    try:
        storage.read_bytes(storage.url_to_fs(path)[0], path)
    except OSError as exc:
        return exc
    raise AssertionError("/proc/self/mem cannot be read whole")


def test_a_store_that_did_not_answer_is_an_error_whatever_failed(judged):
    task, healthy, state = judged
    exc = store_kept_failing(task.prefix + ".data-00000-of-00001")
    for element in (task, healthy, dataclasses.replace(healthy, status=CORRUPT)):
        record = failure_record(element, "rebuild", exc)
        assert record.status == ERROR and record.needs_a_person is False
        assert record.reason.startswith("could not check: rebuild hit storage errors that persisted after retries")
        assert "Connection reset by peer" in record.reason and "run again" in record.reason
        assert record.command == f"ckpt-rescue inspect {record.prefix}"
    stage_only = dataclasses.replace(task, stage_only=True, status_if_staged=STALE, finding="stale index: x")
    assert failure_record(stage_only, "rebuild", exc).status == ERROR       # not a verdict, even a known one
    item = isolated("classification", _raise, (exc,), state.prefix, state.root, state.directory, STATE_FILE)
    assert (item.status, item.kind, item.directory) == (ERROR, STATE_FILE, state.directory)


def _raise(exc: Exception):
    raise exc


def test_anything_else_is_the_steps_refusal_and_keeps_a_verdict_already_made(judged, tmp_path):
    task, healthy, _ = judged
    exc = unreadable(str(tmp_path / "mem"))
    refused = failure_record(task, "rebuild", exc)
    assert refused.status == UNRECOVERABLE and refused.reason.startswith("rebuild failed: OSError: [Errno ")
    assert refused.reason.endswith(")") and " (at " in refused.reason          # where it was raised
    assert (refused.prefix, refused.data_bytes, refused.mtime) == (task.display_prefix, task.data_bytes, task.mtime)
    staged = dataclasses.replace(task, stage_only=True, status_if_staged=STALE, finding="stale index: x")
    assert failure_record(staged, "rebuild", exc).status == STALE
    assert failure_record(staged, "rebuild", exc).reason.startswith("stale index: x; rebuild failed: OSError")
    assert failure_record(healthy, "verification", exc).status == UNRECOVERABLE
    corrupt = dataclasses.replace(healthy, status=CORRUPT)
    assert failure_record(corrupt, "verification", exc).status == CORRUPT
    assert failure_record(corrupt, "verification", exc).checks == healthy.checks


def test_a_failure_makes_a_new_record_and_changes_nothing_it_was_given(judged):
    task, healthy, _ = judged
    before = pickle.dumps((task, healthy))
    failure_record(healthy, "verification", store_kept_failing(healthy.prefix))
    failure_record(task, "rebuild", ValueError("surprise"))
    assert pickle.dumps((task, healthy)) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        healthy.status = ERROR
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.stage_only = True
    with pytest.raises(AttributeError):
        healthy.checks.append("a check nobody made")        # tuples: the checks of a record are its own
    assert pickle.loads(pickle.dumps(healthy)) == healthy and pickle.loads(pickle.dumps(task)) == task


def test_a_part_of_a_tree_that_failed_is_named_as_a_user_would_type_it(tmp_path):
    root = str(tmp_path)
    listing = tree_failure(f"file://{root}", os.path.join(root, "runs"), "listing", unreadable(str(tmp_path / "m")))
    assert (listing.prefix, listing.root, listing.kind) == (os.path.join(root, "runs"), root, LISTING)
    assert listing.status == UNRECOVERABLE and listing.reason.startswith("listing failed: OSError")
    silent = tree_failure("s3://bucket/runs", "bucket/runs/a", "classification", store_kept_failing("s3://bucket/x"))
    assert (silent.prefix, silent.root, silent.status) == ("s3://bucket/runs/a", "s3://bucket/runs", ERROR)
    assert silent.kind == "checkpoint"


def test_describe_names_the_exception_and_where_it_was_raised(tmp_path):
    text = describe(unreadable(str(tmp_path / "m")))
    assert text.startswith("OSError: [Errno ") and text.endswith(")") and ".py:" in text
    assert describe(ValueError("no traceback")) == "ValueError: no traceback"


def test_a_range_failure_keeps_whether_the_store_failed_across_the_join(tmp_path):
    silent = RangeFailure.of("reading shard 0 bytes 0-10", store_kept_failing(str(tmp_path / "x")))
    assert silent.transient and isinstance(silent.as_exception(), storage.StorageUnavailable)
    lost = RangeFailure.of("reading", FileNotFoundError("gone"))
    assert not lost.transient and isinstance(lost.as_exception(), RuntimeError)
    record = Record("/r/ckpt-1", HEALTHY, "", "/r")
    assert failure_record(record, "verification", silent.as_exception()).status == ERROR
    assert failure_record(record, "verification", lost.as_exception()).status == UNRECOVERABLE
