"""The runs a vault remembers: each audit with --vault records itself as it starts (who, when, which
roots, its report directory) and as it finishes (its exit code, what each root held, its place in the
--verify-share rotation), so the next run finds the previous one.

    VAULT/runs/<started>_<run id>.json             written as the run starts
    VAULT/runs/<started>_<run id>.finished.json    written with its summary: the run is complete
"""

import getpass
import json
import posixpath
import socket

from .. import storage
from .nightly import DAY, PreviousRun, compact, epoch

RUNS = "runs"
FORMAT = "ckpt-rescue-run/1"
FINISHED = ".finished.json"


def _runs_path(vault_url: str) -> tuple:
    fs, root = storage.url_to_fs(vault_url)
    return fs, posixpath.join(root.rstrip("/"), RUNS)


def _name(started: float, run_id: str) -> str:
    return f"{compact(started)}_{run_id}"


def record_start(vault_url: str, meta: dict) -> None:
    fs, runs = _runs_path(vault_url)
    doc = {"format": FORMAT, "run_id": meta["run_id"], "started": meta["started_iso"], "roots": meta["roots"],
           "report_dir": meta["report_dir"], "command": meta.get("command", ""), "who": _who()}
    _write(fs, posixpath.join(runs, _name(meta["started"], meta["run_id"]) + ".json"), doc)


def record_finish(vault_url: str, meta: dict, summary: dict) -> None:
    """The run is complete: what the next run compares with."""
    fs, runs = _runs_path(vault_url)
    doc = {"format": FORMAT, "run_id": meta["run_id"], "started": meta["started_iso"],
           "finished": summary["finished"], "roots": meta["roots"], "report_dir": meta["report_dir"],
           "exit_code": summary["exit_code"], "verify_round": summary["options"].get("verify_round"),
           "live": live_per_root(summary)}
    _write(fs, posixpath.join(runs, _name(meta["started"], meta["run_id"]) + FINISHED), doc)
    prune_runs(fs, runs, meta["started"], float(summary["options"].get("vault_keep_days", 30)))


def live_per_root(summary: dict) -> dict:
    """root -> records other than `deleted` (what the root held), from a summary."""
    return {root: entry.get("records", 0) - entry.get("counts", {}).get("deleted", 0)
            for root, entry in summary.get("per_root", {}).items()}


def _write(fs, path: str, doc: dict) -> None:
    if storage.is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    try:
        storage.write_new(fs, path, json.dumps(doc, indent=1, sort_keys=True).encode(), durable=False)
    except FileExistsError:
        pass     # the same run recorded twice (a retried step): the first stays


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return socket.gethostname()


def finished_runs(vault_url: str) -> list[dict]:
    """Every finished run the vault records, newest first."""
    fs, runs = _runs_path(vault_url)
    with storage.unavailable_if_transient(fs, runs, "listing"):
        try:
            names = sorted((posixpath.basename(p) for p in fs.ls(runs, detail=False)), reverse=True)
        except FileNotFoundError:
            return []
    found = []
    for name in names:
        if not name.endswith(FINISHED):
            continue
        try:
            doc = json.loads(storage.read_bytes(fs, posixpath.join(runs, name)))
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            found.append(doc)
    return found


def previous_in_vault(vault_url: str, roots: list, before: float) -> PreviousRun | None:
    """The newest finished run that audited one of `roots` and started before `before` (epoch seconds)."""
    for doc in finished_runs(vault_url):
        started = epoch(doc.get("started", ""))
        if started is None or started >= before or not set(doc.get("roots", ())) & set(roots):
            continue
        return PreviousRun(doc["run_id"], doc.get("report_dir", ""), doc["started"], doc.get("finished", ""),
                           tuple(doc.get("roots", ())), tuple(sorted((doc.get("live") or {}).items())),
                           doc.get("verify_round"))
    return None


def prune_runs(fs, runs: str, now: float, keep_days: float) -> None:
    """Run records older than --vault-keep-days go, but never the newest finished one."""
    try:
        names = sorted((posixpath.basename(p) for p in fs.ls(runs, detail=False)), reverse=True)
    except FileNotFoundError:
        return
    newest_finished = next((n for n in names if n.endswith(FINISHED)), None)
    keep = {newest_finished, newest_finished[: -len(FINISHED)] + ".json"} if newest_finished else set()
    limit = compact(now - keep_days * DAY)
    for name in names:
        if name not in keep and name.split("_", 1)[0] < limit:
            try:
                fs.rm_file(posixpath.join(runs, name))
            except FileNotFoundError:
                pass
