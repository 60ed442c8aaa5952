"""Records in, report files out: records.jsonl, summary.json, failures.csv and report.html.

Everything a scheduler alerts on (counts, exit code) and everything a person acts on (reasons,
commands) comes from the same records, so the four files cannot disagree. Files are replaced
atomically where the backend allows, and re-running the same audit rewrites them in place.
"""

import csv
import datetime
import io
import json
from collections import Counter

import jinja2

from . import storage
from .records import ERROR, NEEDS_A_PERSON, STATUSES, Record

RECORDS, SUMMARY, FAILURES, HTML = "records.jsonl", "summary.json", "failures.csv", "report.html"
HTML_ROW_LIMIT = 2000    # per table; records.jsonl always has every row


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ckpt-rescue")
    except PackageNotFoundError:
        return "unknown"


EXIT_COULD_NOT_CHECK = 3


def exit_code(records) -> int:
    """0 nothing needs a person; 1 something unrecoverable, corrupt or incomplete (DESIGN §6); else 3
    when storage kept failing for some prefix (`error`: could not check, run again). 1 wins over 3:
    a finding needs a person whether or not other prefixes could be checked."""
    if any(r.status in NEEDS_A_PERSON for r in records):
        return 1
    return EXIT_COULD_NOT_CHECK if any(r.status == ERROR for r in records) else 0


def ordered(records) -> list:
    return sorted(records, key=lambda r: (r.root, r.prefix, r.kind))


def summarize(records, meta: dict, finished: float) -> dict:
    """Counts by status, kind and root; bytes; timing; the exit code a scheduler should see.

    `meta` carries what only the launcher knows: run_id, roots, started (epoch seconds), command,
    report_dir and options.
    """
    records = list(records)
    per_root = {}
    for root in meta.get("roots", []):
        per_root[root] = {"records": 0, "counts": dict.fromkeys(STATUSES, 0)}
    for record in records:
        entry = per_root.setdefault(record.root, {"records": 0, "counts": dict.fromkeys(STATUSES, 0)})
        entry["records"] += 1
        entry["counts"][record.status] = entry["counts"].get(record.status, 0) + 1
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
        "records": len(records),
        "counts": {status: sum(1 for r in records if r.status == status) for status in STATUSES},
        "kinds": dict(sorted(Counter(r.kind for r in records).items())),
        "per_root": per_root,
        "data_bytes": sum(r.data_bytes for r in records),
        "bytes_scanned": sum(r.bytes_scanned for r in records),
        "staged_indexes": sum(1 for r in records if r.staged),
        "written_in_place": sum(1 for r in records if r.status == "rebuilt" and not r.staged),
        "exit_code": exit_code(records),
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def records_jsonl(records) -> str:
    return "".join(json.dumps(r.to_json_dict(), sort_keys=True) + "\n" for r in ordered(records))


def failures_csv(records) -> str:
    """Every record that needs a person or a re-run (`error`); the header is there even when nothing failed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prefix", "status", "reason"])
    for record in ordered(records):
        if record.needs_a_person or record.status == ERROR:
            writer.writerow([record.prefix, record.status, record.reason])
    return out.getvalue()


def render_html(records, summary: dict) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("pipeline", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    records = ordered(records)
    problems = [r for r in records if r.needs_a_person or r.status == ERROR]
    rebuilt = [r for r in records if r.status == "rebuilt"]
    others = [r for r in records if r.status == "healthy" and r.kind != "checkpoint"]
    healthy = [r for r in records if r.status == "healthy" and r.kind == "checkpoint"]
    return env.get_template("report.html").render(
        summary=summary, statuses=STATUSES, problems=problems, rebuilt=rebuilt, others=others, healthy=healthy,
        limit=HTML_ROW_LIMIT, human_bytes=human_bytes)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def write_reports(report_dir: str, records, meta: dict, finished: float) -> dict:
    """Write the four report files into `report_dir` (local or a bucket URL); return the summary.

    summary.json goes last: a reader that finds it with this run's run_id finds the others complete.
    """
    records = [r if isinstance(r, Record) else Record(**r) for r in records]
    summary = summarize(records, meta, finished)
    fs, path = storage.url_to_fs(report_dir)
    if storage.is_local(fs):
        fs.makedirs(path, exist_ok=True)
    outputs = [(RECORDS, records_jsonl(records)), (FAILURES, failures_csv(records)),
               (HTML, render_html(records, summary)), (SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")]
    for name, text in outputs:
        storage.write_replaceable(fs, f"{path.rstrip('/')}/{name}", text.encode("utf-8"))
    return summary


def read_summary(report_dir: str) -> dict:
    fs, path = storage.url_to_fs(report_dir)
    return json.loads(storage.read_bytes(fs, f"{path.rstrip('/')}/{SUMMARY}"))


def read_records(report_dir: str) -> list[Record]:
    fs, path = storage.url_to_fs(report_dir)
    text = storage.read_bytes(fs, f"{path.rstrip('/')}/{RECORDS}").decode("utf-8")
    return [Record(**json.loads(line)) for line in text.splitlines() if line.strip()]
