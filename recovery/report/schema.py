"""What the report files are called, and what one record is in them: the documented schema of
records.jsonl and summary.json (docs/running.md repeats it; the tests hold the two to each other)
and one record as its line.

Stability: every field here is stable: it keeps its name, type and meaning; new fields may be added
(documented here first); none is removed or renamed without a new major version.
"""

import dataclasses
import json

import orjson

from ..records import Record, assembled

RECORDS, SUMMARY, FAILURES, HTML, PROMOTE = "records.jsonl", "summary.json", "failures.csv", "report.html", "promote.sh"
DIRECTORIES = "directories.jsonl"    # the checkpoint directories a run listed: what the next run compares with
FAILURES_HEADER = ["prefix", "status", "reason"]

# --- records.jsonl: (field, JSON type, meaning) ----------------------------------------------------
RECORD_SCHEMA = (
    ("prefix", "string", "what the record is about, as a user would type it (gs://..., s3://..., a local path)"),
    ("status", "string", "healthy, rebuilt, unrecoverable, corrupt, incomplete, stale, in-progress, error or "
                         "deleted"),
    ("reason", "string", "one sentence a person can act on"),
    ("root", "string", "the audited root the prefix was found under"),
    ("kind", "string", "checkpoint, leftover, state-file or listing"),
    ("directory", "string", "the run directory holding the prefix"),
    ("source", "string", "rebuilt: the layout used; state-file: the checkpoint it names as latest; listing: the "
                         "directory outside the root that a symbolic link not followed leads to"),
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
    ("salvage", "object", "refused for damage, what `ckpt-rescue salvage` would keep: {kept_tensors, total_tensors, "
                          "kept_bytes, total_bytes, unconfirmed_tensors: integer, command: string}; {} when nothing "
                          "can be salvaged or nothing was damaged"),
    ("change", "string", "since the previous run: new (a finding, or a prefix, first seen this run), persists (the "
                         "same status as then), resolved (the previous run's finding is gone); \"\" when no previous "
                         "run is known"),
    ("since", "string", "ISO 8601 date-time of the run that first saw this status for this prefix (\"\" if unknown)"),
    ("carried_from", "string", "ISO 8601 date-time of the run whose reading this record carries, its directory's "
                               "listing being unchanged since; \"\" when read this run"),
)
RECORD_FIELDS = tuple(name for name, _, _ in RECORD_SCHEMA)
# fields a Record of an older version may not carry yet
_DEFAULTS = {"evidence": {}, "mtime": None, "salvage": {}, "change": "", "since": "", "carried_from": ""}

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
    ("salvageable", "integer", "records refused for damage that a salvage can help (their `salvage` field is set)"),
    ("not_followed", "object", "symbolic links to directories outside their root, which the listing does not "
                               "follow: {count: integer, where: [\"LINK -> TARGET\", the first 20]}; checkpoints "
                               "reached only through them were not audited"),
    ("exit_code", "integer", "the run's exit code (docs/running.md, \"Exit codes\"): 0 nothing needs a person, 1 "
                             "something does, 3 storage kept failing, 4 too little was checked (see warnings)"),
    ("previous_run", "object or null", "the run compared with: {run_id, report_dir, finished}; null when none is "
                                       "known"),
    ("changes", "object", "{new, persists, resolved, deleted}: records whose status is first seen this run (new "
                          "findings and new prefixes), the previous run's status still, a previous finding gone, "
                          "and things first found gone this run"),
    ("carried", "integer", "records carried forward from directories unchanged since they were judged"),
    ("directories", "object or null", "{listed, carried, judged, gone}: checkpoint directories listed, carried "
                                      "forward unread, read and judged; directories of the previous run gone now; "
                                      "null when not counted"),
    ("deferred", "integer", "records in progress (a finding on files younger than --min-age)"),
    ("vault", "object or null", "--vault: {url, kept, kept_bytes, pruned}: indexes the vault took this run (new "
                                "entries) and their bytes, entries pruned by retention; null without a vault"),
    ("warnings", "array of string", "what a person must read first: nothing judged, most deferred, a root missing, "
                                    "empty or emptied since the previous run, a vault that did not answer"),
)
SUMMARY_FIELDS = tuple(name for name, _, _ in SUMMARY_SCHEMA)


def field_of(record, name, default=None):
    """A field of a Record or of a record read back as a dict (either may be of another version)."""
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def record_dict(record) -> dict:
    """The record as records.jsonl has it: every schema field, whatever version of Record wrote it."""
    if isinstance(record, Record):        # every field, shallow (a record's line is made per record)
        fields = dict(vars(record))
    elif dataclasses.is_dataclass(record):   # shallow: asdict's deep copy was most of the report's time
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        fields = dict(record)
    for name, default in _DEFAULTS.items():
        fields.setdefault(name, type(default)() if isinstance(default, dict) else default)
    if dataclasses.is_dataclass(fields.get("evidence")):
        fields["evidence"] = dataclasses.asdict(fields["evidence"])
    return fields


# What a reader splitting text into lines may take for a line break (str.splitlines does), which JSON
# allows raw inside a string and orjson leaves so: NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR in UTF-8.
_UNICODE_BREAKS = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")


def record_line(record) -> str:
    """The record's line of records.jsonl (and of a vault snapshot): its fields in name order, UTF-8.
    orjson writes it (json.dumps was a tenth of a carried night, a hundred thousand lines). What orjson
    refuses (a lone surrogate from a name that is not UTF-8, an integer over 64 bits), and a name holding
    a Unicode line break, are written by json.dumps, escaped: the same fields, read back the same, and
    one line to any reader."""
    fields = record_dict(record)
    try:
        line = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        line = None
    if line is None or (not line.isascii() and any(brk in line for brk in _UNICODE_BREAKS)):
        return json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n"
    return line.decode("utf-8")


def parse_json(text):
    """JSON text (str or UTF-8 bytes) parsed by orjson, or by json where orjson refuses it: json.dumps
    escapes a name that is not UTF-8 as a lone surrogate, which orjson does not read."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(Record))


def record_from_dict(fields: dict) -> Record:
    """A record read back; fields this version of Record does not know (a newer writer) are dropped.
    A line this version wrote (every field, the usual case: a nightly run reads a hundred thousand
    back from the vault) is taken as it is, its lists made tuples, without __init__'s generated call."""
    if fields.keys() == _RECORD_FIELDS:
        return assembled({**fields, "checks": tuple(fields["checks"]), "refusals": tuple(fields["refusals"])})
    if fields.keys() <= _RECORD_FIELDS:
        return Record(**fields)
    return Record(**{k: v for k, v in fields.items() if k in _RECORD_FIELDS})


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
