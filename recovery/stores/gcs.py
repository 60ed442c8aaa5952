"""Google Cloud Storage through gcsfs (gs://, gcs://): the store declared once.

A create-only write is one multipart upload with `ifGenerationMatch=0`, sent through gcsfs's own
authenticated session rather than fsspec's `mode="create"`, so no library version can quietly turn
it into an overwrite; a file larger than one part goes up as a resumable upload whose session carries
`ifGenerationMatch=0`, which GCS checks when the upload completes (an object that appeared meanwhile
makes the last part 412, and the session is cancelled). An object's generation names its bytes: every
write makes a new one. The access probe is one listing call through google-auth and requests with
short timeouts, no retries.
"""

import contextlib
import json
import os
import uuid
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

GCS_ENDPOINT = "https://storage.googleapis.com"
# gcsfs's `base` is the JSON API root, ENDPOINT + JSON_API; uploads go to ENDPOINT + UPLOAD_API.
JSON_API = "/storage/v1/"
UPLOAD_API = "/upload/storage/v1/b/{}/o"
RESUMABLE_UNIT = 256 << 10      # every part of a resumable upload but the last is a multiple of this

CREDENTIALS_HINT = ("run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
                    "service-account key file (on GCE/GKE/Dataflow the VM's service account is used)")
NETWORK_HINT = ("check the network, proxy (HTTPS_PROXY) and firewall; for an emulator set "
                "STORAGE_EMULATOR_HOST=http://HOST:PORT")


class GcsStore(ObjectStore):
    name = "gcs"
    schemes = ("gs", "gcs")
    protocols = ("gs", "gcs")
    mtime_keys = ("mtime", "updated")     # gcsfs gives `updated` (RFC 3339) also as `mtime` (a datetime)
    requires = ("gcsfs", "google.auth", "requests")
    install_hint = "pip install gcsfs"

    def identity(self, entry: dict) -> str | None:
        """The object's generation: GCS gives every write of an object a new one, even of the same bytes."""
        generation = entry.get("generation")
        return f"generation {generation}" if generation not in (None, "") else None

    def create_new(self, fs, path: str, data: bytes) -> None:
        """One multipart upload with ifGenerationMatch=0: the server refuses it (412) if the object exists."""
        bucket, key, _ = fs.split_path(path)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps({'name': key})}"
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + (
                f"\r\n--{boundary}--\r\n").encode()
        with conditional_create(self, fs, path):
            fs.call("POST", upload_url(fs), bucket, uploadType="multipart", ifGenerationMatch="0", data=body,
                    headers={"Content-Type": f'multipart/related; boundary="{boundary}"'})

    def create_new_from(self, fs, path: str, source, size: int, part_bytes: int = UPLOAD_PART_BYTES) -> None:
        """A resumable upload with ifGenerationMatch=0, one part of `part_bytes` (a multiple of 256 KiB) in
        memory at a time; one multipart request when the file fits in one part."""
        if size <= part_bytes:
            self.create_new(fs, path, source.read(size))
            return
        bucket, key, _ = fs.split_path(path)
        step = max(RESUMABLE_UNIT, part_bytes // RESUMABLE_UNIT * RESUMABLE_UNIT)
        refuse_if_exists(self, fs, path)
        with conditional_create(self, fs, path):
            headers, _ = fs.call("POST", upload_url(fs), bucket, uploadType="resumable", ifGenerationMatch="0",
                                 json={"name": key}, headers={"X-Upload-Content-Type": "application/octet-stream",
                                                              "X-Upload-Content-Length": str(size)})
            session = headers["Location"]
            try:
                offset = 0
                for part in read_parts(source, size, step):
                    fs.call("PUT", session, data=part, headers={
                        "Content-Range": f"bytes {offset}-{offset + len(part) - 1}/{size}"})
                    offset += len(part)
            except BaseException:
                with contextlib.suppress(Exception):     # an abandoned session expires anyway, uncommitted
                    fs.call("DELETE", session)
                raise

    def transient(self, exc: BaseException) -> bool | None:
        kind = f"{type(exc).__module__}.{type(exc).__name__}"
        status = getattr(exc, "code", None) if kind == "gcsfs.retry.HttpError" else None
        if status is not None:
            return int(status) in RETRYABLE_STATUS
        names = {cls.__name__ for cls in type(exc).__mro__}          # requests, under google-auth
        if names & {"ChunkedEncodingError", "ReadTimeout", "ConnectTimeout"} or (
                "ConnectionError" in names and kind.startswith("requests.")):
            return True
        return None

    def probe_bucket(self, bucket: str, key: str, stage: dict) -> list:
        return _probe(bucket, key, stage)


def upload_url(fs) -> str:
    """The JSON API's upload URL (with a `{}` for the bucket) of the endpoint this gcsfs filesystem
    talks to, whatever chose it (endpoint_url, FSSPEC_GCS_ENDPOINT_URL, STORAGE_EMULATOR_HOST, the
    universe domain). gcsfs exposes the endpoint only inside its public `base`; a gcsfs that changes
    that shape stops here rather than uploading somewhere else (tests/recovery/stores/test_gcs.py)."""
    base = fs.base
    if not base.endswith(JSON_API):
        raise RuntimeError(f"gcsfs's GCSFileSystem.base is {base!r}, not ENDPOINT{JSON_API}: this gcsfs version "
                           "is not supported for create-only uploads")
    return base[:-len(JSON_API)] + UPLOAD_API


def _probe(bucket: str, key: str, stage: dict) -> list:
    import requests

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    emulator = None if emulator in ("", "default") else emulator   # gcsfs's own reading of the variable
    endpoint = (emulator if "://" in (emulator or "") else f"http://{emulator}") if emulator else GCS_ENDPOINT
    stage["now"] = "looking for Google credentials (on a machine outside GCP the metadata server may not answer)"
    credentials, who = (None, "the emulator") if emulator else _google_credentials()
    stage["now"] = f"resolving {urlparse(endpoint).hostname}"
    missing = [] if credentials is not None or emulator else [(f"no Google credentials found ({who})",
                                                               CREDENTIALS_HINT)]
    unreachable = unresolved(urlparse(endpoint).hostname)
    if unreachable:
        return [(f"cannot reach {endpoint}: {unreachable}", NETWORK_HINT)] + missing
    session = requests.Session()
    if credentials is not None:
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(credentials)
    stage["now"] = f"listing gs://{bucket}/{key} at {endpoint}"
    try:
        response = session.get(f"{endpoint}/storage/v1/b/{bucket}/o",
                               params={"prefix": key, "maxResults": 1, "fields": "items/name"},
                               timeout=(CONNECT_SECONDS, READ_SECONDS))
    except Exception as exc:  # noqa: BLE001 - refresh errors, connection errors, timeouts: all "cannot reach"
        if transient_error(exc, STORE):
            return [(f"{TRANSIENT}{endpoint}: {short(exc)}", RUN_AGAIN)]
        return [(f"cannot reach {endpoint}: {short(exc)}", NETWORK_HINT)] + missing
    if response.ok:
        return []
    message = _message(response)
    if response.status_code == 404 and (emulator or _is_json_error(response)):   # emulators answer bare 404s
        return [(f"bucket {bucket} not found at {endpoint} ({message or 'Not Found'})",
                 "check the bucket name (gsutil ls gs://BUCKET)")]
    if response.status_code in (401, 403):
        if missing:
            return [(f"access denied to an anonymous caller ({message}); {missing[0][0]}", missing[0][1])]
        if "project" in message.lower():
            return [(f"access denied ({message})", "set a quota project: `gcloud auth application-default "
                                                   "set-quota-project PROJECT`, or GOOGLE_CLOUD_PROJECT")]
        return [(f"permission denied for {who} ({message})",
                 "grant it roles/storage.objectViewer on the bucket (and roles/storage.objectCreator where "
                 "reports or indexes are written)")]
    if response.status_code == 429 or response.status_code >= 500:
        return [(f"{TRANSIENT}{endpoint} answered {response.status_code}: {message}", RUN_AGAIN)]
    return [(f"unexpected answer {response.status_code} from {endpoint}: {message}", NETWORK_HINT)]


def _google_credentials():
    """(credentials or None, who they are / where we looked), without any network call."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, project = google.auth.default(
            scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
    except DefaultCredentialsError as exc:
        looked = ("looked at GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default credentials "
                  "and the GCE metadata server")
        return None, looked + (f"; {exc}" if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") else "")
    who = getattr(credentials, "service_account_email", None) or "your application-default credentials"
    return credentials, who + (f", project {project}" if project else "")


def _message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return (response.text or response.reason or str(response.status_code)).strip()[:200]


def _is_json_error(response) -> bool:
    """A GCS (or emulator) answer carries a JSON error; a proxy or another server answering 404 does not."""
    try:
        return isinstance(response.json().get("error"), dict)
    except (ValueError, AttributeError):
        return False


STORE = GcsStore()
