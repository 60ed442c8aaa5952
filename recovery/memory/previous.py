"""An earlier report as the memory of a run (`--previous REPORT_DIR`, or the report directory the
vault's record of the previous run names): what it says about itself, the directories it listed, and
its records split by directory into tonight's report directory, so every worker finds the previous
records of its own directories without any one process holding them all.
"""

import json
import posixpath

from .. import storage
from ..records import LISTING
from ..report.readback import iter_records, read_summary
from ..report.schema import SUMMARY
from .nightly import PreviousRun, epoch
from .runs import live_per_root
from .snapshots import Head, MemoryStore

DIRECTORIES = "directories.jsonl"     # a report's directories: one JSON object per line
SPLIT = "previous"                    # REPORT_DIR/previous/: the previous report's records, by directory
BUFFERED_LINES = 20_000               # records held while splitting, at most


class NotAReport(ValueError):
    """The directory holds no finished ckpt-rescue report."""


def read_previous(report_dir: str) -> PreviousRun:
    """What a finished report says about its run (its summary.json)."""
    try:
        summary = read_summary(report_dir)
    except FileNotFoundError:
        raise NotAReport(f"{report_dir} holds no {SUMMARY}: not a finished ckpt-rescue report") from None
    except (ValueError, OSError) as exc:
        raise NotAReport(f"{report_dir}/{SUMMARY} cannot be read: {exc}") from None
    if not isinstance(summary, dict) or summary.get("tool") != "ckpt-rescue" or "run_id" not in summary:
        raise NotAReport(f"{report_dir}/{SUMMARY} is not a ckpt-rescue summary")
    return PreviousRun(summary["run_id"], summary.get("report_dir") or report_dir, summary.get("started", ""),
                       summary.get("finished", ""), tuple(summary.get("roots", ())),
                       tuple(sorted(live_per_root(summary).items())),
                       summary.get("options", {}).get("verify_round"))


def directories_file(report_dir: str) -> str | None:
    """The report's directories.jsonl, or None where it has none (a report of an older version)."""
    fs, path = storage.url_to_fs(report_dir)
    target = f"{path.rstrip('/')}/{DIRECTORIES}"
    return storage.display(fs, target) if storage.fresh_exists(fs, target) else None


def split_into(previous: PreviousRun, report_dir: str, tonight_dir: str) -> str:
    """Split the previous report's records by directory into snapshots under `tonight_dir`/previous
    (one pass, at most BUFFERED_LINES records held); returns that memory root's URL."""
    fs, path = storage.url_to_fs(tonight_dir)
    into = storage.display(fs, f"{path.rstrip('/')}/{SPLIT}")
    memory = MemoryStore(into)
    judged = epoch(previous.started) or 0.0
    held: dict = {}
    counts: dict = {}
    roots: dict = {}
    total = 0
    for record in iter_records(report_dir):
        if record.kind == LISTING or not record.directory:
            continue
        held.setdefault(record.directory, []).append(record)
        counts[record.directory] = counts.get(record.directory, 0) + 1
        roots[record.directory] = record.root
        total += 1
        if total >= BUFFERED_LINES:
            largest = max(held, key=lambda d: len(held[d]))
            total -= len(held[largest])
            memory.write_records(memory.folder(largest, judged, previous.run_id), held.pop(largest))
    for directory, records in held.items():
        memory.write_records(memory.folder(directory, judged, previous.run_id), records)
    lines = []
    for directory, count in sorted(counts.items()):
        memory.write_head(memory.folder(directory, judged, previous.run_id),
                          Head(directory, roots[directory], None, previous.started, previous.run_id,
                               previous.report_dir, count))
        lines.append(json.dumps({"root": roots[directory], "directory": directory}) + "\n")
    storage.write_replaceable(memory.fs, posixpath.join(memory.root, DIRECTORIES), "".join(lines).encode("utf-8"))
    return into
