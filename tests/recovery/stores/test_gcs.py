"""recovery/stores/gcs.py against real GCS emulators: the upload endpoint comes from gcsfs's public
`base` (a gcsfs that changes its shape fails here, not in a bucket), and the identity a listing gives
an object changes with every write of it, same bytes or not."""

import uuid

import gcsfs
import pytest
from storage_servers import fake_gcs_fs, fake_gcs_server, gcs_bucket, gcs_server  # noqa: F401

from recovery import storage
from recovery.stores import store_for, store_for_fs
from recovery.stores.gcs import STORE, upload_url


def test_the_upload_url_is_the_endpoint_gcsfs_talks_to(fake_gcs_server, gcs_server):  # noqa: F811
    given = gcsfs.GCSFileSystem(endpoint_url=fake_gcs_server, token="anon", skip_instance_cache=True)
    assert upload_url(given) == f"{fake_gcs_server}/upload/storage/v1/b/{{}}/o"
    from_environment, _ = storage.url_to_fs("gs://any-bucket")          # STORAGE_EMULATOR_HOST = gcs_server
    assert upload_url(from_environment) == f"{gcs_server}/upload/storage/v1/b/{{}}/o"


def test_a_create_only_upload_lands_at_the_endpoint_the_filesystem_reads(fake_gcs_fs):  # noqa: F811
    bucket = f"ckpt-{uuid.uuid4().hex[:12]}"
    fake_gcs_fs.mkdir(bucket)
    STORE.create_new(fake_gcs_fs, f"{bucket}/run/ckpt-1.index", b"created")
    assert fake_gcs_fs.cat(f"{bucket}/run/ckpt-1.index") == b"created"
    with pytest.raises(FileExistsError, match=f"gs://{bucket}/run/ckpt-1.index"):
        STORE.create_new(fake_gcs_fs, f"{bucket}/run/ckpt-1.index", b"again")


def _identities(fs, directory: str) -> dict:
    """name -> identity, from the two listings the audit makes (a delimiter listing and a recursive one)."""
    listed = {entry["name"]: STORE.identity(entry) for entry in fs.ls(directory, detail=True)}
    found = {name: STORE.identity(entry) for name, entry in fs.find(directory, detail=True).items()}
    assert listed == found
    return listed


@pytest.mark.parametrize("server", ["fake_gcs_fs", "gcs_bucket"])
def test_the_identity_changes_with_every_write_and_only_then(server, request):
    if server == "fake_gcs_fs":
        fs = request.getfixturevalue("fake_gcs_fs")
        directory = f"ckpt-{uuid.uuid4().hex[:12]}"
        fs.mkdir(directory)
    else:
        fs, directory = storage.url_to_fs(request.getfixturevalue("gcs_bucket"))
    assert store_for_fs(fs) is STORE
    a, b = f"{directory}/ckpt-1.index", f"{directory}/ckpt-2.index"
    fs.pipe_file(a, b"index one")
    fs.pipe_file(b, b"index one")
    first = _identities(fs, directory)
    assert None not in first.values() and first[a] != first[b]           # two objects, same bytes: two names
    assert _identities(fs, directory) == first                            # nothing written: nothing changed
    fs.pipe_file(a, b"index one")                                         # saved again, the same bytes
    fs.pipe_file(b, b"index two")                                         # saved again, other bytes, same size
    second = _identities(fs, directory)
    assert second[a] != first[a] and second[b] != first[b]


def test_gs_and_gcs_urls_are_this_store():
    assert store_for("gs://b/x") is STORE and store_for("gcs://b/x") is STORE
