"""Before a Flink submission: is the cluster there, does it run the Flink version the job is built for, can
its task managers see what is staged, and can the job server jar be had?

Beam's FlinkRunner finds each of these out late and badly: it assumes Flink 2.2 whatever the cluster runs
(Beam 2.77's default `--flink_version`), stages artifacts in the job server's local temp directory, which
remote task managers cannot read, and downloads a ~150 MB job server jar from Maven at submission. Here the
Flink REST API (`/v1/config` for the version, `/v1/overview` for the task managers) gets one bounded call
each, and every problem is a usage error (exit 2) that names the option or variable to set. A missing
`--flink_version` is taken from the cluster.
"""

import os
import re
import shutil
import sys
import time
import zipfile

from recovery.stores.probing import CONNECT_SECONDS, READ_SECONDS, in_background, short

from .cli import UsageError
from .options import _flag_value
from .preflight import TOTAL_SECONDS

LOCAL_MASTERS = ("[local]", "[auto]")     # Beam starts an embedded cluster or lets the job server choose
JOB_SERVER_TARGET = ":runners:flink:{}:job-server:shadowJar"


def check(flags: list[str]) -> list[str]:
    """The flags to submit with (`--flink_version` added from the cluster when not given), or UsageError."""
    if (_flag_value(flags, "runner") or "").split(".")[-1] != "FlinkRunner":
        return flags
    master = (_flag_value(flags, "flink_master") or "[auto]").strip()
    if master in LOCAL_MASTERS:
        return flags
    url = master if re.match(r"^https?://", master) else f"http://{master}"
    config, overview = _rest(url, "v1/config"), _rest(url, "v1/overview")
    cluster = ".".join(str(config.get("flink-version", "")).split(".")[:2])
    given = _flag_value(flags, "flink_version")
    uber = "--flink_submit_uber_jar" in flags
    version_problems = _version_problems(config, cluster, given)
    problems = version_problems + _cluster_problems(overview, url)
    if not uber:
        problems += _job_server_problems(flags)
    if not version_problems:   # which jar depends on the version, so only once that is settled
        problems += _jar_problems(flags, given or cluster, uber)
    if problems:
        raise UsageError("\n".join([f"the Flink cluster at {url} cannot run this audit (checked before any work; "
                                    "nothing was read or written):"] + [f"  {p}" for p in problems]))
    if given is None:
        print(f"Flink {config['flink-version']} at {url}: submitting with --flink_version={cluster}", file=sys.stderr)
        return [*flags, f"--flink_version={cluster}"]
    return flags


def _rest(url: str, path: str) -> dict:
    """GET url/path as JSON, within CONNECT_SECONDS/READ_SECONDS and TOTAL_SECONDS in all (DNS included)."""
    import requests

    thread, outcome = in_background(lambda: requests.get(f"{url}/{path}", timeout=(CONNECT_SECONDS, READ_SECONDS)))
    thread.join(TOTAL_SECONDS)
    fix = "set FLINK_MASTER (or --flink_master) to the JobManager's REST address, e.g. flink-jobmanager:8081"
    if thread.is_alive():
        raise UsageError(f"cannot reach Flink at {url}: no answer from /{path} within {TOTAL_SECONDS:.0f} s; {fix}")
    if "error" in outcome:
        raise UsageError(f"cannot reach Flink at {url}: {short(outcome['error'])}; {fix}")
    response = outcome["value"]
    try:
        body = response.json() if response.ok else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UsageError(f"{url}/{path} answered {response.status_code} without Flink's JSON: is {url} a Flink "
                         f"JobManager's REST endpoint? {fix}")
    return body


def _version_problems(config: dict, cluster: str, given: str | None) -> list[str]:
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    supported = FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    full = config.get("flink-version", "?")
    if cluster not in supported:
        return [f"the cluster runs Flink {full}; this Beam ({_beam_version()}) has job servers for Flink "
                f"{', '.join(supported)} only: run the audit against a cluster of one of those versions"]
    if given is not None and given != cluster:
        return [f"the cluster runs Flink {full}, but the job is built for --flink_version {given}: set "
                f"FLINK_VERSION={cluster} (the flink profile's --flink_version) or pass --flink_version {cluster}"]
    return []


def _cluster_problems(overview: dict, url: str) -> list[str]:
    if not overview.get("taskmanagers"):
        return [f"no task manager is registered with {url} (/v1/overview: taskmanagers "
                f"{overview.get('taskmanagers')}): the job would wait for slots forever; start the task managers"]
    return []


def _job_server_problems(flags: list[str]) -> list[str]:
    """Without an uber jar, Beam runs the Flink job server here (Java) and stages artifacts in its directory."""
    problems = []
    jar = _flag_value(flags, "flink_job_server_jar") or ""
    if _is_endpoint(jar):
        return problems    # an already-running job server: its own --artifacts-dir is its business
    if not _flag_value(flags, "artifacts_dir"):
        problems.append("the job server would stage artifacts in its local temp directory, which the task managers "
                        "cannot read: submit an uber jar (--flink_submit_uber_jar, as the flink profile does) or set "
                        "--artifacts_dir to a directory every task manager reads (gs://, s3://, a shared mount)")
    launcher = _flag_value(flags, "job_server_java_launcher") or "java"
    if shutil.which(launcher) is None:
        problems.append(f"the Flink job server is a Java program and `{launcher}` is not on PATH: install a JRE "
                        "(or set --job_server_java_launcher), or submit an uber jar (--flink_submit_uber_jar), which "
                        "needs no Java here")
    return problems


def _jar_problems(flags: list[str], version: str, uber: bool) -> list[str]:
    """Can the job server jar be had: a local file that is a jar, or a URL (or cache entry) that answers?"""
    from apache_beam.utils.subprocess_server import JavaJarServer

    given = _flag_value(flags, "flink_job_server_jar")
    if given and _is_endpoint(given):
        return []
    # Beam caches downloads by file name: --jar_cache_dir for the job server, the default cache for an uber jar.
    cache = (None if uber else _flag_value(flags, "jar_cache_dir")) or JavaJarServer.JAR_CACHE
    if given and "://" not in given:
        if not os.path.isfile(given):
            return [f"--flink_job_server_jar {given}: no such file; download "
                    f"{os.path.basename(_maven_url(version))} and give its path"]
        if not zipfile.is_zipfile(given):
            return [f"--flink_job_server_jar {given} is not a jar (not a zip archive): download it again"]
        return []
    url = given or _maven_url(version)
    if not url.startswith(("http://", "https://")):
        return []    # gs://, s3://...: Beam's own filesystems open it at submission
    cached = os.path.join(cache, os.path.basename(url))
    if os.path.isfile(cached):
        return []
    mirrors = [url] if given else [url, url.replace(JavaJarServer.MAVEN_CENTRAL_REPOSITORY,
                                                    JavaJarServer.GOOGLE_MAVEN_MIRROR)]
    failures = [f"{m} ({why})" for m in mirrors for why in [_head(m)] if why]
    if len(failures) < len(mirrors):
        return []
    return [f"the Flink {version} job server jar is not at {cached} and cannot be downloaded: "
            f"{'; '.join(failures)}. Download it where there is network and pass --flink_job_server_jar "
            f"/path/to/{os.path.basename(url)} (or put it at {cached})"]


def _head(url: str) -> str | None:
    """None when `url` answers a HEAD with 200 (after redirects) within the time limits, else why not."""
    import requests

    started = time.monotonic()
    thread, outcome = in_background(
        lambda: requests.head(url, allow_redirects=True, timeout=(CONNECT_SECONDS, READ_SECONDS)))
    thread.join(TOTAL_SECONDS)
    if thread.is_alive():
        return f"no answer within {time.monotonic() - started:.0f} s"
    if "error" in outcome:
        return short(outcome["error"])
    status = outcome["value"].status_code
    return None if status == 200 else f"HTTP {status}"


def _maven_url(version: str) -> str:
    from apache_beam.utils.subprocess_server import JavaJarServer

    return JavaJarServer.path_to_beam_jar(JOB_SERVER_TARGET.format(version))


def _is_endpoint(jar: str) -> bool:
    from apache_beam.utils.subprocess_server import is_service_endpoint

    return bool(jar) and bool(is_service_endpoint(jar))


def _beam_version() -> str:
    from apache_beam.version import __version__

    return f"apache-beam {__version__}"
