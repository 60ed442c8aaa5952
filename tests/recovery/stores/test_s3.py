"""recovery/stores/s3.py against moto's S3 server: the identity a listing gives an object follows its
bytes (ETag and size), and the probe names a missing bucket in one call."""

from storage_servers import s3_bucket, s3_server  # noqa: F401

from recovery import storage
from recovery.stores import store_for, store_for_fs
from recovery.stores.s3 import STORE


def _identities(fs, directory: str) -> dict:
    """name -> identity, from the two listings the audit makes (a delimiter listing and a recursive one)."""
    fs.invalidate_cache()
    listed = {entry["name"]: STORE.identity(entry) for entry in fs.ls(directory, detail=True)}
    found = {name: STORE.identity(entry) for name, entry in fs.find(directory, detail=True).items()}
    assert listed == found
    return listed


def test_the_identity_follows_the_bytes(s3_bucket):  # noqa: F811
    fs, bucket = storage.url_to_fs(s3_bucket)
    assert store_for_fs(fs) is STORE
    a, b, c = f"{bucket}/ckpt-1.index", f"{bucket}/ckpt-2.index", f"{bucket}/ckpt-3.index"
    fs.pipe_file(a, b"index one")
    fs.pipe_file(b, b"index one")
    fs.pipe_file(c, b"index one")
    first = _identities(fs, bucket)
    assert None not in first.values() and first[a] == first[b]            # same bytes, same name for them
    assert _identities(fs, bucket) == first
    fs.pipe_file(a, b"index one")                                          # saved again, the same bytes
    fs.pipe_file(b, b"index two")                                          # other bytes, same size
    fs.pipe_file(c, b"index one!")                                         # other bytes, other size
    second = _identities(fs, bucket)
    assert second[a] == first[a] and second[b] != first[b] and second[c] != first[c]


def test_the_probe_answers_for_a_bucket_that_exists_and_names_one_that_does_not(s3_bucket):  # noqa: F811
    stage = {}
    assert STORE.probe(f"{s3_bucket}/runs", stage) == []
    assert "listing" in stage["now"]
    missing = STORE.probe("s3://no-such-bucket-ckpt-rescue/runs", {})
    assert len(missing) == 1 and "bucket no-such-bucket-ckpt-rescue not found" in missing[0][0]
    assert STORE.probe("s3:///runs", {})[0][0] == "no bucket name in the URL"


def test_s3_and_s3a_urls_are_this_store():
    assert store_for("s3://b/x") is STORE and store_for("s3a://b/x") is STORE
