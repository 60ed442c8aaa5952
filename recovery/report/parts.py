"""Part files: the lines each record contributes to records.jsonl, failures.csv and promote.sh,
written by workers as sorted parts of at most PART_LINES lines, and merged back in order with one
line per part in memory (files.py writes the merged files).

A line of records.jsonl or directories.jsonl goes into its part after its sort key (a JSON array and a
tab, KEYED), so that the merge, and the claimed states read back, parse a key of three strings rather
than each record again (the merge is the report's last step, in one process). JSON
escapes a tab inside a string, so the first tab of a part line ends its key. failures.csv and
promote.sh lines are their own keys.
"""

import csv
import heapq
import io
import json
import os
import uuid

import orjson

from .. import storage
from ..records import ERROR, NEEDS_A_PERSON
from .promote import promote_line
from .schema import DIRECTORIES, FAILURES, PROMOTE, RECORDS, one_line, parse_json, record_line, sort_key

PARTS = "parts"                 # REPORT_DIR/parts/<run_id>/: part files while the run writes; removed at the end
PART_LINES = 5000               # a worker holds at most this many lines per output before writing a part
OUTPUTS = (RECORDS, FAILURES, PROMOTE, DIRECTORIES)   # the files made of parts


def parts_dir(report_dir: str, run_id: str) -> str:
    return f"{report_dir.rstrip('/')}/{PARTS}/{run_id or 'run'}"


def needs_attention(record) -> bool:
    """A person's finding, or a prefix storage kept us from checking (`error`: run again)."""
    return record.status in NEEDS_A_PERSON or record.status == ERROR


def failure_line(record) -> str:
    """One CSV row on one line (line breaks inside a field become spaces, so the parts merge by line)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([one_line(record.prefix), record.status, one_line(record.reason)])
    return out.getvalue()


def lines_for(record) -> list:
    """(output, (sort key, line)) for every part file the record contributes to."""
    out = [(RECORDS, (sort_key(record), record_line(record)))]
    if needs_attention(record):
        line = failure_line(record)
        out.append((FAILURES, (line, line)))
    if record.staged and record.index_path:
        line = promote_line(record)
        out.append((PROMOTE, (line, line)))
    return out


KEYED = (RECORDS, DIRECTORIES)     # outputs whose part lines carry their sort key before a tab


def write_part(fs, directory: str, output: str, keyed_lines: list) -> str:
    """Write (sort key, line) pairs, sorted, as one part of `output`; returns the part's path."""
    stem, ext = os.path.splitext(output)
    path = f"{directory.rstrip('/')}/{stem}-{uuid.uuid4().hex[:16]}{ext}"
    keyed_lines.sort(key=lambda pair: pair[0])
    if output in KEYED:
        text = "".join(f"{key_text(key)}\t{line}" for key, line in keyed_lines)
    else:
        text = "".join(line for _, line in keyed_lines)
    storage.write_replaceable(fs, path, text.encode("utf-8"))
    return path


def key_text(key: tuple) -> str:
    """A sort key as JSON: orjson's, or json's escapes where orjson refuses a lone surrogate."""
    try:
        return orjson.dumps(key).decode("utf-8")
    except TypeError:
        return json.dumps(key)


def split_keyed(part_line: str | bytes) -> tuple:
    """A KEYED part line (text, or its UTF-8 bytes) -> (its sort key as a tuple, the output's line, of the
    same type); the report's last step parses one key per record."""
    at = part_line.index(b"\t" if isinstance(part_line, bytes) else "\t")
    return tuple(parse_json(part_line[:at])), part_line[at + 1:]


def directory_line(line: dict) -> tuple:
    """(sort key, line) of one line of directories.jsonl: by root, then directory."""
    return (line["root"], line["directory"]), json.dumps(line, sort_keys=True) + "\n"


def merged_lines(fs, parts: list, output: str):
    """Every line of the sorted parts of `output`, in order, holding one line per part (a k-way merge)."""
    files = [fs.open(p, "rb", block_size=1 << 18) if not storage.is_local(fs) else fs.open(p, "rb")
             for p in sorted(parts)]
    try:
        if output in KEYED:
            streams = [(split_keyed(line.decode("utf-8")) for line in f) for f in files]
            yield from (line for _, line in heapq.merge(*streams, key=lambda keyed: keyed[0]))
        else:
            yield from heapq.merge(*[(line.decode("utf-8") for line in f) for f in files])
    finally:
        for f in files:
            f.close()


def remove_parts(fs, report_path: str, run_id: str) -> None:
    """Remove this run's parts (and the parts folder when nothing else is in it)."""
    parts_root = parts_dir(report_path, run_id)
    try:
        if fs.exists(parts_root):
            fs.rm(parts_root, recursive=True)
        top = f"{report_path.rstrip('/')}/{PARTS}"
        if storage.is_local(fs) and os.path.isdir(top) and not os.listdir(top):
            os.rmdir(top)
    except OSError:
        pass    # leftover parts are harmless: the next run of the same report dir uses another run_id
