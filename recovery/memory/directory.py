"""One directory's night: carried forward when its listing is unchanged since it was last judged (and
its verdicts were final), else judged afresh; compared with what the previous run saw (new, persists,
resolved, deleted); its healthy indexes kept in the vault as read; and, with a vault, remembered as a
snapshot for the next night. The classification stage calls `night_of` once per directory.
"""

import logging
import posixpath
from dataclasses import dataclass, field

from .. import storage, stores
from ..classify import classify_directory
from ..discovery import group_directory
from ..records import CHECKPOINT, HEALTHY, Record
from ..tasks import OrphanTask
from ..vault import ORIGIN_SEEN_HEALTHY, shard_records, vault_for
from .carry import CannotCarry, cannot_carry, carried, restager
from .carry_form import CarriedForm, form_of, from_bytes, to_bytes, usable
from .changes import changed, deletable, deleted
from .digest import listing_digest
from .nightly import DAY, NightCounts, Nightly, iso
from .rotation import due, not_due_note, without_verification_notes
from .snapshots import COVERED_PART, Head, MemoryStore, key_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judging:
    """How the run classifies (the audit's options that classification needs)."""

    min_age: float = 0.0          # seconds
    in_place: bool = False
    verify_data: bool = False
    check_healthy: bool = False   # --verify-data or --rehearse: healthy checkpoints are checked after


@dataclass
class DirectoryNight:
    records: list = field(default_factory=list)     # Records to report as they are
    orphans: list = field(default_factory=list)     # OrphanTasks to rebuild
    to_check: list = field(default_factory=list)    # healthy Records to verify or rehearse tonight
    line: dict = field(default_factory=dict)        # the directory's line of directories.jsonl
    counts: NightCounts = field(default_factory=NightCounts)
    form: CarriedForm | None = None                 # what reports the carried records `records` leaves out


def stores_of(nightly: Nightly) -> tuple:
    """(the vault or None, where snapshots are kept or None, what tonight is compared with or None)."""
    vault = vault_for(nightly.vault) if nightly.vault else None
    keep = MemoryStore(nightly.vault) if nightly.vault else None
    compare = keep if nightly.compare and nightly.compare == nightly.vault else \
        MemoryStore(nightly.compare) if nightly.compare else None
    return vault, keep, compare


def night_of(fs, root: str, directory: str, files: list, nightly: Nightly, judging: Judging) -> DirectoryNight:
    """`root`: the audited root as records name it; `directory`: a filesystem path; `files`: its Listed."""
    shown = storage.display(fs, directory)
    night = DirectoryNight(counts=NightCounts(listed=1))
    vault, keep_in, compare = stores_of(nightly)
    last = keep_in.latest(shown, nightly.run_id, nightly.now) if keep_in else None
    earlier = (last if compare is keep_in else compare.latest(shown, nightly.run_id, nightly.now)) if compare else None
    digest = listing_digest(directory, files)
    why = cannot_carry(last, digest, nightly) if keep_in else "no --vault"
    if not why:
        form = _form(keep_in, last, root, compare is keep_in, nightly, judging)
        # with a form, compared with the very snapshot carried: the records it does not cover are all it needs
        before = last.current_read() if form else earlier.current() if earlier is not None else {}
        try:
            kept = carried(last, root, nightly, restager(vault, nightly.report_dir, _present(fs, directory, files)),
                           before, form.covers if form else frozenset())
        except CannotCarry as exc:
            why = str(exc)
    if why:
        before = earlier.current() if earlier is not None else {}
        _judge(fs, root, group_directory(directory, files), nightly, judging, vault, before, night)
    else:
        night.counts.carried = 1
        night.form = form
        for record in kept:
            _route(record, None, nightly, judging, night)
    if why and keep_in is not None:
        _remember(keep_in, last, shown, root, digest, files, directory, nightly, night, judging)
    in_form = len(night.form.covers) if night.form else 0
    reported = len(night.records) + len(night.to_check) + len(night.orphans) + in_form
    night.line = {"root": root, "directory": shown, "files": len(files), "digest": digest or "",
                  "judged": nightly.now_iso if why else "", "carried_from": "" if why else last.head.judged,
                  "why": why, "records": reported}
    return night


def _form(keep_in: MemoryStore, snapshot, root: str, compared_with_itself: bool, nightly: Nightly,
          judging: Judging) -> CarriedForm | None:
    """The snapshot's carried form when tonight may use it; None (each record carried) otherwise, and for
    a form that cannot be read: it only ever saves work."""
    if len(snapshot.carried) != 1:
        return None
    try:
        form = from_bytes(keep_in.read_carried(snapshot.carried[0]))
    except Exception as exc:  # noqa: BLE001 - damaged or unreadable: the records are carried one by one
        log.warning("the carried form %s is not used: %s", snapshot.carried[0], exc)
        return None
    return form if usable(form, snapshot, root, compared_with_itself, nightly.known, judging.check_healthy) else None


def _judge(fs, root: str, contents, nightly: Nightly, judging: Judging, vault, before: dict,
           night: DirectoryNight) -> None:
    night.counts.judged = 1
    keep = _keeper(vault, fs, contents, nightly, night.counts) if vault is not None else None
    verify = (lambda prefix: due(prefix, nightly.verify_share, nightly.verify_round)) if judging.verify_data else False
    results = classify_directory(fs, contents, root, judging.min_age, nightly.now, judging.in_place, verify, keep)
    seen = set()
    for result in results:
        if isinstance(result, OrphanTask):
            seen.add((result.display_prefix, CHECKPOINT))
            night.orphans.append(result)
            continue
        seen.add(key_of(result))
        _route(changed(result, before.get(key_of(result)), nightly), before.get(key_of(result)), nightly, judging,
               night)
    _report_gone([previous for key, previous in before.items() if key not in seen], root, nightly, vault, night)


def _report_gone(gone_since: list, root: str, nightly: Nightly, vault, night: DirectoryNight) -> None:
    """A `deleted` record for each record of the previous run whose subject is gone, until reported for
    longer than --vault-keep-days; then its vault entries are pruned instead."""
    for previous in gone_since:
        if not deletable(previous):
            continue
        gone = deleted(previous, root, nightly, _kept_until(previous, nightly) if vault is not None else "")
        if gone is not None:
            night.records.append(changed(gone, previous, nightly))
        elif previous.kind == CHECKPOINT and vault is not None:
            night.counts.pruned += vault.prune_prefix(previous.prefix)


def _route(record: Record, earlier: Record | None, nightly: Nightly, judging: Judging, night: DirectoryNight) -> None:
    """A healthy checkpoint due for --verify-data / --rehearse goes to be checked; one not due says when
    it was and will be; everything else is reported as it is."""
    if record.status == HEALTHY and record.kind == CHECKPOINT and judging.check_healthy:
        if due(record.prefix, nightly.verify_share, nightly.verify_round):
            night.to_check.append(without_verification_notes(record))
            return
        record = not_due_note(record, earlier, nightly.verify_share, nightly.verify_round)
    night.records.append(record)


def _kept_until(previous: Record, nightly: Nightly) -> str:
    if previous.kind != CHECKPOINT:
        return ""
    return iso(nightly.now + nightly.keep_days * DAY)


def _present(fs, directory: str, files: list):
    """prefix as displayed -> its data files as listed now (ShardRecords with the store's identity). The
    directory is grouped when first asked: a carried directory whose staged indexes the vault names never is."""
    store = stores.store_for_fs(fs)
    grouped = []

    def present(prefix: str) -> list:
        if not grouped:
            grouped.append(group_directory(directory, files))
        path = storage.split_prefix(prefix)[1]
        return shard_records(path, grouped[0].listing_for(path), store)

    return present


def _keeper(vault, fs, contents, nightly: Nightly, counts: NightCounts):
    """keep(found, index_bytes, graph) for classify_directory: the vault keeps each healthy index as read. A
    vault that does not take it is a warning and a count, never a verdict about the checkpoint."""
    store = stores.store_for_fs(fs)

    def keep(found, index_bytes: bytes, graph: bytes | None = None) -> None:
        prefix = storage.display(fs, found.prefix)
        try:
            kept = vault.keep(prefix, index_bytes, shard_records(found.prefix, contents.listing_for(found.prefix),
                                                                 store),
                              ORIGIN_SEEN_HEALTHY, nightly.now, nightly.run_id, object_graph=graph)
            if kept.created:
                counts.kept += 1
                counts.kept_bytes += len(index_bytes)
                counts.pruned += retire_superseded(vault, prefix, nightly)
        except Exception as exc:  # noqa: BLE001 - the checkpoint's verdict stands whatever the vault does
            log.warning("the vault did not keep the index of %s: %s", prefix, exc)
            counts.vault_failed += 1

    return keep


def retire_superseded(vault, prefix: str, nightly: Nightly) -> int:
    """A prefix saved again under one name gains an entry per distinct index: the entries a newer one
    superseded go once older than --vault-keep-days (never the newest)."""
    retired = 0
    for entry in vault.entries(prefix)[1:]:
        if nightly.expired(entry.first_seen):
            vault.remove(entry)
            retired += 1
    return retired


def _remember(keep_in: MemoryStore, last, shown: str, root: str, digest, files, directory: str, nightly: Nightly,
              night: DirectoryNight, judging: Judging) -> None:
    """Write tonight's snapshot of a judged directory: its head (the listing) and the records made so far;
    the rebuilds' records follow from their own stage. Snapshots superseded long enough are dropped."""
    base = directory.rstrip("/") + "/"
    listed = tuple((f.path[len(base):] if f.path.startswith(base) else posixpath.basename(f.path), f.size,
                    f.identity) for f in sorted(files, key=lambda f: f.path))
    head = Head(shown, root, digest, nightly.now_iso, nightly.run_id, nightly.report_dir,
                len(night.records) + len(night.to_check) + len(night.orphans), nightly.judged_with, listed)
    folder = keep_in.folder(shown, nightly.now, nightly.run_id)
    try:
        keep_in.write_head(folder, head)
        judged = [*night.records, *night.to_check]
        form = _form_of(judged, root, nightly, judging)
        covers = form.covers if form else frozenset()
        covered = [record for record in judged if key_of(record) in covers]
        if len(covered) < len(judged):
            keep_in.write_records(folder, [record for record in judged if key_of(record) not in covers])
        if covered:
            keep_in.write_records(folder, covered, COVERED_PART)
        keep = last.location if last is not None and not last.unreadable else folder    # damaged: let it go
        keep_in.drop_older(shown, keep, nightly.now - nightly.keep_days * DAY)
    except Exception as exc:  # noqa: BLE001 - tonight's verdicts stand; the directory is judged again next night
        log.warning("the vault did not take tonight's snapshot of %s: %s", shown, exc)
        night.counts.vault_failed += 1
        return
    if covered:
        try:
            keep_in.write_carried(folder, to_bytes(form))
        except Exception as exc:  # noqa: BLE001 - without it the covered records are read and carried one by one
            log.warning("the vault did not take the carried form of %s: %s", shown, exc)
            night.counts.vault_failed += 1


def _form_of(judged: list, root: str, nightly: Nightly, judging: Judging) -> CarriedForm | None:
    """The carried form of tonight's judged records, or None: a night that verifies or rehearses carries
    each record (their rotation notes), and a form is only ever a saving."""
    if not judged or judging.check_healthy:
        return None
    try:
        return form_of(judged, root, nightly.now_iso)
    except Exception as exc:  # noqa: BLE001 - the snapshot is kept without one
        log.warning("no carried form of %s's records: %s", root, exc)
        return None



def night_of_gone(root: str, directory: str, nightly: Nightly) -> DirectoryNight:
    """A directory the previous run listed that is not there tonight: a `deleted` record for each thing
    it held (until reported longer than --vault-keep-days, when its vault entries go), remembered as a
    snapshot of its own so the next night reports it too."""
    night = DirectoryNight(counts=NightCounts(gone=1))
    vault, keep_in, compare = stores_of(nightly)
    earlier = compare.latest(directory, nightly.run_id, nightly.now) if compare else None
    if earlier is None:
        return night
    _report_gone(list(earlier.current().values()), root, nightly, vault, night)
    if keep_in is not None and night.records:
        folder = keep_in.folder(directory, nightly.now, nightly.run_id)
        try:
            keep_in.write_head(folder, Head(directory, root, None, nightly.now_iso, nightly.run_id, nightly.report_dir,
                                            len(night.records), nightly.judged_with, gone=True))
            keep_in.write_records(folder, night.records)
        except Exception as exc:  # noqa: BLE001 - reported tonight; the next night finds it gone again
            log.warning("the vault did not take tonight's snapshot of %s: %s", directory, exc)
            night.counts.vault_failed += 1
    elif keep_in is not None and compare is keep_in:
        keep_in.drop_directory(directory)       # every deletion reported long enough: forget the directory
    if night.records:
        night.line = {"root": root, "directory": directory, "files": 0, "digest": "", "judged": nightly.now_iso,
                      "carried_from": "", "why": "gone", "records": len(night.records)}
    return night
