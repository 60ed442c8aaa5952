"""Records in, report files out: records.jsonl, failures.csv, promote.sh, summary.json, report.html.

Built to run without one place that holds every record. Each record becomes lines in part files
(sorted within each part) that workers write; the counts come from an accumulator that merges;
the page shows aggregates plus a bounded set of records (the ones a person acts on first). The
last step merges the sorted parts into the documented files line by line, renders the page and
writes summary.json last, so a reader that finds summary.json with its run_id finds the rest
complete. `write_reports` runs the same steps in one process (the sequential loop and the tests).

Everything a scheduler alerts on (counts, exit code) and everything a person acts on (reasons,
commands) comes from the same records, so the files cannot disagree.
"""

import csv
import dataclasses
import datetime
import hashlib
import heapq
import io
import json
import os
import posixpath
import re
import shlex
import uuid
from collections import Counter
from typing import NamedTuple

import jinja2

from tfbundle import index_filename, step_of

from . import storage
from .records import (
    CHECKPOINT,
    ERROR,
    EXIT_ATTENTION,
    EXIT_COULD_NOT_CHECK,
    EXIT_OK,
    HEALTHY,
    LEFTOVER,
    NEEDS_A_PERSON,
    REBUILT,
    STATE_FILE,
    STATUSES,
    Record,
)

RECORDS, SUMMARY, FAILURES, HTML, PROMOTE = "records.jsonl", "summary.json", "failures.csv", "report.html", "promote.sh"
PARTS = "parts"                 # REPORT_DIR/parts/<run_id>/: part files while the run writes; removed at the end
PART_LINES = 5000               # a worker holds at most this many lines per output before writing a part
HTML_SAMPLES_PER_CAUSE = 20     # records shown per refusal cause (all of them are in failures.csv)
HTML_CAUSES = 60                # causes shown, most frequent first
HTML_REBUILT = 200              # rebuilt checkpoints shown, largest first
HTML_RUNS = 400                 # run directories shown, those that need a person first
CHART_RUNS = 40                 # bars in the per-run chart
FAILURES_HEADER = ["prefix", "status", "reason"]

# --- The records.jsonl schema (docs/running.md repeats it; tests hold both to it) -------------------
# (field, JSON type, meaning). Stability: every field here is stable: it keeps its name, type and
# meaning; new fields may be added (documented here first); none is removed or renamed without a
# new major version.
RECORD_SCHEMA = (
    ("prefix", "string", "what the record is about, as a user would type it (gs://..., s3://..., a local path)"),
    ("status", "string", "healthy, rebuilt, unrecoverable, corrupt, incomplete, stale, in-progress or error"),
    ("reason", "string", "one sentence a person can act on"),
    ("root", "string", "the audited root the prefix was found under"),
    ("kind", "string", "checkpoint, leftover, state-file or listing"),
    ("directory", "string", "the run directory holding the prefix"),
    ("source", "string", "rebuilt: the layout used; state-file: the checkpoint it names as latest"),
    ("index_path", "string", "the index that exists, was written in place, or was staged (\"\" if none)"),
    ("staged", "boolean", "index_path is a staged copy under the report directory, not beside the data"),
    ("data_files", "integer", "data shards listed for the prefix"),
    ("data_bytes", "integer", "listed size of those data shards"),
    ("bytes_scanned", "integer", "data bytes this run read for the prefix"),
    ("checks", "array of string", "what was checked and passed"),
    ("refusals", "array of string", "each source that was tried and why it did not fit"),
    ("command", "string", "what a person runs next (\"\" when nothing is to be done)"),
    ("rehearsal", "string or null", "--rehearse: byte-identical, differs or refused; null otherwise"),
    ("seconds", "number", "time spent rebuilding or verifying the prefix"),
    ("evidence", "object", "what a rebuild rests on: {confirmed: [string], cannot_confirm: [string], "
                           "reference_matched: integer, reference_total: integer, matched_keys: [string]}; "
                           "{} when nothing was rebuilt or fitted"),
    ("mtime", "number or null", "newest modification time of the prefix's files (epoch seconds) where the store "
                                "gives it"),
)
RECORD_FIELDS = tuple(name for name, _, _ in RECORD_SCHEMA)
_DEFAULTS = {"evidence": {}, "mtime": None}   # fields a Record of an older version may not carry yet

SUMMARY_SCHEMA = (
    ("tool", "string", "\"ckpt-rescue\""),
    ("version", "string", "ckpt-rescue's version"),
    ("run_id", "string", "unique per run; records of the same run share the report directory"),
    ("command", "string", "the command line, to re-run the audit"),
    ("roots", "array of string", "the audited roots"),
    ("report_dir", "string", "where the reports are"),
    ("options", "object", "the audit's options (in_place, verify_data, rehearse, split_bytes, runner, ...)"),
    ("started", "string", "ISO 8601, UTC"),
    ("finished", "string", "ISO 8601, UTC"),
    ("duration_seconds", "number", "finished - started"),
    ("records", "integer", "lines in records.jsonl"),
    ("counts", "object", "records per status (every status present, 0 when none)"),
    ("kinds", "object", "records per kind (checkpoint, leftover, state-file, listing), kinds seen only"),
    ("per_root", "object", "root -> {records: integer, counts: {status: integer}}; every root present"),
    ("per_kind", "object", "kind -> {status: integer}: rows add up to kinds, columns to counts"),
    ("per_status", "object", "status -> {records, data_bytes, bytes_scanned: integer, seconds: number}"),
    ("checkpoints", "integer", "records of kind checkpoint (state files and leftovers are counted apart)"),
    ("needs_a_person", "integer", "records whose status needs a person (the lines of failures.csv)"),
    ("data_bytes", "integer", "sum of data_bytes"),
    ("bytes_scanned", "integer", "sum of bytes_scanned"),
    ("rebuilt_data_bytes", "integer", "data bytes of the rebuilt checkpoints (what the rebuilt indexes recover)"),
    ("staged_indexes", "integer", "indexes staged under rebuilt/ (promote.sh promotes them)"),
    ("written_in_place", "integer", "indexes written beside their data (--in-place)"),
    ("exit_code", "integer", "0 nothing needs a person, 1 something does"),
)
SUMMARY_FIELDS = tuple(name for name, _, _ in SUMMARY_SCHEMA)


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


def exit_code(records) -> int:
    return exit_code_for(Counter(_get(r, "status") for r in records))


def statuses_of(counts) -> list:
    """The known statuses in their order, then any other status seen."""
    return list(STATUSES) + sorted(s for s in counts if s not in STATUSES)


# --- One record -----------------------------------------------------------------------------------

def _get(record, name, default=None):
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def record_dict(record) -> dict:
    """The record as records.jsonl has it: every schema field, whatever version of Record wrote it."""
    if dataclasses.is_dataclass(record):   # shallow: asdict's deep copy was most of the report's time
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        fields = dict(record)
    for name, default in _DEFAULTS.items():
        fields.setdefault(name, type(default)() if isinstance(default, dict) else default)
    if dataclasses.is_dataclass(fields.get("evidence")):
        fields["evidence"] = dataclasses.asdict(fields["evidence"])
    return fields


def sort_key(record) -> tuple:
    return (_get(record, "root", ""), _get(record, "prefix", ""), _get(record, "kind", ""))


def needs_a_person(record) -> bool:
    return _get(record, "status") in NEEDS_A_PERSON


def needs_attention(record) -> bool:
    """A person's finding, or a prefix storage kept us from checking (`error`: run again)."""
    return _get(record, "status") in NEEDS_A_PERSON or _get(record, "status") == ERROR


def record_line(record) -> str:
    return json.dumps(record_dict(record), sort_keys=True) + "\n"


def failure_line(record) -> str:
    """One CSV row on one line (line breaks inside a field become spaces, so the parts merge by line)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([_one_line(record.prefix), record.status, _one_line(record.reason)])
    return out.getvalue()


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def promote_line(record) -> str:
    """A line of promote.sh for a staged index: `promote STAGED TARGET`, or `leave` when an index is there."""
    target = index_filename(record.prefix)
    if _one_line(target) != target or _one_line(record.index_path) != record.index_path:
        return "# skipped a name with a line break in it; promote it with its record's command\n"
    verb = "promote" if record.status == REBUILT else "leave"
    return f"{verb} {shlex.quote(record.index_path)} {shlex.quote(target)}\n"


def is_staged(record) -> bool:
    return bool(record.staged and record.index_path)


def lines_for(record) -> list:
    """(output, (sort key, line)) for every part file the record contributes to."""
    out = [(RECORDS, (sort_key(record), record_line(record)))]
    if needs_attention(record):
        line = failure_line(record)
        out.append((FAILURES, (line, line)))
    if is_staged(record):
        line = promote_line(record)
        out.append((PROMOTE, (line, line)))
    return out


# --- Counts (an accumulator that merges: Beam's CombineFn wraps these) ------------------------------

def totals_new() -> dict:
    return {"records": 0, "counts": Counter(), "kinds": Counter(), "per_kind": {}, "per_root": {}, "per_status": {},
            "data_bytes": 0, "bytes_scanned": 0, "rebuilt_data_bytes": 0, "staged_indexes": 0,
            "written_in_place": 0}


def totals_add(acc: dict, record) -> dict:
    status, root = record.status, record.root
    acc["records"] += 1
    acc["counts"][status] += 1
    acc["kinds"][record.kind] += 1
    acc["per_kind"].setdefault(record.kind, Counter())[status] += 1
    entry = acc["per_root"].setdefault(root, {"records": 0, "counts": Counter()})
    entry["records"] += 1
    entry["counts"][status] += 1
    per = acc["per_status"].setdefault(status, {"records": 0, "data_bytes": 0, "bytes_scanned": 0, "seconds": 0.0})
    per["records"] += 1
    per["data_bytes"] += record.data_bytes
    per["bytes_scanned"] += record.bytes_scanned
    per["seconds"] += record.seconds or 0.0
    acc["data_bytes"] += record.data_bytes
    acc["bytes_scanned"] += record.bytes_scanned
    if status == REBUILT:
        acc["rebuilt_data_bytes"] += record.data_bytes
        acc["staged_indexes" if record.staged else "written_in_place"] += 1
    elif record.staged:
        acc["staged_indexes"] += 1
    return acc


def totals_merge(accs) -> dict:
    out = totals_new()
    for acc in accs:
        for key in ("records", "data_bytes", "bytes_scanned", "rebuilt_data_bytes", "staged_indexes",
                    "written_in_place"):
            out[key] += acc[key]
        out["counts"].update(acc["counts"])
        out["kinds"].update(acc["kinds"])
        for kind, counts in acc["per_kind"].items():
            out["per_kind"].setdefault(kind, Counter()).update(counts)
        for root, entry in acc["per_root"].items():
            mine = out["per_root"].setdefault(root, {"records": 0, "counts": Counter()})
            mine["records"] += entry["records"]
            mine["counts"].update(entry["counts"])
        for status, entry in acc["per_status"].items():
            mine = out["per_status"].setdefault(status, {"records": 0, "data_bytes": 0, "bytes_scanned": 0,
                                                         "seconds": 0.0})
            for key, value in entry.items():
                mine[key] += value
    return out


def summary_from_totals(acc: dict, meta: dict, finished: float) -> dict:
    """summary.json. `meta` carries what only the launcher knows: run_id, roots, started (epoch
    seconds), command, report_dir and options."""
    statuses = [s for s in statuses_of(acc["counts"]) if s in STATUSES or acc["counts"].get(s)]
    per_root = {}
    for root in list(meta.get("roots", [])) + sorted(acc["per_root"]):
        entry = acc["per_root"].get(root, {"records": 0, "counts": Counter()})
        per_root[root] = {"records": entry["records"], "counts": {s: entry["counts"].get(s, 0) for s in statuses}}
    per_status = {s: dict(acc["per_status"].get(s, {"records": 0, "data_bytes": 0, "bytes_scanned": 0,
                                                     "seconds": 0.0})) for s in statuses}
    for entry in per_status.values():
        entry["seconds"] = round(entry["seconds"], 3)
    counts = {s: acc["counts"].get(s, 0) for s in statuses}
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
        "records": acc["records"],
        "counts": counts,
        "kinds": dict(sorted(acc["kinds"].items())),
        "per_root": per_root,
        "per_kind": {kind: {s: acc["per_kind"][kind].get(s, 0) for s in statuses} for kind in sorted(acc["per_kind"])},
        "per_status": per_status,
        "checkpoints": acc["kinds"].get(CHECKPOINT, 0),
        "needs_a_person": sum(counts.get(s, 0) for s in NEEDS_A_PERSON),
        "data_bytes": acc["data_bytes"],
        "bytes_scanned": acc["bytes_scanned"],
        "rebuilt_data_bytes": acc["rebuilt_data_bytes"],
        "staged_indexes": acc["staged_indexes"],
        "written_in_place": acc["written_in_place"],
        "exit_code": exit_code_for(counts),
    }


def summarize(records, meta: dict, finished: float) -> dict:
    acc = totals_new()
    for record in records:
        totals_add(acc, record)
    return summary_from_totals(acc, meta, finished)


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


# --- Per run directory: counts, the latest step, whether latest_checkpoint() resolves -------------


def run_key(record) -> tuple:
    return (record.root, record.directory or record.root)


def run_new() -> dict:
    return {"counts": Counter(), "checkpoints": 0, "leftovers": 0, "state_files": 0, "needs_a_person": 0,
            "data_bytes": 0, "rebuilt_data_bytes": 0, "latest": None, "newest_mtime": None,
            "state_latest": None, "resolves_now": None, "resolves_after": None}


def run_add(acc: dict, record) -> dict:
    """Fold one record into its run's aggregate."""
    acc["counts"][record.status] += 1
    acc["needs_a_person"] += record.needs_a_person
    acc["data_bytes"] += record.data_bytes
    if record.kind == CHECKPOINT:
        acc["checkpoints"] += 1
        if record.status == REBUILT:
            acc["rebuilt_data_bytes"] += record.data_bytes
        step = step_of(record.prefix)
        if step is not None:
            latest = (step, record.prefix, record.status, bool(record.staged))
            acc["latest"] = max(acc["latest"], latest) if acc["latest"] else latest
        mtime = _get(record, "mtime")
        if mtime is not None:
            acc["newest_mtime"] = max(acc["newest_mtime"] or mtime, mtime)
    elif record.kind == LEFTOVER:
        acc["leftovers"] += 1
    elif record.kind == STATE_FILE:
        acc["state_files"] += 1
    return acc


def run_merge(accs) -> dict:
    out = run_new()
    for acc in accs:
        out["counts"].update(acc["counts"])
        for key in ("checkpoints", "leftovers", "state_files", "needs_a_person", "data_bytes", "rebuilt_data_bytes"):
            out[key] += acc[key]
        if acc["latest"] and (not out["latest"] or acc["latest"] > out["latest"]):
            out["latest"] = acc["latest"]
        if acc["newest_mtime"] is not None:
            out["newest_mtime"] = max(out["newest_mtime"] or acc["newest_mtime"], acc["newest_mtime"])
        for key in ("state_latest", "resolves_now", "resolves_after"):
            if acc[key] is not None:
                out[key] = acc[key]
    return out


def state_target(record) -> str | None:
    """The prefix a `checkpoint` state file names as latest (what tf.train.latest_checkpoint() looks for)."""
    name = record.source
    if record.kind != STATE_FILE or not name:
        return None
    if "://" in name or name.startswith("/"):
        return name
    return posixpath.join(record.directory or posixpath.dirname(record.prefix), name)


def latest_resolution(state_name: str, target_records: list) -> dict:
    """Whether latest_checkpoint() returns the named checkpoint now, and after promote.sh ran.

    TensorFlow returns the named prefix only when its index exists: a healthy checkpoint or one
    rebuilt in place resolves now; a staged rebuild resolves once promoted.
    """
    statuses = [(r["status"], r["staged"]) for r in target_records]
    now = any(s == HEALTHY or (s == REBUILT and not staged) for s, staged in statuses)
    after = now or any(s == REBUILT and staged for s, staged in statuses)
    acc = run_new()
    acc.update(state_latest=state_name, resolves_now=now, resolves_after=after)
    return acc


def run_row(key: tuple, acc: dict) -> dict:
    root, directory = key
    latest = acc["latest"]
    return {
        "root": root, "directory": directory, "relative": relative(directory, root) or ".",
        "counts": dict(acc["counts"]), "checkpoints": acc["checkpoints"], "leftovers": acc["leftovers"],
        "state_files": acc["state_files"], "needs_a_person": acc["needs_a_person"],
        "data_bytes": acc["data_bytes"], "rebuilt_data_bytes": acc["rebuilt_data_bytes"],
        "latest_step": latest[0] if latest else None, "latest_prefix": latest[1] if latest else "",
        "latest_status": latest[2] if latest else "", "newest_mtime": acc["newest_mtime"],
        "state_latest": acc["state_latest"], "resolves_now": acc["resolves_now"],
        "resolves_after": acc["resolves_after"],
    }


def run_priority(row: dict) -> tuple:
    """Runs a person should look at first: problems, then a latest_checkpoint() that does not resolve."""
    return (row["needs_a_person"] > 0, row["resolves_now"] is False, row["counts"].get(REBUILT, 0),
            row["checkpoints"], row["directory"])


# --- What needs a person, by cause (bounded samples) ---------------------------------------------

_PATH_RE = re.compile(r"\S*/\S*")
_NUMBER_RE = re.compile(r"\d+")


def cause_of(record) -> str:
    """The reason with the particulars (paths, numbers) taken out, so like refusals group together."""
    head = re.split(r": |; ", record.reason or "", maxsplit=1)[0]
    head = _NUMBER_RE.sub("N", _PATH_RE.sub("…", head)).strip() or "(no reason given)"
    if len(head) > 160:
        head = head[:160].rsplit(" ", 1)[0] + " …"
    return f"{record.status}: {head}"


def shown(record) -> dict:
    """What the page shows of one record (lists cut short; the full record is in records.jsonl)."""
    evidence = _get(record, "evidence")
    if dataclasses.is_dataclass(evidence):
        evidence = dataclasses.asdict(evidence)
    if isinstance(evidence, dict):
        evidence = {"confirmed": list(evidence.get("confirmed") or [])[:20],
                    "cannot_confirm": list(evidence.get("cannot_confirm") or [])[:20],
                    "reference_matched": evidence.get("reference_matched", 0),
                    "reference_total": evidence.get("reference_total", 0)}
    return {
        "prefix": record.prefix, "root": record.root, "directory": record.directory, "status": record.status,
        "kind": record.kind, "reason": record.reason, "source": record.source, "index_path": record.index_path,
        "staged": record.staged, "data_files": record.data_files, "data_bytes": record.data_bytes,
        "seconds": record.seconds, "checks": list(record.checks)[:20], "refusals": list(record.refusals)[:20],
        "more_refusals": max(0, len(record.refusals) - 20), "command": record.command,
        "rehearsal": record.rehearsal, "evidence": evidence, "mtime": _get(record, "mtime"),
        "tensors": evidence.get("reference_total") if isinstance(evidence, dict) else None,
    }


def cause_new() -> dict:
    return {"count": 0, "samples": []}


def cause_add(acc: dict, record) -> dict:
    acc["count"] += 1
    acc["samples"].append((sort_key(record), shown(record)))
    if len(acc["samples"]) > 2 * HTML_SAMPLES_PER_CAUSE:
        acc["samples"] = heapq.nsmallest(HTML_SAMPLES_PER_CAUSE, acc["samples"], key=lambda s: s[0])
    return acc


def cause_merge(accs) -> dict:
    out = cause_new()
    for acc in accs:
        out["count"] += acc["count"]
        out["samples"] = heapq.nsmallest(HTML_SAMPLES_PER_CAUSE, out["samples"] + acc["samples"], key=lambda s: s[0])
    return out


def cause_row(cause: str, acc: dict) -> dict:
    status = cause.split(":", 1)[0]
    samples = [s for _, s in sorted(acc["samples"], key=lambda s: s[0])[:HTML_SAMPLES_PER_CAUSE]]
    return {"cause": cause, "status": status, "count": acc["count"], "samples": samples}


def rebuilt_rank(row: dict) -> tuple:
    return (row["data_bytes"], row["prefix"])


# --- Part files and the files they become ---------------------------------------------------------

def parts_dir(report_dir: str, run_id: str) -> str:
    return f"{report_dir.rstrip('/')}/{PARTS}/{run_id or 'run'}"


def write_part(fs, directory: str, output: str, keyed_lines: list) -> str:
    """Write (sort key, line) pairs, sorted, as one part of `output`; returns the part's path."""
    stem, ext = os.path.splitext(output)
    path = f"{directory.rstrip('/')}/{stem}-{uuid.uuid4().hex[:16]}{ext}"
    keyed_lines.sort(key=lambda pair: pair[0])
    storage.write_replaceable(fs, path, "".join(line for _, line in keyed_lines).encode("utf-8"))
    return path


def _line_order(output: str):
    if output == RECORDS:
        return lambda line: sort_key(json.loads(line))
    return lambda line: line


def _merged_lines(fs, parts: list, output: str):
    """Every line of the sorted parts, in order, holding one line per part (a k-way merge)."""
    files = [fs.open(p, "rb", block_size=1 << 18) if not storage.is_local(fs) else fs.open(p, "rb") for p in parts]
    try:
        streams = [(line.decode("utf-8") for line in f) for f in files]
        yield from heapq.merge(*streams, key=_line_order(output))
    finally:
        for f in files:
            f.close()


def _stream_to(fs, path: str, chunks) -> None:
    """Write a file from an iterable of strings without holding it (atomic replace where local)."""
    if storage.is_local(fs):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
        return
    with fs.open(path, "wb") as f:
        buffered = []
        size = 0
        for chunk in chunks:
            buffered.append(chunk.encode("utf-8"))
            size += len(buffered[-1])
            if size >= 1 << 22:
                f.write(b"".join(buffered))
                buffered, size = [], 0
        f.write(b"".join(buffered))


def _promote_script(summary: dict, lines):
    yield _PROMOTE_HEAD.format(run_id=summary["run_id"], finished=summary["finished"],
                               report_dir=summary["report_dir"])
    yield from lines
    yield _PROMOTE_TAIL


_PROMOTE_HEAD = """#!/bin/sh
# Written by ckpt-rescue (run {run_id}, {finished}); report: {report_dir}
# Promotes every index this audit staged under rebuilt/ to its place beside the data, create-only:
# an index that exists is never overwritten (checked first, and the copy itself is create-only:
# cp -n, gsutil cp -n, aws s3api put-object --if-none-match '*'). It says what it did, line by
# line, and exits 1 if anything could not be promoted. Re-running it is safe.
# Usage: sh promote.sh [--dry-run]
set -u
DRY=0; [ "${{1:-}}" = "--dry-run" ] && DRY=1
promoted=0; present=0; failed=0; left=0

exists() {{  # does this path or object exist?
  case "$1" in
    gs://*|gcs://*) gsutil -q stat "$1" >/dev/null 2>&1 ;;
    s3://*) b=${{1#s3://}}; aws s3api head-object --bucket "${{b%%/*}}" --key "${{b#*/}}" >/dev/null 2>&1 ;;
    *) [ -e "$1" ] ;;
  esac
}}

copy_create_only() {{  # copy $1 to $2 unless $2 exists
  case "$2" in
    gs://*|gcs://*) gsutil -q cp -n "$1" "$2" ;;
    s3://*) b=${{2#s3://}}
      case "$1" in
        s3://*|gs://*) echo "  staged index is remote: copy $1 locally first" >&2; return 1 ;;
      esac
      aws s3api put-object --if-none-match '*' --bucket "${{b%%/*}}" --key "${{b#*/}}" --body "$1" >/dev/null ;;
    *) case "$1" in
         gs://*|gcs://*|s3://*)   # download beside the target, then link: a link never replaces a file
           t="$2.ckpt-rescue-$$"
           case "$1" in s3://*) aws s3 cp --quiet "$1" "$t" ;; *) gsutil -q cp "$1" "$t" ;; esac \
             && ln "$t" "$2"; r=$?; rm -f "$t"; return $r ;;
         *) cp -n "$1" "$2" && cmp -s "$1" "$2" ;;
       esac ;;
  esac
}}

promote() {{  # promote STAGED TARGET
  if exists "$2"; then
    echo "left alone (an index is already there): $2"; present=$((present + 1)); return
  fi
  if [ "$DRY" = 1 ]; then echo "would promote: $1 -> $2"; promoted=$((promoted + 1)); return; fi
  if copy_create_only "$1" "$2"; then
    echo "promoted: $2"; promoted=$((promoted + 1))
  else
    echo "FAILED (nothing overwritten): $1 -> $2"; failed=$((failed + 1))
  fi
}}

leave() {{  # leave STAGED TARGET: the target's own index is unreadable; swapping it is a person's call
  echo "not promoted (an unreadable index is there; see its record's command): $2"; left=$((left + 1))
}}

"""

_PROMOTE_TAIL = """
echo "promote.sh: $promoted promoted, $present already had an index (left alone), $left need a person, $failed failed"
[ "$failed" = 0 ]
"""


def finish(report_dir: str, meta: dict, finished: float, totals: dict, parts: list, runs: list, run_count: int,
           causes: list, cause_count: int, rebuilt: list) -> dict:
    """The last step: merge the parts into the documented files, render the page, write summary.json
    last, remove the parts; returns the summary. Holds one line per part, and the bounded lists."""
    summary = summary_from_totals(totals, meta, finished)
    fs, path = storage.url_to_fs(report_dir)
    base = path.rstrip("/")
    if storage.is_local(fs):
        fs.makedirs(base, exist_ok=True)
    by_output = {RECORDS: [], FAILURES: [], PROMOTE: []}
    for output, part in parts:
        by_output[output].append(part)
    failures_head = ",".join(FAILURES_HEADER) + "\n"
    _stream_to(fs, f"{base}/{RECORDS}", _merged_lines(fs, sorted(by_output[RECORDS]), RECORDS))
    _stream_to(fs, f"{base}/{FAILURES}", _chain([failures_head],
                                                _merged_lines(fs, sorted(by_output[FAILURES]), FAILURES)))
    _stream_to(fs, f"{base}/{PROMOTE}", _promote_script(summary, _merged_lines(fs, sorted(by_output[PROMOTE]),
                                                                                   PROMOTE)))
    if storage.is_local(fs):
        os.chmod(f"{base}/{PROMOTE}", 0o755)
    html = render_page(summary, runs, run_count, causes, cause_count, rebuilt, finished)
    storage.write_replaceable(fs, f"{base}/{HTML}", html.encode("utf-8"))
    storage.write_replaceable(fs, f"{base}/{SUMMARY}",
                              (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    parts_root = parts_dir(path, meta.get("run_id", ""))
    try:
        if fs.exists(parts_root):
            fs.rm(parts_root, recursive=True)
        top = f"{base}/{PARTS}"
        if storage.is_local(fs) and os.path.isdir(top) and not os.listdir(top):
            os.rmdir(top)
    except OSError:
        pass    # leftover parts are harmless: the next run of the same report dir uses another run_id
    return summary


def _chain(*iterables):
    for it in iterables:
        yield from it


def write_reports(report_dir: str, records, meta: dict, finished: float) -> dict:
    """Write every report file into `report_dir` (local or a bucket URL) from records in one process;
    returns the summary. The pipeline runs the same steps spread over workers."""
    records = [r if isinstance(r, Record) else record_from_dict(r) for r in records]
    fs, path = storage.url_to_fs(report_dir)
    directory = parts_dir(path, meta.get("run_id", ""))
    if storage.is_local(fs):
        fs.makedirs(directory, exist_ok=True)
    lines = {RECORDS: [], FAILURES: [], PROMOTE: []}
    totals, runs, causes, joins = totals_new(), {}, {}, {}
    for record in records:
        for output, line in lines_for(record):
            lines[output].append(line)
        totals_add(totals, record)
        run_add(runs.setdefault(run_key(record), run_new()), record)
        if needs_attention(record):
            cause_add(causes.setdefault(cause_of(record), cause_new()), record)
        for key, value in join_items(record):
            joins.setdefault(key, []).append(value)
    parts = [(output, write_part(fs, directory, output, found)) for output, found in lines.items() if found]
    for run, acc in resolved_runs(joins):
        runs[run] = run_merge([runs.get(run, run_new()), acc])
    run_rows = heapq.nlargest(HTML_RUNS, (run_row(k, v) for k, v in runs.items()), key=run_priority)
    cause_rows = heapq.nlargest(HTML_CAUSES, (cause_row(k, v) for k, v in causes.items()),
                                key=lambda c: (c["count"], c["cause"]))
    rebuilt = heapq.nlargest(HTML_REBUILT, (shown(r) for r in records if r.status == REBUILT), key=rebuilt_rank)
    return finish(report_dir, meta, finished, totals, parts, run_rows, len(runs), cause_rows, len(causes), rebuilt)


class StateFileClaim(NamedTuple):
    """A `checkpoint` state file's claim, joined by the prefix it names as latest: its run and how it
    names it."""

    root: str
    directory: str
    name: str


class CheckpointState(NamedTuple):
    """A checkpoint's side of that join: its verdict, and whether its index is only staged."""

    status: str
    staged: bool


def join_items(record) -> list:
    """(prefix, StateFileClaim | CheckpointState) pairs that join a state file's latest name with that
    checkpoint's record. Small items: a local runner buffers one per checkpoint."""
    if record.kind == CHECKPOINT:
        return [(record.prefix, CheckpointState(record.status, bool(record.staged)))]
    return state_claims(record)


def state_claims(record) -> list:
    """join_items' claims alone: (prefix, StateFileClaim) for a state file that names a checkpoint."""
    target = state_target(record)
    return [] if target is None else [(target, StateFileClaim(*run_key(record), record.source))]


def claimed_states(fs, part: str, claimed) -> list:
    """join_items' other side, read back from a written records part: (prefix, CheckpointState) for its
    checkpoint records whose prefix is in `claimed`. Only the few claimed prefixes travel to the join,
    not one item per checkpoint."""
    out = []
    with fs.open(part, "rb") as f:
        for line in f:
            fields = json.loads(line)
            if fields.get("kind") == CHECKPOINT and fields.get("prefix") in claimed:
                out.append((fields["prefix"], CheckpointState(fields["status"], bool(fields.get("staged")))))
    return out


def resolved_runs(joined) -> list:
    """From prefix -> [join items]: (run key, aggregate carrying the latest_checkpoint() verdicts)."""
    out = []
    for items in joined.values() if isinstance(joined, dict) else joined:
        items = list(items)      # a few per prefix: the checkpoint and the state files naming it
        targets = [{"status": i.status, "staged": i.staged} for i in items if isinstance(i, CheckpointState)]
        for claim in (i for i in items if isinstance(i, StateFileClaim)):
            out.append(((claim.root, claim.directory), latest_resolution(claim.name, targets)))
    return out


def record_from_dict(fields: dict) -> Record:
    """A record read back; fields this version of Record does not know (a newer writer) are dropped."""
    known = {f.name for f in dataclasses.fields(Record)}
    return Record(**{k: v for k, v in fields.items() if k in known})


# --- The page -----------------------------------------------------------------------------------

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th').forEach(function (th, col) {
    th.tabIndex = 0;
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-sort') || a.cells[col].textContent.trim();
        var y = b.cells[col].getAttribute('data-sort') || b.cells[col].textContent.trim();
        var nx = Number(x), ny = Number(y);
        var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  input.addEventListener('input', function () {
    var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
    document.querySelectorAll(input.getAttribute('data-target')).forEach(function (row) {
      var text = row.textContent.toLowerCase() + ' ' + (row.getAttribute('data-full') || '').toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
});
var query = (location.hash.match(/[#&]q=([^&]*)/) || [])[1];
if (query) {
  document.querySelectorAll('input.filter').forEach(function (input) {
    input.value = decodeURIComponent(query);
    input.dispatchEvent(new Event('input'));
  });
}
var sort = location.hash.match(/[#&]sort=([a-z]+):(\\d+)(:desc)?/);
if (sort) {
  var th = document.querySelectorAll('#' + sort[1] + ' th')[Number(sort[2])];
  if (th) { th.click(); if (sort[3]) { th.click(); } }
}
document.querySelectorAll('button.copy').forEach(function (button) {
  button.addEventListener('click', function () {
    var text = button.getAttribute('data-copy');
    if (navigator.clipboard) { navigator.clipboard.writeText(text); }
    button.textContent = 'copied';
    setTimeout(function () { button.textContent = 'copy'; }, 1200);
  });
});
""".strip()

_ENV = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
                                  autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                                  undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return _ENV


def render_page(summary: dict, runs: list, run_count: int, causes: list, cause_count: int, rebuilt: list,
                now: float) -> str:
    statuses = [s for s in statuses_of(summary["counts"]) if s in summary["counts"]]   # JSON may have sorted them
    roots_chart = [_bar(root, entry["counts"], statuses) for root, entry in summary["per_root"].items()]
    chart_runs = sorted(runs, key=run_priority, reverse=True)[:CHART_RUNS]
    runs_chart = [_bar(f"{r['relative']}", r["counts"], statuses, title=r["directory"]) for r in
                  sorted(chart_runs, key=lambda r: (r["root"], r["directory"]))]
    return _env().get_template("report.html").render(
        summary=summary, statuses=statuses, needs=list(NEEDS_A_PERSON),
        runs=sorted(runs, key=lambda r: (r["root"], r["directory"])), run_count=run_count,
        causes=causes, cause_count=cause_count, rebuilt=sorted(rebuilt, key=rebuilt_rank, reverse=True),
        roots_chart=roots_chart, runs_chart=runs_chart, chart_runs=len(chart_runs),
        limits={"runs": HTML_RUNS, "causes": HTML_CAUSES, "samples": HTML_SAMPLES_PER_CAUSE,
                "rebuilt": HTML_REBUILT},
        script=_SCRIPT, script_hash=_script_hash(_SCRIPT), human_bytes=human_bytes, relative=relative,
        age=lambda mtime: age(mtime, now), files={"records": RECORDS, "failures": FAILURES, "promote": PROMOTE,
                                                   "summary": SUMMARY})


def render_html(records, summary: dict) -> str:
    """The page for a list of records (as write_reports renders it); for tests and small callers."""
    records = [r if isinstance(r, Record) else record_from_dict(r) for r in records]
    runs, causes, joins = {}, {}, {}
    for record in records:
        run_add(runs.setdefault(run_key(record), run_new()), record)
        if needs_attention(record):
            cause_add(causes.setdefault(cause_of(record), cause_new()), record)
        for key, value in join_items(record):
            joins.setdefault(key, []).append(value)
    for run, acc in resolved_runs(joins):
        runs[run] = run_merge([runs[run], acc])
    run_rows = heapq.nlargest(HTML_RUNS, (run_row(k, v) for k, v in runs.items()), key=run_priority)
    cause_rows = heapq.nlargest(HTML_CAUSES, (cause_row(k, v) for k, v in causes.items()),
                                key=lambda c: (c["count"], c["cause"]))
    rebuilt = heapq.nlargest(HTML_REBUILT, (shown(r) for r in records if r.status == REBUILT), key=rebuilt_rank)
    finished = datetime.datetime.fromisoformat(summary["finished"]).timestamp()
    return render_page(summary, run_rows, len(runs), cause_rows, len(causes), rebuilt, finished)


def _script_hash(script: str) -> str:
    import base64

    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def _bar(label: str, counts: dict, statuses: list, title: str = "") -> dict:
    total = sum(counts.get(s, 0) for s in statuses)
    segments, x = [], 0.0
    for status in statuses:
        n = counts.get(status, 0)
        if n:
            width = 1000.0 * n / total
            segments.append({"status": status, "count": n, "x": round(x, 2), "width": round(width, 2)})
            x += width
    return {"label": label, "title": title or label, "total": total, "segments": segments}


def relative(path: str, root: str) -> str:
    """`path` below `root` as the user would read it inside that root; the path itself when outside."""
    root = root.rstrip("/")
    if path == root:
        return ""
    if root and path.startswith(root + "/"):
        return path[len(root) + 1:]
    return path


def age(mtime, now: float) -> str:
    if mtime is None:
        return ""
    seconds = max(0.0, now - float(mtime))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --- Reading back ---------------------------------------------------------------------------------

def read_summary(report_dir: str) -> dict:
    fs, path = storage.url_to_fs(report_dir)
    return json.loads(storage.read_bytes(fs, f"{path.rstrip('/')}/{SUMMARY}"))


def iter_records(report_dir: str):
    """records.jsonl line by line (never the whole file in memory)."""
    fs, path = storage.url_to_fs(report_dir)
    with fs.open(f"{path.rstrip('/')}/{RECORDS}", "rb") as f:
        for line in f:
            if line.strip():
                yield record_from_dict(json.loads(line))


def read_records(report_dir: str) -> list[Record]:
    return list(iter_records(report_dir))


def first_failures(report_dir: str, limit: int) -> list:
    """The first `limit` rows of failures.csv, as (prefix, status, reason)."""
    fs, path = storage.url_to_fs(report_dir)
    rows = []
    with fs.open(f"{path.rstrip('/')}/{FAILURES}", "rb") as f:
        reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline=""))
        next(reader, None)
        for row in reader:
            if len(rows) >= limit:
                break
            rows.append(tuple(row))
    return rows
