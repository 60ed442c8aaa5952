"""Before any work: can every cloud path be reached, with credentials, in a few seconds?

The storage clients (gcsfs, s3fs) retry for minutes when the network, a credential or a bucket is
missing, and then fail with a traceback. Here each gs:// or s3:// path gets one bounded call
(short timeouts, no retries), all paths at once, and a usage error (exit 2) that names what is
missing and how to provide it. Local and memory:// paths are checked by the commands themselves.
"""

import dataclasses
import importlib.util
import os
import socket
import tempfile
import threading
import time
from urllib.parse import urlparse

from .cli import UsageError

CONNECT_SECONDS = 3.0
READ_SECONDS = 3.0
DNS_SECONDS = 2.0
TOTAL_SECONDS = 8.0   # every path is checked at the same time; the whole check ends within this
GCS_ENDPOINT = "https://storage.googleapis.com"
S3_SCHEMES = ("s3", "s3a")
GCS_SCHEMES = ("gs", "gcs")

GCS_CREDENTIALS_HINT = ("run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
                        "service-account key file (on GCE/GKE/Dataflow the VM's service account is used)")
GCS_NETWORK_HINT = ("check the network, proxy (HTTPS_PROXY) and firewall; for an emulator set "
                    "STORAGE_EMULATOR_HOST=http://HOST:PORT")
S3_CREDENTIALS_HINT = ("set AWS_PROFILE (see `aws configure` / `aws sso login`), or AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY; on EC2/EKS an instance or pod role is used")
S3_NETWORK_HINT = ("check the network and the region (AWS_DEFAULT_REGION); for MinIO, moto or another S3-compatible "
                   "store set AWS_ENDPOINT_URL=http://HOST:PORT")


# A store that answered, but with "try again" (429, 5xx, a reset connection): not a usage error. One
# retry inside the time budget; if it persists, exit 3 ("could not check"), like the run itself.
TRANSIENT = "the store kept failing (try again later): "
RUN_AGAIN = "run again; nothing was decided (exit code 3: could not check)"
RETRY_PAUSE = 1.0


def _transient_error(exc: BaseException) -> bool:
    """A reset or refused connection to a store whose name resolved (DNS is checked first): try again."""
    from recovery.storage import is_transient

    return is_transient(exc) and "timed out" not in str(exc).lower() and "timeout" not in type(exc).__name__.lower()


def check_access(paths: list) -> None:
    """Raise UsageError naming every (label, url) whose store cannot be reached or read.

    `paths` holds (label, url) pairs such as ("ROOT", "gs://b/runs") or ("--report-dir", "s3://b/r");
    entries whose url is None or local are skipped.
    """
    remote = [(label, url) for label, url in paths if url and _scheme(url) in GCS_SCHEMES + S3_SCHEMES]
    if not remote:
        return
    unique = list(dict.fromkeys(url for _, url in remote))
    deadline = time.monotonic() + TOTAL_SECONDS
    stages = {url: {"now": "starting"} for url in unique}
    running = {url: _in_background(_check_one, url, stages[url]) for url in unique}   # all at once
    problems = {}
    for url, (thread, outcome) in running.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            problems[url] = [(f"no answer within {TOTAL_SECONDS:.0f} s while {stages[url]['now']}",
                              "check the network and credentials; run again with --debug to see the storage "
                              "client's own logs")]
        elif "error" in outcome:
            problems[url] = [(f"the check itself failed: {_short(outcome['error'])}", "run again with --debug")]
        else:
            problems[url] = outcome["value"]
    for url, found in problems.items():
        if found and all(p.startswith(TRANSIENT) for p, _ in found) and \
                deadline - time.monotonic() > RETRY_PAUSE + READ_SECONDS + CONNECT_SECONDS:
            time.sleep(RETRY_PAUSE)
            try:
                problems[url] = _check_one(url, stages[url])
            except Exception as exc:  # noqa: BLE001 - reported as the check's own failure
                problems[url] = [(f"the check itself failed: {_short(exc)}", "run again with --debug")]
    grouped = {}   # the same problems (no network, no credentials) usually hit every path: say them once
    for label, url in remote:
        if problems[url]:
            grouped.setdefault(tuple(problems[url]), []).append(f"{label} {url}")
    if grouped:
        lines = ["cannot access cloud storage (checked before any work; nothing was read or written):"]
        for found, where in grouped.items():
            lines.append(f"  {', '.join(dict.fromkeys(where))}:")
            for problem, fix in found:
                lines.append(f"    {problem}")
                lines.append(f"      fix: {fix}")
        every = [p for found in grouped for p, _ in found]
        if all(p.startswith(TRANSIENT) for p in every):
            from recovery.storage import StorageUnavailable

            raise StorageUnavailable("\n".join(lines))
        raise UsageError("\n".join(lines))


def check_output_dir(label: str, url: str) -> None:
    """A local output directory must be creatable and writable; probed with a temporary entry, removed at once.

    Remote directories need no parents; their access is checked by check_access.
    """
    if "://" in url and not url.startswith("file://"):
        return
    path = os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{label} {url}: {existing} is a file, so no directory can be made there")
    try:
        if existing == path:
            fd, probe = tempfile.mkstemp(prefix=".ckpt-rescue-probe-", dir=path)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".ckpt-rescue-probe-", dir=existing))
    except OSError as exc:
        where = path if existing == path else f"{existing} (to create {path})"
        raise UsageError(f"{label} {url}: cannot write in {where}: {exc.strerror or exc}") from None


def check_output_file(label: str, url: str) -> None:
    """A local output file must not exist yet (nothing is overwritten) and its directory must be writable."""
    if "://" in url and not url.startswith("file://"):
        return
    path = os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)
    if os.path.isdir(path):
        raise UsageError(f"{label} {url} is a directory; give a file name, e.g. {os.path.join(url, 'ckpt.index')}")
    if os.path.lexists(path):
        raise UsageError(f"{label} {url} already exists and is never overwritten; choose another name")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError(f"{label} {url}: no such directory {directory} (it is not created for you)")
    check_output_dir(label, directory)


@dataclasses.dataclass
class TreeSize:
    """What a bounded walk of local roots saw: `over` when it stopped at a limit before the end."""

    files: int
    bytes: int
    over: bool


def local_tree_size(roots: list, max_files: int, max_bytes: int) -> TreeSize | None:
    """Files and bytes under local roots, walking no further than the first limit passed; None for a
    remote root (its listing costs requests, and a bucket is seldom small).

    The audit runs small trees in one process: starting worker processes costs seconds."""
    paths = []
    for root in roots:
        if "://" in root and not root.startswith("file://"):
            return None
        paths.append(root[len("file://"):] if root.startswith("file://") else root)
    seen = TreeSize(0, 0, False)
    todo = list(paths)
    while todo:
        try:
            entries = os.scandir(todo.pop())
        except OSError:
            continue                     # unreadable: the listing itself will say so
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                        continue
                    size = entry.stat().st_size
                except OSError:
                    size = 0             # a dangling link: still a file for the listing
                seen.files += 1
                seen.bytes += size
                if seen.files > max_files or seen.bytes > max_bytes:
                    seen.over = True
                    return seen
    return seen


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _check_one(url: str, stage: dict) -> list:
    """[(problem, fix)] for one URL; empty when one listing call under it succeeded. `stage` says what is
    being waited for, in case the whole check runs out of time."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        return [("no bucket name in the URL", "write it as SCHEME://BUCKET/PATH")]
    gcs = _scheme(url) in GCS_SCHEMES
    needed = ("gcsfs", "google.auth", "requests") if gcs else ("s3fs", "botocore")   # what fsspec will need
    missing = [name for name in needed if importlib.util.find_spec(name) is None]   # found, not imported: fast
    if missing:
        return [(f"{_scheme(url)}:// paths need {', '.join(missing)}, not installed",
                 f"pip install {'gcsfs' if gcs else 's3fs'}")]
    return _check_gcs(bucket, key, stage) if gcs else _check_s3(bucket, key, stage)


def _in_background(function, *args):
    """(daemon thread, outcome dict): a check that hangs must not keep the process from exiting."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except Exception as exc:  # noqa: BLE001 - reported as the check's own failure
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"preflight {args[:1]}")
    thread.start()
    return thread, outcome


def _resolves(host: str) -> str | None:
    """None when `host` resolves within DNS_SECONDS, else why not (getaddrinfo itself has no timeout)."""
    thread, outcome = _in_background(socket.getaddrinfo, host, None)
    thread.join(DNS_SECONDS)
    if thread.is_alive():
        return f"DNS lookup of {host} did not answer within {DNS_SECONDS:.0f} s"
    error = outcome.get("error")
    if isinstance(error, OSError):
        return f"DNS lookup of {host} failed ({error.strerror or error})"
    if error is not None:
        return f"DNS lookup of {host} failed ({_short(error)})"
    return None


# --- Google Cloud Storage -------------------------------------------------------------------------

def _check_gcs(bucket: str, key: str, stage: dict) -> list:
    import requests

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    emulator = None if emulator in ("", "default") else emulator   # gcsfs's own reading of the variable
    endpoint = (emulator if "://" in (emulator or "") else f"http://{emulator}") if emulator else GCS_ENDPOINT
    stage["now"] = "looking for Google credentials (on a machine outside GCP the metadata server may not answer)"
    credentials, who = (None, "the emulator") if emulator else _google_credentials()
    stage["now"] = f"resolving {urlparse(endpoint).hostname}"
    missing = [] if credentials is not None or emulator else [(f"no Google credentials found ({who})",
                                                               GCS_CREDENTIALS_HINT)]
    unreachable = _resolves(urlparse(endpoint).hostname)
    if unreachable:
        return [(f"cannot reach {endpoint}: {unreachable}", GCS_NETWORK_HINT)] + missing
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
        if _transient_error(exc):
            return [(f"{TRANSIENT}{endpoint}: {_short(exc)}", RUN_AGAIN)]
        return [(f"cannot reach {endpoint}: {_short(exc)}", GCS_NETWORK_HINT)] + missing
    if response.ok:
        return []
    message = _gcs_message(response)
    if response.status_code == 404 and (emulator or _is_gcs_json_error(response)):   # emulators answer bare 404s
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
    return [(f"unexpected answer {response.status_code} from {endpoint}: {message}", GCS_NETWORK_HINT)]


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


def _gcs_message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return (response.text or response.reason or str(response.status_code)).strip()[:200]


def _is_gcs_json_error(response) -> bool:
    """A GCS (or emulator) answer carries a JSON error; a proxy or another server answering 404 does not."""
    try:
        return isinstance(response.json().get("error"), dict)
    except (ValueError, AttributeError):
        return False


# --- Amazon S3 and compatible stores --------------------------------------------------------------

def _check_s3(bucket: str, key: str, stage: dict) -> list:
    import botocore.config
    import botocore.exceptions
    import botocore.session

    session = botocore.session.get_session()
    stage["now"] = "looking for AWS credentials (the instance metadata service may not answer)"
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:   # a profile that does not exist, a broken config file
        return [(f"AWS configuration: {_short(exc)}", S3_CREDENTIALS_HINT)]
    config = botocore.config.Config(connect_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS,
                                     retries={"total_max_attempts": 1, "mode": "standard"})
    client = session.create_client("s3", config=config)
    endpoint = client.meta.endpoint_url
    missing = [] if credentials is not None else [
        ("no AWS credentials found (looked at AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials, ~/.aws/config "
         "and the instance metadata service)", S3_CREDENTIALS_HINT)]
    stage["now"] = f"resolving {urlparse(endpoint).hostname}"
    unreachable = _resolves(urlparse(endpoint).hostname)
    if unreachable:
        return [(f"cannot reach {endpoint}: {unreachable}", S3_NETWORK_HINT)] + missing
    if missing:
        return missing
    stage["now"] = f"listing s3://{bucket}/{key} at {endpoint}"
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "") or str(exc)
        if code == "NoSuchBucket":
            return [(f"bucket {bucket} not found at {endpoint}", "check the bucket name (and AWS_ENDPOINT_URL)")]
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "TokenRefreshRequired"):
            return [(f"the AWS credentials were rejected ({code}: {message})", S3_CREDENTIALS_HINT)]
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return [(f"permission denied ({code}: {message})",
                     f"the identity needs s3:ListBucket and s3:GetObject on {bucket} (and s3:PutObject where "
                     "reports or indexes are written)")]
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status == 429 or status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return [(f"{TRANSIENT}{endpoint} answered {code or status}: {message}", RUN_AGAIN)]
        return [(f"unexpected answer from {endpoint}: {code} {message}", S3_NETWORK_HINT)]
    except botocore.exceptions.BotoCoreError as exc:
        if _transient_error(exc):
            return [(f"{TRANSIENT}{endpoint}: {_short(exc)}", RUN_AGAIN)]
        return [(f"cannot reach {endpoint}: {_short(exc)}", S3_NETWORK_HINT)]
    return []


def _short(exc: BaseException) -> str:
    """The cause in a few words: HTTP clients wrap it in several layers of pool and URL text."""
    text = str(exc)
    waited = f"no answer within {CONNECT_SECONDS:.0f} s (connect) or {READ_SECONDS:.0f} s (read)"
    for needle, said in (("Connection refused", "connection refused"), ("timed out", waited),
                         ("timeout", waited), ("Name or service not known", "DNS lookup failed"),
                         ("Network is unreachable", "network is unreachable")):
        if needle.lower() in text.lower():
            return f"{said} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
