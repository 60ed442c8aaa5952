"""What the report files are called, and what one record is in them: the documented schema of
records.jsonl and summary.json (docs/running.md repeats it; the tests hold the two to each other)
and one record as its line.

Stability: every field here is stable: it keeps its name, type and meaning; new fields may be added
(documented here first); none is removed or renamed without a new major version.
"""

import dataclasses
import json

from ..records import Record

RECORDS, SUMMARY, FAILURES, HTML, PROMOTE = "records.jsonl", "summary.json", "failures.csv", "report.html", "promote.sh"
FAILURES_HEADER = ["prefix", "status", "reason"]

# --- records.jsonl: (field, JSON type, meaning) ----------------------------------------------------
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
                           "reference_matched: integer, reference_total: integer, matched_keys: [string], "
                           "unconfirmed_layout: [string]}; "
                           "{} when nothing was rebuilt or fitted"),
    ("mtime", "number or null", "newest modification time of the prefix's files (epoch seconds) where the store "
                                "gives it"),
)
RECORD_FIELDS = tuple(name for name, _, _ in RECORD_SCHEMA)
_DEFAULTS = {"evidence": {}, "mtime": None}   # fields a Record of an older version may not carry yet

# --- summary.json (made in summary.py from the Totals aggregate) ------------------------------------
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


def field_of(record, name, default=None):
    """A field of a Record or of a record read back as a dict (either may be of another version)."""
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


def record_line(record) -> str:
    return json.dumps(record_dict(record), sort_keys=True) + "\n"


def record_from_dict(fields: dict) -> Record:
    """A record read back; fields this version of Record does not know (a newer writer) are dropped."""
    known = {f.name for f in dataclasses.fields(Record)}
    return Record(**{k: v for k, v in fields.items() if k in known})


def sort_key(record) -> tuple:
    """The order of records.jsonl (and of the samples the page shows)."""
    return (field_of(record, "root", ""), field_of(record, "prefix", ""), field_of(record, "kind", ""))


def one_line(text: str) -> str:
    """Line breaks become spaces, so a line-oriented file keeps one line per record (see `printable`)."""
    return printable(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def printable(text: str) -> str:
    """A byte of a name that is not UTF-8 (read as a lone surrogate, e.g. a damaged object graph's) as its
    escape `\\xf3`, so that text quoting it can be written as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
