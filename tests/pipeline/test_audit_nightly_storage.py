"""The nightly audit that remembers, on the GCS and S3 emulators behind the tests' proxy, which logs
every request: an unchanged directory is carried forward without one request for any of its objects
(neither its bytes nor its metadata), a changed one is read and judged, a lost index comes back from a
vault in a bucket byte-identical, and a previous `error` is judged again rather than carried."""

import os
import re
import urllib.parse
import uuid

import pytest
from nightly_helpers import audit_night, iso_night
from storage_servers import upload_tree

from recovery import storage
from recovery.records import ERROR, HEALTHY, PERSISTS, REBUILT, RESOLVED

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _bucket(scheme: str) -> str:
    url = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(url)
    fs.mkdir(path)
    return url


def _object_requests(proxy, bucket_url: str, under: str) -> list:
    """(method, object) of every request for an object (its bytes or its metadata, not a listing) whose
    name starts with `under` in the bucket."""
    bucket = bucket_url.split("://", 1)[1]
    found = []
    for method, path, _ in proxy.log:
        path = urllib.parse.unquote(path)
        if bucket_url.startswith("gs://"):
            match = re.search(rf"/b/{re.escape(bucket)}/o/({re.escape(under)}[^?]*)", path)
        else:
            match = re.search(rf"^/{re.escape(bucket)}/({re.escape(under)}[^?]*)", path)
        if match:
            found.append((method, match.group(1)))
    return found


@pytest.fixture
def tree(pristine_family):
    return {name: os.path.dirname(pristine_family(name).prefix) for name in ("keras3_adam", "sharded")}


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_an_unchanged_directory_is_not_read_at_all_and_a_changed_one_is(scheme, tree, request):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    data, memory = _bucket(scheme), _bucket(scheme)
    root, vault, reports = f"{data}/runs", f"{memory}/vault", f"{memory}/reports"
    for name, local in tree.items():
        upload_tree(local, f"{root}/{name}")
    first = audit_night(root, reports, 1, vault=vault)
    assert first.code == 0 and {r.status for r in first.records.values()} == {HEALTHY}
    assert first.summary["vault"]["kept"] == 5
    assert _object_requests(proxy, data, "runs/sharded/")            # night 1 read it

    fs, path = storage.url_to_fs(root)
    lost_index = f"{path}/keras3_adam/ckpt-3.index"
    lost = fs.cat_file(lost_index)
    fs.rm_file(lost_index)
    proxy.log.clear()
    second = audit_night(root, reports, 2, vault=vault)
    assert _object_requests(proxy, data, "runs/sharded/") == []      # carried: not one request for its objects
    read = {name for _, name in _object_requests(proxy, data, "runs/keras3_adam/")}
    assert "runs/keras3_adam/ckpt-2.index" in read and "runs/keras3_adam/ckpt-3.data-00000-of-00001" in read
    assert second.summary["directories"] == {"listed": 2, "carried": 1, "judged": 1, "gone": 0}
    for prefix, record in second.records.items():
        if "/sharded/" in prefix:
            assert (record.status, record.change, record.carried_from, record.bytes_scanned) == (
                HEALTHY, PERSISTS, iso_night(1), 0)
    rebuilt = second.records[f"{root}/keras3_adam/ckpt-3"]
    assert rebuilt.status == REBUILT and rebuilt.source.startswith("vaulted index of ckpt-3 as it was on")
    assert storage.read_bytes(*storage.url_to_fs(rebuilt.index_path)) == lost
    assert rebuilt.index_path.startswith(f"{reports}/night-2/rebuilt/")

    proxy.log.clear()
    third = audit_night(root, reports, 3, vault=vault)               # nothing changed: both carried
    assert third.summary["directories"]["carried"] == 2 and _object_requests(proxy, data, "runs/") == []
    carried = third.records[f"{root}/keras3_adam/ckpt-3"]
    assert (carried.status, carried.carried_from) == (REBUILT, iso_night(2))
    assert storage.read_bytes(*storage.url_to_fs(carried.index_path)) == lost    # staged again from the vault


def test_a_previous_error_is_judged_again_not_carried(tree, faulty_s3, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")       # botocore's own retries, fewer to keep the test short
    data, memory = _bucket("s3"), _bucket("s3")
    root, vault, reports = f"{data}/runs", f"{memory}/vault", f"{memory}/reports"
    upload_tree(tree["sharded"], f"{root}/sharded")
    faulty_s3.fail(503, times=None, method="GET", path=r"runs/sharded/sharded-100\.index$")
    first = audit_night(root, reports, 1, vault=vault)
    assert first.code == 3 and first.records[f"{root}/sharded/sharded-100"].status == ERROR
    faulty_s3.clear()
    faulty_s3.log.clear()
    second = audit_night(root, reports, 2, vault=vault)
    assert second.summary["directories"] == {"listed": 1, "carried": 0, "judged": 1, "gone": 0}
    assert ("GET", "runs/sharded/sharded-100.index") in _object_requests(faulty_s3, data, "runs/sharded/")
    assert second.status(f"{root}/sharded/sharded-100") == (HEALTHY, RESOLVED, iso_night(2))
    assert second.code == 0
