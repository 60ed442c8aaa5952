"""The report's aggregates: the counts of summary.json, one per run directory, one per refusal cause,
the largest rebuilds, and the Overview the files are rendered from.

Each is a small class: `add(record)` folds one record in, `merge(others)` folds in aggregates of the
same kind made elsewhere; both return the aggregate, so Beam's CombineFns only call them, and a report
made in one process and one made by many workers agree. `keys_of` is the one place that says which
aggregates a record counts in; `fold.py` runs them in one process, transforms/report.py on Beam.
"""

import dataclasses
import heapq
import re
from collections import Counter

from tfbundle import step_of

from ..records import CHECKPOINT, DELETED, ERROR, LEFTOVER, LISTING, NEEDS_A_PERSON, NEW, REBUILT, STATE_FILE
from .changes import CHANGE_GROUPS, change_group
from .schema import field_of, sort_key

HTML_SAMPLES_PER_CAUSE = 20     # records shown per refusal cause (all of them are in failures.csv)
HTML_CAUSES = 60                # causes shown, most frequent first
HTML_REBUILT = 200              # rebuilt checkpoints shown, largest first
HTML_RUNS = 400                 # run directories shown, those that need a person first
NOT_FOLLOWED_SHOWN = 20         # symbolic links not followed that summary.json names (all are in records.jsonl)


def empty_status_entry() -> dict:
    return {"records": 0, "data_bytes": 0, "bytes_scanned": 0, "seconds": 0.0}


@dataclasses.dataclass
class Totals:
    """The counts summary.json reports (summary.py turns them into its fields)."""

    records: int = 0
    counts: Counter = dataclasses.field(default_factory=Counter)
    kinds: Counter = dataclasses.field(default_factory=Counter)
    per_kind: dict = dataclasses.field(default_factory=dict)     # kind -> Counter of statuses
    per_root: dict = dataclasses.field(default_factory=dict)     # root -> {records, counts}
    per_status: dict = dataclasses.field(default_factory=dict)   # status -> {records, data_bytes, ...}
    data_bytes: int = 0
    bytes_scanned: int = 0
    rebuilt_data_bytes: int = 0
    staged_indexes: int = 0
    written_in_place: int = 0
    salvageable: int = 0
    changes: Counter = dataclasses.field(default_factory=Counter)   # new, persists, resolved, deleted (first found)
    carried: int = 0
    not_followed: int = 0       # symbolic links to directories outside their root (listing records with a source)
    not_followed_where: list = dataclasses.field(default_factory=list)   # "LINK -> TARGET", the first few

    _SUMS = ("records", "data_bytes", "bytes_scanned", "rebuilt_data_bytes", "staged_indexes", "written_in_place",
             "salvageable", "carried", "not_followed")

    def add(self, record) -> "Totals":
        """Fold one record in; a nested entry is made only for a status, kind or root not seen before."""
        status, root, kind = record.status, record.root, record.kind
        data_bytes, scanned = record.data_bytes, record.bytes_scanned
        self.records += 1
        self.counts[status] += 1
        self.kinds[kind] += 1
        by_kind = self.per_kind.get(kind)
        if by_kind is None:
            by_kind = self.per_kind[kind] = Counter()
        by_kind[status] += 1
        entry = self.per_root.get(root)
        if entry is None:
            entry = self.per_root[root] = {"records": 0, "counts": Counter()}
        entry["records"] += 1
        entry["counts"][status] += 1
        per = self.per_status.get(status)
        if per is None:
            per = self.per_status[status] = empty_status_entry()
        per["records"] += 1
        per["data_bytes"] += data_bytes
        per["bytes_scanned"] += scanned
        per["seconds"] += record.seconds or 0.0
        self.data_bytes += data_bytes
        self.bytes_scanned += scanned
        self.salvageable += bool(field_of(record, "salvage"))
        if status == REBUILT:
            self.rebuilt_data_bytes += data_bytes
            if record.staged:
                self.staged_indexes += 1
            else:
                self.written_in_place += 1
        elif record.staged:
            self.staged_indexes += 1
        change = field_of(record, "change", "")
        if change:
            self.changes["deleted" if status == DELETED and change == NEW else change] += 1
        if field_of(record, "carried_from", ""):
            self.carried += 1
        if kind == LISTING and record.source:
            self.not_followed += 1
            self.not_followed_where = sorted([*self.not_followed_where, f"{record.prefix} -> {record.source}"]
                                             )[:NOT_FOLLOWED_SHOWN]
        return self

    def merge(self, others) -> "Totals":
        for other in others:
            for name in self._SUMS:
                setattr(self, name, getattr(self, name) + getattr(other, name))
            self.changes.update(other.changes)
            self.counts.update(other.counts)
            self.kinds.update(other.kinds)
            for kind, counts in other.per_kind.items():
                self.per_kind.setdefault(kind, Counter()).update(counts)
            for root, entry in other.per_root.items():
                mine = self.per_root.setdefault(root, {"records": 0, "counts": Counter()})
                mine["records"] += entry["records"]
                mine["counts"].update(entry["counts"])
            for status, entry in other.per_status.items():
                mine = self.per_status.setdefault(status, empty_status_entry())
                for name, value in entry.items():
                    mine[name] += value
            self.not_followed_where = sorted(self.not_followed_where + other.not_followed_where)[:NOT_FOLLOWED_SHOWN]
        return self


def run_key(record) -> tuple:
    """(root, run directory): what the page's runs are told apart by."""
    return (record.root, record.directory or record.root)


@dataclasses.dataclass
class Run:
    """One run directory: its counts, its latest step, and (from the latest_checkpoint() join in
    latest.py) whether its `checkpoint` state file resolves now and after promotion."""

    counts: Counter = dataclasses.field(default_factory=Counter)
    checkpoints: int = 0
    leftovers: int = 0
    state_files: int = 0
    needs_a_person: int = 0
    data_bytes: int = 0
    rebuilt_data_bytes: int = 0
    latest: tuple | None = None          # (step, prefix, status, staged) of the highest step
    newest_mtime: float | None = None
    state_latest: str | None = None      # what the state file names as latest
    resolves_now: bool | None = None
    resolves_after: bool | None = None

    _SUMS = ("checkpoints", "leftovers", "state_files", "needs_a_person", "data_bytes", "rebuilt_data_bytes")
    _JOINED = ("state_latest", "resolves_now", "resolves_after")

    def add(self, record) -> "Run":
        self.counts[record.status] += 1
        self.needs_a_person += record.needs_a_person
        self.data_bytes += record.data_bytes
        if record.kind == CHECKPOINT:
            self.checkpoints += 1
            if record.status == REBUILT:
                self.rebuilt_data_bytes += record.data_bytes
            step = step_of(record.prefix)
            if step is not None:
                latest = (step, record.prefix, record.status, bool(record.staged))
                self.latest = max(self.latest, latest) if self.latest else latest
            mtime = field_of(record, "mtime")
            if mtime is not None:
                self.newest_mtime = max(self.newest_mtime or mtime, mtime)
        elif record.kind == LEFTOVER:
            self.leftovers += 1
        elif record.kind == STATE_FILE:
            self.state_files += 1
        return self

    def merge(self, others) -> "Run":
        for other in others:
            self.counts.update(other.counts)
            for name in self._SUMS:
                setattr(self, name, getattr(self, name) + getattr(other, name))
            if other.latest and (not self.latest or other.latest > self.latest):
                self.latest = other.latest
            if other.newest_mtime is not None:
                self.newest_mtime = max(self.newest_mtime or other.newest_mtime, other.newest_mtime)
            for name in self._JOINED:
                if getattr(other, name) is not None:
                    setattr(self, name, getattr(other, name))
        return self

    def row(self, key: tuple) -> dict:
        """The run as the page lists it."""
        root, directory = key
        latest = self.latest
        return {
            "root": root, "directory": directory,
            "counts": dict(self.counts), "checkpoints": self.checkpoints, "leftovers": self.leftovers,
            "state_files": self.state_files, "needs_a_person": self.needs_a_person,
            "data_bytes": self.data_bytes, "rebuilt_data_bytes": self.rebuilt_data_bytes,
            "latest_step": latest[0] if latest else None, "latest_prefix": latest[1] if latest else "",
            "latest_status": latest[2] if latest else "", "newest_mtime": self.newest_mtime,
            "state_latest": self.state_latest, "resolves_now": self.resolves_now,
            "resolves_after": self.resolves_after,
        }


def run_priority(row: dict) -> tuple:
    """Runs a person should look at first: problems, then a latest_checkpoint() that does not resolve."""
    return (row["needs_a_person"] > 0, row["resolves_now"] is False, row["counts"].get(REBUILT, 0),
            row["checkpoints"], row["directory"])


_PATH_RE = re.compile(r"\S*/\S*")
_NAME_RE = re.compile(r"\b[\w.]*[-_.]\d+\b")     # a checkpoint's name: ckpt-9, model.ckpt-200
_NUMBER_RE = re.compile(r"\d+")


def cause_of(record) -> str:
    """The reason with the particulars (paths, checkpoint names, numbers) taken out, so like refusals
    group together: one cause, one row on the page."""
    head = re.split(r"; |\. (?=[A-Z])", record.reason or "", maxsplit=1)[0]
    head = _NUMBER_RE.sub("N", _NAME_RE.sub("…", _PATH_RE.sub("…", head))).strip() or "(no reason given)"
    if len(head) > 160:
        head = head[:160].rsplit(" ", 1)[0] + " …"
    head = head.encode("utf-8", "backslashreplace").decode("utf-8")   # a name's byte that is not UTF-8, escaped:
    return f"{record.status}: {head}"                                  # the key goes through Beam's UTF-8 coder


def cause_priority(row: dict) -> tuple:
    return (row["count"], row["cause"])


def shown(record) -> dict:
    """What the page shows of one record (lists cut short; the full record is in records.jsonl)."""
    evidence = field_of(record, "evidence")
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
        "rehearsal": record.rehearsal, "evidence": evidence, "mtime": field_of(record, "mtime"),
        "salvage": field_of(record, "salvage") or {},
        "change": field_of(record, "change", ""), "since": field_of(record, "since", ""),
        "carried_from": field_of(record, "carried_from", ""),
        "tensors": evidence.get("reference_total") if isinstance(evidence, dict) else None,
        "bytes_scanned": record.bytes_scanned,
    }


def _first(samples: list) -> list:
    return heapq.nsmallest(HTML_SAMPLES_PER_CAUSE, samples, key=lambda s: s[0])


@dataclasses.dataclass
class Cause:
    """The records of one refusal cause: how many, and the first few (in records.jsonl order) to show."""

    count: int = 0
    samples: list = dataclasses.field(default_factory=list)   # (sort key, shown record)

    def add(self, record) -> "Cause":
        self.count += 1
        self.samples.append((sort_key(record), shown(record)))
        if len(self.samples) > 2 * HTML_SAMPLES_PER_CAUSE:
            self.samples = _first(self.samples)
        return self

    def merge(self, others) -> "Cause":
        for other in others:
            self.count += other.count
            self.samples = _first(self.samples + other.samples)
        return self

    def row(self, cause: str) -> dict:
        return {"cause": cause, "status": cause.split(":", 1)[0], "count": self.count,
                "samples": [s for _, s in sorted(self.samples, key=lambda s: s[0])[:HTML_SAMPLES_PER_CAUSE]]}


def rebuilt_rank(row: dict) -> tuple:
    return (row["data_bytes"], row["prefix"])


@dataclasses.dataclass
class Largest:
    """The HTML_REBUILT largest rebuilt checkpoints, as the page shows them."""

    kept: list = dataclasses.field(default_factory=list)

    def add(self, record) -> "Largest":
        self.kept.append(shown(record))
        if len(self.kept) > 2 * HTML_REBUILT:
            self.kept = self.rows()
        return self

    def merge(self, others) -> "Largest":
        for other in others:
            self.kept = heapq.nlargest(HTML_REBUILT, self.kept + other.kept, key=rebuilt_rank)
        return self

    def rows(self) -> list:
        return heapq.nlargest(HTML_REBUILT, self.kept, key=rebuilt_rank)


class Changed(Cause):
    """The records of one group of what changed since the previous run: how many, and the first few."""

    def row(self, group: str) -> dict:
        return {"group": group, "count": self.count,
                "samples": [s for _, s in sorted(self.samples, key=lambda s: s[0])[:HTML_SAMPLES_PER_CAUSE]]}


# --- Which aggregates a record counts in ----------------------------------------------------------

TOTALS, RUN, CAUSE, LARGEST, CHANGE = "totals", "run", "cause", "largest", "change"
KINDS = {TOTALS: Totals, RUN: Run, CAUSE: Cause, LARGEST: Largest, CHANGE: Changed}


def keys_of(record) -> list:
    """The key of every aggregate the record counts in: the kind (a key of KINDS) first, then what
    tells that kind's aggregates apart (a run's root and directory, a cause, a group of changes)."""
    keys = [(TOTALS,), (RUN, *run_key(record))]
    if record.status in NEEDS_A_PERSON or record.status == ERROR:     # errors: what to run again
        keys.append((CAUSE, cause_of(record)))
    if record.status == REBUILT:
        keys.append((LARGEST,))
    group = change_group(record)
    if group:
        keys.append((CHANGE, group))
    return keys


@dataclasses.dataclass
class Overview:
    """Every keyed aggregate of a report reduced to what the files are rendered from: the totals, the
    runs and causes a person should see first (bounded) with how many there were, the largest rebuilds.
    `add` takes (key, aggregate) pairs: the aggregates once every record and join is in."""

    totals: Totals = dataclasses.field(default_factory=Totals)
    run_rows: list = dataclasses.field(default_factory=list)
    run_count: int = 0
    cause_rows: list = dataclasses.field(default_factory=list)
    cause_count: int = 0
    largest: Largest = dataclasses.field(default_factory=Largest)
    changed: dict = dataclasses.field(default_factory=dict)      # change group -> Changed
    others: dict = dataclasses.field(default_factory=dict)       # kind -> an aggregate made elsewhere (NightCounts)

    def add(self, keyed) -> "Overview":
        key, aggregate = keyed
        if key[0] == TOTALS:
            self.totals.merge([aggregate])
        elif key[0] == RUN:
            self.run_count += 1
            self.run_rows = _kept(self.run_rows, aggregate.row(key[1:]), HTML_RUNS, run_priority)
        elif key[0] == CAUSE:
            self.cause_count += 1
            self.cause_rows = _kept(self.cause_rows, aggregate.row(key[1]), HTML_CAUSES, cause_priority)
        elif key[0] == LARGEST:
            self.largest.merge([aggregate])
        elif key[0] == CHANGE:
            self.changed.setdefault(key[1], Changed()).merge([aggregate])
        else:         # a kind made elsewhere, merged by its own merge into a copy of the first
            held = self.others.get(key[0])
            self.others[key[0]] = (type(aggregate)() if held is None else held).merge([aggregate])
        return self

    def merge(self, others) -> "Overview":
        for other in others:
            self.totals.merge([other.totals])
            self.run_count += other.run_count
            self.run_rows = heapq.nlargest(HTML_RUNS, self.run_rows + other.run_rows, key=run_priority)
            self.cause_count += other.cause_count
            self.cause_rows = heapq.nlargest(HTML_CAUSES, self.cause_rows + other.cause_rows, key=cause_priority)
            self.largest.merge([other.largest])
            for group, aggregate in other.changed.items():
                self.changed.setdefault(group, Changed()).merge([aggregate])
            for kind, aggregate in other.others.items():
                self.add(((kind,), aggregate))
        return self

    def runs(self) -> list:
        """The HTML_RUNS runs a person should look at first, those first."""
        return heapq.nlargest(HTML_RUNS, self.run_rows, key=run_priority)

    def causes(self) -> list:
        """The HTML_CAUSES most frequent causes, most frequent first."""
        return heapq.nlargest(HTML_CAUSES, self.cause_rows, key=cause_priority)

    def rebuilt(self) -> list:
        return self.largest.rows()

    def changes(self) -> list:
        """What changed since the previous run, by group, new first: {group, count, samples}."""
        return [self.changed[g].row(g) for g in CHANGE_GROUPS if g in self.changed]


def _kept(rows: list, row: dict, limit: int, key) -> list:
    """rows with row added, cut to the `limit` largest by `key` whenever they hold twice as many."""
    rows.append(row)
    return heapq.nlargest(limit, rows, key=key) if len(rows) > 2 * limit else rows
