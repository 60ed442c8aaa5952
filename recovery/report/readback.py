"""Reading a written report back: summary.json, records.jsonl line by line, the first rows of
failures.csv, and the claimed checkpoints' states from a records part (the latest_checkpoint() join
on Beam reads those instead of shuffling one item per checkpoint)."""

import csv
import io
import json

from .. import storage
from ..records import CHECKPOINT, Record
from .latest import CheckpointState
from .parts import split_keyed
from .schema import FAILURES, RECORDS, SUMMARY, parse_json, record_from_dict


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


def claimed_states(fs, part: str, claimed) -> list:
    """latest.join_items' other side, read back from a written records part: (prefix, CheckpointState)
    for its checkpoint records whose prefix is in `claimed`. Only the few claimed prefixes travel to
    the join, not one item per checkpoint."""
    out = []
    with fs.open(part, "rb") as f:
        for part_line in f:
            (_, prefix, kind), line = split_keyed(part_line)    # bytes: the record decoded only if claimed
            if kind == CHECKPOINT and prefix in claimed:
                fields = parse_json(line)
                out.append((prefix, CheckpointState(fields["status"], bool(fields.get("staged")))))
    return out
