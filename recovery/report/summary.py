"""summary.json from the Totals aggregate and what only the launcher knows, and the exit code a
scheduler alerts on (the codes themselves are defined in recovery/records.py)."""

import datetime

from ..records import CHECKPOINT, ERROR, EXIT_ATTENTION, EXIT_COULD_NOT_CHECK, EXIT_OK, NEEDS_A_PERSON, STATUSES
from .aggregates import Totals, empty_status_entry


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ckpt-rescue")
    except PackageNotFoundError:
        return "unknown"


def exit_code_for(counts: dict) -> int:
    """0 nothing needs a person; 1 something unrecoverable, corrupt, incomplete or stale (docs/running.md);
    else 3 when storage kept failing for some prefix (`error`: could not check, run again). 1 wins
    over 3: a finding needs a person whether or not other prefixes could be checked."""
    if any(counts.get(status) for status in NEEDS_A_PERSON):
        return EXIT_ATTENTION
    return EXIT_COULD_NOT_CHECK if counts.get(ERROR) else EXIT_OK


def statuses_of(counts) -> list:
    """The known statuses in their order, then any other status seen."""
    return list(STATUSES) + sorted(s for s in counts if s not in STATUSES)


def summary_from_totals(totals: Totals, meta: dict, finished: float) -> dict:
    """summary.json (every field in schema.SUMMARY_SCHEMA). `meta` carries what only the launcher
    knows: run_id, roots, started (epoch seconds), command, report_dir and options."""
    statuses = [s for s in statuses_of(totals.counts) if s in STATUSES or totals.counts.get(s)]
    per_root = {}
    for root in list(meta.get("roots", [])) + sorted(totals.per_root):
        entry = totals.per_root.get(root, {"records": 0, "counts": {}})
        per_root[root] = {"records": entry["records"], "counts": {s: entry["counts"].get(s, 0) for s in statuses}}
    per_status = {s: dict(totals.per_status.get(s, empty_status_entry())) for s in statuses}
    for entry in per_status.values():
        entry["seconds"] = round(entry["seconds"], 3)
    counts = {s: totals.counts.get(s, 0) for s in statuses}
    started = meta.get("started", finished)
    return {
        "tool": "ckpt-rescue",
        "version": tool_version(),
        "run_id": meta.get("run_id", ""),
        "command": meta.get("command", ""),
        "roots": list(meta.get("roots", [])),
        "report_dir": meta.get("report_dir", ""),
        "options": dict(meta.get("options", {})),
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_seconds": round(finished - started, 3),
        "records": totals.records,
        "counts": counts,
        "kinds": dict(sorted(totals.kinds.items())),
        "per_root": per_root,
        "per_kind": {kind: {s: totals.per_kind[kind].get(s, 0) for s in statuses} for kind in sorted(totals.per_kind)},
        "per_status": per_status,
        "checkpoints": totals.kinds.get(CHECKPOINT, 0),
        "needs_a_person": sum(counts.get(s, 0) for s in NEEDS_A_PERSON),
        "data_bytes": totals.data_bytes,
        "bytes_scanned": totals.bytes_scanned,
        "rebuilt_data_bytes": totals.rebuilt_data_bytes,
        "staged_indexes": totals.staged_indexes,
        "written_in_place": totals.written_in_place,
        "not_followed": {"count": totals.not_followed, "where": list(totals.not_followed_where)},
        "exit_code": exit_code_for(counts),
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")
