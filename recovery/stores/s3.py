"""Amazon S3 and compatible stores through s3fs (s3://, s3a://): the store declared once.

A create-only write is one PutObject with `If-None-Match: *` through s3fs's own botocore client, so
whatever s3fs version is installed it is never an overwrite; a file larger than one part is a multipart
upload completed with `If-None-Match: *` (S3 refuses the completion, 412, when the key appeared
meanwhile, and the upload is aborted; one PutObject takes at most 5 GB). An object's ETag with its size names
its bytes (an MD5 of them, or of its parts). The access probe is one ListObjectsV2 with short
timeouts and a single attempt.
"""

import contextlib
from urllib.parse import urlparse

from .base import (
    RETRYABLE_STATUS,
    UPLOAD_PART_BYTES,
    ObjectStore,
    conditional_create,
    read_parts,
    refuse_if_exists,
)
from .probing import CONNECT_SECONDS, READ_SECONDS, RUN_AGAIN, TRANSIENT, short, transient_error, unresolved

CREDENTIALS_HINT = ("set AWS_PROFILE (see `aws configure` / `aws sso login`), or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY; on EC2/EKS an instance or pod role is used")
NETWORK_HINT = ("check the network and the region (AWS_DEFAULT_REGION); for MinIO, moto or another S3-compatible "
                "store set AWS_ENDPOINT_URL=http://HOST:PORT")
# Error codes S3 (and compatible stores) use for "slow down, try again".
MIN_PART_BYTES, MAX_PARTS = 5 << 20, 10_000     # S3's limits on a multipart upload's parts
RETRYABLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                             "ServiceUnavailable", "InternalError", "TooManyRequests", "RequestLimitExceeded"})


class S3Store(ObjectStore):
    name = "s3"
    schemes = ("s3", "s3a")
    protocols = ("s3", "s3a")
    mtime_keys = ("LastModified",)
    requires = ("s3fs", "botocore")
    install_hint = "pip install s3fs"

    def identity(self, entry: dict) -> str | None:
        """ETag and size. A single-part upload's ETag is the MD5 of its bytes, a multipart one's the MD5
        of its parts' MD5s: the same bytes saved again keep it, other bytes change it."""
        etag, size = entry.get("ETag"), entry.get("size", entry.get("Size"))
        return f"etag {etag.strip(chr(34))} size {size}" if etag and size is not None else None

    def create_new(self, fs, path: str, data: bytes) -> None:
        """One PutObject with If-None-Match: *: the server refuses it (412) if the key exists."""
        bucket, key, _ = fs.split_path(path)
        with conditional_create(self, fs, path):
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")

    def create_new_from(self, fs, path: str, source, size: int, part_bytes: int = UPLOAD_PART_BYTES) -> None:
        """A multipart upload completed with If-None-Match: *, one part in memory at a time (parts of at
        least 5 MiB, at most 10,000 of them); one PutObject when the file fits in one part."""
        if size <= part_bytes:
            self.create_new(fs, path, source.read(size))
            return
        bucket, key, _ = fs.split_path(path)
        step = max(part_bytes, MIN_PART_BYTES, -(-size // MAX_PARTS))
        where = {"Bucket": bucket, "Key": key}
        refuse_if_exists(self, fs, path)
        with conditional_create(self, fs, path):
            upload = fs.call_s3("create_multipart_upload", **where)["UploadId"]
            try:
                parts = []
                for number, part in enumerate(read_parts(source, size, step), start=1):
                    answer = fs.call_s3("upload_part", **where, UploadId=upload, PartNumber=number, Body=part)
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                fs.call_s3("complete_multipart_upload", **where, UploadId=upload, MultipartUpload={"Parts": parts},
                           IfNoneMatch="*")
            except BaseException:
                with contextlib.suppress(Exception):     # the parts uploaded so far are dropped
                    fs.call_s3("abort_multipart_upload", **where, UploadId=upload)
                raise

    def transient(self, exc: BaseException) -> bool | None:
        response = getattr(exc, "response", None)
        if type(exc).__name__ == "ClientError" and isinstance(response, dict):       # botocore
            meta = response.get("ResponseMetadata", {})
            return (meta.get("HTTPStatusCode") in RETRYABLE_STATUS
                    or response.get("Error", {}).get("Code") in RETRYABLE_CODES)
        if {cls.__name__ for cls in type(exc).__mro__} & {"HTTPClientError", "ReadTimeout", "ConnectTimeout"}:
            return True
        return None

    def probe_bucket(self, bucket: str, key: str, stage: dict) -> list:
        return _probe(bucket, key, stage)


def _probe(bucket: str, key: str, stage: dict) -> list:
    import botocore.config
    import botocore.exceptions
    import botocore.session

    session = botocore.session.get_session()
    stage["now"] = "looking for AWS credentials (the instance metadata service may not answer)"
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:   # a profile that does not exist, a broken config file
        return [(f"AWS configuration: {short(exc)}", CREDENTIALS_HINT)]
    config = botocore.config.Config(connect_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS,
                                     retries={"total_max_attempts": 1, "mode": "standard"})
    client = session.create_client("s3", config=config)
    endpoint = client.meta.endpoint_url
    missing = [] if credentials is not None else [
        ("no AWS credentials found (looked at AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials, ~/.aws/config "
         "and the instance metadata service)", CREDENTIALS_HINT)]
    stage["now"] = f"resolving {urlparse(endpoint).hostname}"
    unreachable = unresolved(urlparse(endpoint).hostname)
    if unreachable:
        return [(f"cannot reach {endpoint}: {unreachable}", NETWORK_HINT)] + missing
    if missing:
        return missing
    stage["now"] = f"listing s3://{bucket}/{key} at {endpoint}"
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        return _refusal(exc, bucket, endpoint)
    except botocore.exceptions.BotoCoreError as exc:
        if transient_error(exc, STORE):
            return [(f"{TRANSIENT}{endpoint}: {short(exc)}", RUN_AGAIN)]
        return [(f"cannot reach {endpoint}: {short(exc)}", NETWORK_HINT)]
    return []


def _refusal(exc, bucket: str, endpoint: str) -> list:
    """What an S3 error answer to the probe's listing means, and its fix."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "") or str(exc)
    if code == "NoSuchBucket":
        return [(f"bucket {bucket} not found at {endpoint}", "check the bucket name (and AWS_ENDPOINT_URL)")]
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
        return [(f"the AWS credentials were rejected ({code}: {message})", CREDENTIALS_HINT)]
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return [(f"permission denied ({code}: {message})",
                 f"the identity needs s3:ListBucket and s3:GetObject on {bucket} (and s3:PutObject where "
                 "reports or indexes are written)")]
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if status == 429 or status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        return [(f"{TRANSIENT}{endpoint} answered {code or status}: {message}", RUN_AGAIN)]
    return [(f"unexpected answer from {endpoint}: {code} {message}", NETWORK_HINT)]


STORE = S3Store()
