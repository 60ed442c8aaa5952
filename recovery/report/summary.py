"""summary.json from the Totals aggregate and what only the launcher knows, and the exit code a
scheduler alerts on (the codes themselves are defined in recovery/records.py)."""

import datetime

from ..records import (
    CHECKPOINT,
    ERROR,
    EXIT_ATTENTION,
    EXIT_COULD_NOT_CHECK,
    EXIT_NOTHING_CHECKED,
    EXIT_OK,
    IN_PROGRESS,
    NEEDS_A_PERSON,
    STATUSES,
)
from .aggregates import Totals, empty_status_entry
from .attention import warnings_and_silence


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ckpt-rescue")
    except PackageNotFoundError:
        return "unknown"


def exit_code_for(counts: dict, silent: bool = False) -> int:
    """0 nothing needs a person; 1 something unrecoverable, corrupt, incomplete or stale (docs/running.md);
    else 4 when the run checked too little to be quiet (`silent`: attention.py); else 3 when storage
    kept failing for some prefix (`error`: could not check, run again). 1 wins over 4 and 3: a finding
    needs a person whether or not other prefixes could be checked."""
    if any(counts.get(status) for status in NEEDS_A_PERSON):
        return EXIT_ATTENTION
    if silent:
        return EXIT_NOTHING_CHECKED
    return EXIT_COULD_NOT_CHECK if counts.get(ERROR) else EXIT_OK


def statuses_of(counts) -> list:
    """The known statuses in their order, then any other status seen."""
    return list(STATUSES) + sorted(s for s in counts if s not in STATUSES)


def summary_from_totals(totals: Totals, meta: dict, finished: float, night=None) -> dict:
    """summary.json (every field in schema.SUMMARY_SCHEMA). `meta` carries what only the launcher
    knows: run_id, roots, started (epoch seconds), command, report_dir, options, and for a nightly run
    the previous run, the vault, missing roots; `night` (recovery.memory.nightly.NightCounts) what the
    run counted besides records, when it did."""
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
    warnings, silent = warnings_and_silence(per_root, counts, meta, night.vault_failed if night else 0)
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
        "salvageable": totals.salvageable,
        "exit_code": exit_code_for(counts, silent),
        "previous_run": meta.get("previous_run"),
        "changes": {name: totals.changes.get(name, 0) for name in ("new", "persists", "resolved", "deleted")},
        "carried": totals.carried,
        "directories": ({"listed": night.listed, "carried": night.carried, "judged": night.judged, "gone": night.gone}
                        if night is not None else None),
        "deferred": counts.get(IN_PROGRESS, 0),
        "vault": ({"url": meta["vault"], "kept": night.kept if night else 0,
                   "kept_bytes": night.kept_bytes if night else 0, "pruned": night.pruned if night else 0}
                  if meta.get("vault") else None),
        "warnings": warnings,
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")
