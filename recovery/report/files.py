"""The report directory's files from part files and the Overview: records.jsonl, failures.csv and
promote.sh merged line by line from the parts, report.html rendered, summary.json written last, so a
reader that finds summary.json with its run_id finds the rest complete.

These are the last steps of both ways a report is made: `finish` runs them in one process for
`write_reports` (the sequential loop, benchmarks, tests); transforms/report.py's WriteReports runs the
two halves (`write_half`) on two workers at once, then `write_summary`.
"""

import json
import os
import uuid

from .. import storage
from ..records import Record
from .aggregates import Overview
from .fold import Fold
from .page import render_page
from .parts import OUTPUTS, lines_for, merged_lines, parts_dir, remove_parts, write_part
from .promote import promote_script
from .schema import DIRECTORIES, FAILURES, FAILURES_HEADER, HTML, PROMOTE, RECORDS, SUMMARY, printable, record_from_dict
from .summary import summary_from_totals

RECORDS_HALF, OTHERS_HALF = "records", "others"     # what finish writes, in halves that may be written at once


def finish(report_dir: str, meta: dict, finished: float, overview: Overview, parts: list, night=None) -> dict:
    """Merge the parts ((output, path) pairs) into the documented files, render the page, write
    summary.json last, remove the parts; returns the summary. Holds one line per part, and the
    Overview's bounded lists. `night`: what a nightly run counted besides records (NightCounts)."""
    summary = write_half(RECORDS_HALF, report_dir, meta, finished, overview, parts, night)
    write_half(OTHERS_HALF, report_dir, meta, finished, overview, parts, night)
    return write_summary(report_dir, meta, summary)


def write_half(half: str, report_dir: str, meta: dict, finished: float, overview: Overview, parts: list,
               night=None) -> dict:
    """One half of the files before summary.json: records.jsonl (RECORDS_HALF, most of the bytes), or the
    others and report.html (OTHERS_HALF); the two may be written at once, by two workers. Returns the summary
    both are made with."""
    summary = summary_from_totals(overview.totals, meta, finished, night)
    fs, path = storage.url_to_fs(report_dir)
    base = path.rstrip("/")
    if storage.is_local(fs):
        fs.makedirs(base, exist_ok=True)
    by_output = {output: [] for output in OUTPUTS}
    for output, part in parts:
        by_output[output].append(part)
    if half == RECORDS_HALF:
        _stream_to(fs, f"{base}/{RECORDS}", merged_lines(fs, by_output[RECORDS], RECORDS))
        return summary
    _stream_to(fs, f"{base}/{FAILURES}", _chain([",".join(FAILURES_HEADER) + "\n"],
                                                merged_lines(fs, by_output[FAILURES], FAILURES)))
    _stream_to(fs, f"{base}/{PROMOTE}", promote_script(summary, merged_lines(fs, by_output[PROMOTE], PROMOTE)))
    if by_output[DIRECTORIES] or night is not None:
        _stream_to(fs, f"{base}/{DIRECTORIES}", merged_lines(fs, by_output[DIRECTORIES], DIRECTORIES))
    if storage.is_local(fs):
        os.chmod(f"{base}/{PROMOTE}", 0o755)
    storage.write_replaceable(fs, f"{base}/{HTML}", printable(render_page(summary, overview, finished)).encode("utf-8"))
    return summary


def write_summary(report_dir: str, meta: dict, summary: dict) -> dict:
    """summary.json, once both halves are written; then the parts go."""
    fs, path = storage.url_to_fs(report_dir)
    storage.write_replaceable(fs, f"{path.rstrip('/')}/{SUMMARY}",
                              (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    remove_parts(fs, path, meta.get("run_id", ""))
    return summary


def write_reports(report_dir: str, records, meta: dict, finished: float) -> dict:
    """Write every report file into `report_dir` (local or a bucket URL) from records in one process;
    returns the summary. The pipeline runs the same steps spread over workers."""
    fs, path = storage.url_to_fs(report_dir)
    directory = parts_dir(path, meta.get("run_id", ""))
    if storage.is_local(fs):
        fs.makedirs(directory, exist_ok=True)
    lines, fold = {output: [] for output in OUTPUTS}, Fold()
    for record in records:
        record = record if isinstance(record, Record) else record_from_dict(record)
        for output, line in lines_for(record):
            lines[output].append(line)
        fold.add(record)
    parts = [(output, write_part(fs, directory, output, found)) for output, found in lines.items() if found]
    return finish(report_dir, meta, finished, fold.overview(), parts)


def _chain(*iterables):
    for it in iterables:
        yield from it


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
