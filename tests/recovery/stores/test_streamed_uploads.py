"""create_new_from: a create-only upload that never holds the whole file, against the emulators (moto's S3
server, which enforces If-None-Match: * on CompleteMultipartUpload; fake-gcs-server behind the fault proxy).
A file larger than one part goes up in parts and arrives whole; an object that exists is never replaced,
whether it was there at the start or appeared while the parts went up; and nothing is left behind.

fake-gcs-server 1.54 (the one the wrapper bundles) ignores preconditions on resumable uploads (fixed upstream
later, fsouza/fake-gcs-server#2260). GCS itself checks the session's ifGenerationMatch=0 when the upload
completes, answering 412; for an object that appears meanwhile the proxy gives that answer in the
emulator's place, and the test checks that the session was opened with the precondition."""

import io
import os
import urllib.parse
import uuid

import pytest
from storage_servers import (  # noqa: F401
    _gcs_proxy,
    _s3_proxy,
    fake_gcs_server,
    faulty_gcs,
    faulty_s3,
    s3_bucket,
    s3_server,
)

from recovery import storage
from recovery.stores import gcs, s3

GCS_PART = 256 << 10          # the smallest part a resumable upload takes
S3_PART = 5 << 20             # the smallest part S3 takes (but the last)


class AppearsMeanwhile(io.BytesIO):
    """The bytes to upload; another writer creates the target while the second part is being read."""

    def __init__(self, data: bytes, fs, path: str, part: int):
        super().__init__(data)
        self.fs, self.path, self.part, self.read_so_far = fs, path, part, 0

    def read(self, size=-1):
        if self.read_so_far <= self.part < self.read_so_far + (size if size and size > 0 else 1 << 62):
            self.fs.pipe_file(self.path, b"the other writer's")
        chunk = super().read(size)
        self.read_so_far += len(chunk)
        return chunk


def _bucket(scheme: str) -> tuple:
    fs, _ = storage.url_to_fs(f"{scheme}://any")
    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return fs, name


def _requests(proxy) -> list:
    return [(method, urllib.parse.unquote(path)) for method, path, _ in proxy.log]


@pytest.mark.parametrize("scheme, part", [("gs", GCS_PART), ("s3", S3_PART)])
def test_a_file_larger_than_one_part_goes_up_in_parts(scheme, part, request):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    fs, bucket = _bucket(scheme)
    data = os.urandom(2 * part + 1234)
    proxy.log.clear()
    storage.write_new_from(fs, f"{bucket}/out/ckpt.data-00000-of-00001", io.BytesIO(data), len(data), part_bytes=part)
    fs.invalidate_cache()
    assert fs.cat_file(f"{bucket}/out/ckpt.data-00000-of-00001") == data
    sent = _requests(proxy)
    if scheme == "gs":
        opened = [p for m, p in sent if m == "POST" and "uploadType=resumable" in p]
        assert len(opened) == 1 and "ifGenerationMatch=0" in opened[0]
        assert sum(1 for m, p in sent if m == "PUT" and "upload_id=" in p) == 3
    else:
        assert sum(1 for m, p in sent if m == "PUT" and "partNumber=" in p) == 3
        assert sum(1 for m, p in sent if m == "POST" and "uploadId=" in p) == 1      # completed once
    assert fs.find(bucket) == [f"{bucket}/out/ckpt.data-00000-of-00001"]


@pytest.mark.parametrize("scheme, part", [("gs", GCS_PART), ("s3", S3_PART)])
def test_an_object_that_exists_is_never_replaced(scheme, part, request):
    request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    fs, bucket = _bucket(scheme)
    path = f"{bucket}/ckpt.data-00000-of-00001"
    fs.pipe_file(path, b"mine")
    data = os.urandom(2 * part + 10)
    with pytest.raises(FileExistsError, match=f"{scheme}://{path}"):
        storage.write_new_from(fs, path, io.BytesIO(data), len(data), part_bytes=part)
    fs.invalidate_cache()
    assert fs.cat_file(path) == b"mine"


@pytest.mark.parametrize("scheme, part", [("gs", GCS_PART), ("s3", S3_PART)])
def test_an_object_that_appears_while_the_parts_go_up_is_never_replaced(scheme, part, request):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    fs, bucket = _bucket(scheme)
    path = f"{bucket}/ckpt.data-00000-of-00001"
    data = os.urandom(2 * part + 10)
    if scheme == "gs":      # GCS answers the completing part 412; this emulator version does not (see above)
        proxy.fail(412, method="PUT", path=r"upload_id=", after=2)
    with pytest.raises(FileExistsError, match=f"{scheme}://{path}"):
        storage.write_new_from(fs, path, AppearsMeanwhile(data, fs, path, part), len(data), part_bytes=part)
    fs.invalidate_cache()
    assert fs.cat_file(path) == b"the other writer's"
    sent = _requests(proxy)
    if scheme == "gs":
        assert any(m == "POST" and "ifGenerationMatch=0" in p for m, p in sent)
        assert any(m == "DELETE" and "upload_id=" in p for m, p in sent)          # the session is cancelled
    else:
        assert any(m == "DELETE" and "uploadId=" in p for m, p in sent)           # the upload is aborted
        assert fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_the_stores_declare_their_part_limits():
    assert gcs.RESUMABLE_UNIT == 256 << 10
    assert (s3.MIN_PART_BYTES, s3.MAX_PARTS) == (5 << 20, 10_000)
