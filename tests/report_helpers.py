"""Records and readers shared by the report's tests (tests/recovery/report/, tests/pipeline/test_report.py,
tests/transforms/test_report.py): a small audit's records with hostile names, larger generated sets, the
schema's JSON types, and the rows of a table of report.html."""

import dataclasses
import html.parser
from collections import Counter

from recovery.records import (
    CORRUPT,
    DELETED,
    ERROR,
    HEALTHY,
    INCOMPLETE,
    NEW,
    PERSISTS,
    REBUILT,
    RESOLVED,
    UNRECOVERABLE,
    Record,
    inspect_command,
    promote_command,
)
from recovery.report.aggregates import Totals
from recovery.report.schema import RECORD_FIELDS, RECORD_SCHEMA
from recovery.report.summary import exit_code_for, summary_from_totals

HOSTILE = '/r/a/<img src=x onerror="document.title=1">ckpt-1'

META = {"run_id": "r1", "roots": ["/r/a", "gs://b/run", "/r/empty"], "started": 1_700_000_000.0,
        "command": "ckpt-rescue audit /r/a gs://b/run /r/empty --report-dir /rep", "report_dir": "/rep",
        "options": {"in_place": False}}


def sample_records() -> list[Record]:
    return [
        Record("/r/a/ckpt-1", HEALTHY, "index reads", "/r/a", data_bytes=100, checks=["index readable"],
               directory="/r/a"),
        Record("/r/a/ckpt-2", REBUILT, "rebuilt from sibling ckpt-1", "/r/a", source="sibling ckpt-1",
               directory="/r/a", index_path="/rep/rebuilt/local/r/a/ckpt-2.index", staged=True, data_bytes=100,
               bytes_scanned=100, command=promote_command("/rep", "/r/a/ckpt-2")),
        Record(HOSTILE, UNRECOVERABLE, "no source fits: <b>bold</b> & more", "/r/a", data_bytes=7, directory="/r/a",
               refusals=["sibling ckpt-1: accounts for 100 bytes of shard 0 but the file has 7"],
               command=f"ckpt-rescue inspect '{HOSTILE}'"),
        Record("gs://b/run/ckpt-9", INCOMPLETE, "1 of 2 data shard(s) missing (shard 1)", "gs://b/run",
               directory="gs://b/run"),
        Record("gs://b/run/ckpt-8", CORRUPT, "index unreadable: bad magic; staged", "gs://b/run", staged=True,
               directory="gs://b/run", index_path="gs://b/rep/rebuilt/gs/b/run/ckpt-8.index"),
        Record("gs://b/run/ckpt-8_temp/part-00000-of-00001", HEALTHY, "merge input", "gs://b/run", kind="leftover",
               directory="gs://b/run"),
        Record("/r/a/checkpoint", HEALTHY, "all 2 checkpoint(s) it names exist", "/r/a", kind="state-file",
               directory="/r/a", source="ckpt-2"),
    ]


WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota")


def many_records(n: int = 2000, runs: int = 450, root: str = "gs://m/runs") -> list[Record]:
    """An audit with more runs, causes and rebuilds than the page shows (HTML_RUNS, HTML_CAUSES,
    HTML_SAMPLES_PER_CAUSE), evidence, ages, state files, errors and line breaks in names."""
    out = []
    for i in range(n):
        directory = f"{root}/exp-{i % runs:03d}"
        prefix = f"{directory}/ckpt-{i}"
        if i % 5 == 0:
            words = f"{WORDS[i % 9]} {WORDS[(i // 9) % 9]}"
            out.append(Record(prefix, UNRECOVERABLE if i % 2 else CORRUPT,
                              f"no source fits {words}: shard {i} has {i * 3} bytes", root, directory=directory,
                              command=inspect_command(prefix), refusals=[f"source {k}" for k in range(i % 30)],
                              data_bytes=i, seconds=0.25 * (i % 4)))
        elif i % 7 == 0:
            out.append(Record(prefix, REBUILT, "rebuilt from sibling", root, directory=directory, staged=i % 3 > 0,
                              index_path=f"gs://m/rep/rebuilt/{i}.index", data_bytes=i * 11 % 997, seconds=0.5,
                              checks=[f"check {k}" for k in range(25)],
                              evidence={"confirmed": ["object graph"], "cannot_confirm": [f"values of {i} tensors"],
                                        "reference_matched": i % 4, "reference_total": 4, "matched_keys": ["k"]}))
        elif i % 11 == 0:
            out.append(Record(prefix, ERROR, "could not check: storage kept failing", root, directory=directory))
        elif i % 13 == 0:
            out.append(Record(prefix + "\nwith a line break", UNRECOVERABLE, "no source fits:\nline break", root,
                              directory=directory, staged=True, index_path=f"gs://m/rep/{i}\n.index"))
        else:
            out.append(Record(prefix, HEALTHY, "index reads", root, directory=directory, data_bytes=i,
                              mtime=1_700_000_000.0 - i * 997.0))
        if i < runs and i % 3 == 0:
            out.append(Record(f"{directory}/checkpoint", HEALTHY, "ok", root, kind="state-file", directory=directory,
                              source=f"ckpt-{i + runs * (i % 2)}"))
        if i % 17 == 0:
            out.append(Record(f"{directory}/ckpt-gone-{i}", DELETED, "gone: deleted since", root, directory=directory,
                              change=PERSISTS if i % 2 else NEW, since=f"2026-12-0{1 + i % 5}T02:30:00Z"))
    changes = ("", NEW, PERSISTS, RESOLVED, PERSISTS)      # and every 6th carried from an earlier night
    return [r if r.status == DELETED else dataclasses.replace(
        r, change=changes[i % 5], since=f"2026-12-0{1 + i % 7}T02:30:00Z",
        carried_from="2026-12-01T02:30:00Z" if i % 6 == 0 else "") for i, r in enumerate(out)]


def summarize(records, meta: dict, finished: float) -> dict:
    """summary.json for these records (what write_reports would write)."""
    totals = Totals()
    for record in records:
        totals.add(record)
    return summary_from_totals(totals, meta, finished)


def exit_code(records) -> int:
    return exit_code_for(Counter(record.status for record in records))


# --- The schema's JSON types ------------------------------------------------------------------------

_JSON_TYPES = {"string": str, "boolean": bool, "integer": int, "number": (int, float), "object": dict,
               "array of string": list, "null": type(None)}


def conforms(value, declared: str) -> bool:
    for option in declared.split(" or "):
        expected = _JSON_TYPES[option]
        if option == "integer" and isinstance(value, bool):
            continue
        if isinstance(value, expected) and (option != "array of string" or all(isinstance(v, str) for v in value)):
            return True
    return False


def check_record_line(line: dict) -> None:
    assert list(sorted(line)) == sorted(RECORD_FIELDS), set(line) ^ set(RECORD_FIELDS)
    for name, kind, _ in RECORD_SCHEMA:
        assert conforms(line[name], kind), (name, line[name])
    if line["evidence"]:                  # {} when nothing was rebuilt or fitted
        evidence = line["evidence"]
        assert set(evidence) == {"confirmed", "cannot_confirm", "reference_matched", "reference_total",
                                 "matched_keys", "unconfirmed_layout"}
        assert all(conforms(evidence[k], "array of string")
                   for k in ("confirmed", "cannot_confirm", "matched_keys", "unconfirmed_layout"))
        assert conforms(evidence["reference_matched"], "integer") and conforms(evidence["reference_total"], "integer")


# --- The page's tables --------------------------------------------------------------------------

class _Rows(html.parser.HTMLParser):
    """Text of each <tr> under the element with a given id, plus every element tag seen and the text of
    each <script>."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.depth, self.rows, self.tags, self._row = table_id, 0, [], [], None
        self.hidden, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")
        if dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth:
            self.depth += tag not in ("br", "input")
        if self.depth and tag == "tr":
            self._row = []
            self.hidden.append("hidden" in dict(attrs))

    def handle_endtag(self, tag):
        self._in_script = False
        if self.depth:
            if tag == "tr" and self._row is not None:
                self.rows.append(" ".join(" ".join(self._row).split()))
                self._row = None
            self.depth -= 1

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        if self._row is not None:
            self._row.append(data)


def table_rows(page: str, table_id: str, visible_only=False) -> list[str]:
    parser = _Rows(table_id)
    parser.feed(page)
    rows = list(zip(parser.rows, parser.hidden))[1:]   # without the header row
    return [row for row, hidden in rows if not (visible_only and hidden)]


def tags(page: str) -> list:
    parser = _Rows("-")
    parser.feed(page)
    return parser.tags


def scripts(page: str) -> list[str]:
    """The text of every <script> element, as the browser hashes it for the Content-Security-Policy."""
    parser = _Rows("-")
    parser.feed(page)
    return parser.scripts
