"""What a judged directory will add to the report of a night that carries it forward, made the night it
is judged and kept beside its snapshot, so that a carrying night reports it without reading back,
remaking, writing out and counting each of its records again (most of a carried night's work).

It covers the records whose carried line depends on nothing but the record and the snapshot: a record
that the report only counts (its totals and its run), that offers no command to add options to,
stages no index, and knows since when its status holds. For those it holds their records.jsonl part
lines as a carrying night would write them, their Tally counts, their Totals and Run aggregates (the
state files' latest_checkpoint() answers among them merged in), and the claims they did not answer.
A carrying night uses it only where it reports exactly what carrying each record would
(`usable`); the records it does not cover, a staged rebuild's say, are carried one by one as before.
"""

import dataclasses
import json
from collections import Counter

from ..records import DELETED, ERROR, IN_PROGRESS, INSPECT, Record
from ..report.aggregates import KINDS, RUN, TOTALS, Run, Totals, keys_of
from ..report.fold import tally
from ..report.latest import StateFileClaim, resolved_within
from ..report.parts import key_text, lines_for, split_keyed
from ..report.schema import RECORDS, parse_json
from .carry import as_carried, needs_staging, unchanged_note
from .snapshots import key_of

FORMAT = "ckpt-rescue-carried/1"
_ONLY_COUNTED = 2           # keys_of: the totals and the record's run
NOT_COVERED = (ERROR, IN_PROGRESS, DELETED)


@dataclasses.dataclass
class CarriedForm:
    root: str                                   # the root its records name
    judged: str                                 # the snapshot's judged time (its head's)
    covers: frozenset                           # key_of of every record it stands for
    lines: bytes                                # their records.jsonl part lines (parts.KEYED), sorted
    counts: dict                                # Tally's counters for them
    aggregates: dict                            # keys_of key -> aggregate: their Totals and their run's Run
    claims: list                                # (prefix, StateFileClaim) they did not answer

    def part_lines(self) -> list:
        """(output, (sort key, line)) as parts.lines_for gives them, for the report's parts."""
        return [(RECORDS, split_keyed(line.decode("utf-8"))) for line in self.lines.splitlines(keepends=True)]


class FormBatch(list):
    """A carried directory's batch for the report: the records the form does not cover, and the form."""

    def __init__(self, records, form: CarriedForm):
        super().__init__(records)
        self.form = form


def carried_alike(record: Record) -> bool:
    """Is the record's carried line the same whatever night carries it (see the module docstring)? A
    verdict that keeps a directory from being carried (error, in-progress, a deletion that expires) never
    is: a carrying night finds those among the records it reads."""
    return (record.status not in NOT_COVERED and bool(record.since) and not needs_staging(record)
            and not record.command.startswith(INSPECT) and len(keys_of(record)) == _ONLY_COUNTED)


def form_of(records: list, root: str, judged: str) -> CarriedForm:
    """The form of a directory's judged records (its snapshot's records part), as a night that carries
    the snapshot judged at `judged` would report them: compared with themselves, each persists."""
    note = unchanged_note(judged)
    covered, keys = [], []
    for record in records:
        carried = as_carried(record, root, judged, note, {"change": "persists", "since": record.since})
        if carried_alike(carried):
            covered.append(carried)
            keys.append(key_of(record))
    held = {}
    for carried in covered:
        for key in keys_of(carried):
            held.setdefault(key, KINDS[key[0]]()).add(carried)
    resolved, claims = resolved_within(covered)
    for key, resolution in resolved:
        held.setdefault((RUN, *key), Run()).merge([resolution])
    keyed = sorted((pair for carried in covered for _, pair in lines_for(carried)), key=lambda pair: pair[0])
    lines = "".join(f"{key_text(key)}\t{line}" for key, line in keyed).encode("utf-8")
    return CarriedForm(root, judged, frozenset(keys), lines, dict(tally(covered, Counter())), held, claims)


def usable(form: CarriedForm | None, snapshot, root: str, compared_with_itself: bool, known: bool,
           verifying: bool) -> bool:
    """Does the form report what carrying each record would, tonight? Only against this very snapshot
    (a record persists against itself), for the root it was made for, with a previous run known, with
    nothing to verify or rehearse tonight (those go one by one) and no later verification over them."""
    if form is None or not compared_with_itself or not known or verifying:
        return False
    if form.root != root or form.judged != snapshot.head.judged:
        return False
    unread = sum(count for _, count in snapshot.pending)     # the covered part it was made with, not read
    return (unread == len(form.covers) and not (form.covers & snapshot.records.keys())
            and not (form.covers & snapshot.verified.keys()))


# --- as kept in the vault: a JSON line of what it is, then its part lines ---------------------------

def to_bytes(form: CarriedForm) -> bytes:
    meta = {"format": FORMAT, "root": form.root, "judged": form.judged, "covers": sorted(form.covers),
            "counts": form.counts, "totals": _plain(form.aggregates.get((TOTALS,), Totals())),
            "runs": [[*key[1:], _plain(run)] for key, run in sorted(form.aggregates.items()) if key[0] == RUN],
            "claims": [[prefix, *claim] for prefix, claim in form.claims]}
    return json.dumps(meta, sort_keys=True).encode("utf-8") + b"\n" + form.lines


def from_bytes(data: bytes) -> CarriedForm:
    """ValueError for anything but a form of this format whose lines are one per record covered."""
    first, _, lines = data.partition(b"\n")
    meta = parse_json(first)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a carried form")
    try:
        covers = frozenset(tuple(key) for key in meta["covers"])
        aggregates = {(TOTALS,): _totals(meta["totals"]),
                      **{(RUN, root, directory): _run(run) for root, directory, run in meta["runs"]}}
        form = CarriedForm(meta["root"], meta["judged"], covers, lines, dict(meta["counts"]), aggregates,
                           [(prefix, StateFileClaim(*claim)) for prefix, *claim in meta["claims"]])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a carried form ({exc})") from None
    if lines.count(b"\n") != len(covers) or (lines and not lines.endswith(b"\n")):
        raise ValueError("a carried form's lines do not match what it covers")
    return form


def _plain(aggregate) -> dict:
    return {f.name: getattr(aggregate, f.name) for f in dataclasses.fields(aggregate)}


def _totals(plain: dict) -> Totals:
    counters = ("counts", "kinds", "changes")
    return Totals(**{**plain, **{name: Counter(plain[name]) for name in counters},
                     "per_kind": {kind: Counter(c) for kind, c in plain["per_kind"].items()},
                     "per_root": {root: {"records": e["records"], "counts": Counter(e["counts"])}
                                  for root, e in plain["per_root"].items()}})


def _run(plain: dict) -> Run:
    latest = plain.get("latest")
    return Run(**{**plain, "counts": Counter(plain["counts"]), "latest": tuple(latest) if latest else None})
