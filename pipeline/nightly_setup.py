"""The audit's nightly memory, set up by the launcher before any work: the vault opened (or made) and
checked against the roots and the report directory, the previous run found (in the vault, or named by
--previous), the run's clock, and what a verdict depends on; then, once the report directory is
marked, the run recorded in the vault and an explicitly named previous report split by directory."""

import dataclasses
import datetime
import hashlib
import json

from recovery import storage
from recovery.listing import same_filesystem_path
from recovery.memory import previous as earlier
from recovery.memory import runs
from recovery.memory.nightly import Nightly, iso
from recovery.report.summary import tool_version
from recovery.vault import VaultError, vault_for

from .cli import UsageError


def clock(text: str) -> float:
    """--now: epoch seconds, or ISO 8601 (`2026-12-05T02:30:00Z`)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


clock.__name__ = "time"


def check_vault_place(vault_url: str, roots: list, report_dir: str) -> None:
    """The vault may sit inside a root (its marker leaves it out of the listing), but it may not be or
    contain a root (the audit would not see those checkpoints) or lie inside the report directory (a
    report is one night's; the vault is every night's)."""
    vault = _path_of(vault_url)
    for root in roots:
        inside = same_filesystem_path(vault_url, root)
        if inside is None:
            continue
        root_path = inside.rstrip("/") or "/"
        if root_path == vault or root_path.startswith(vault.rstrip("/") + "/"):
            raise UsageError(f"--vault {vault_url} {'is' if root_path == vault else 'contains'} the root {root}: "
                             "the audit leaves the vault out of the listing; give the vault a place of its own")
    inside = same_filesystem_path(report_dir, vault_url)
    if inside is not None:
        report = _path_of(report_dir)
        if inside == report or inside.startswith(report.rstrip("/") + "/"):
            raise UsageError(f"--vault {vault_url} lies inside --report-dir {report_dir}: a report is one night's, "
                             "the vault every night's; give the vault a place of its own (e.g. beside the reports)")


def _path_of(url: str) -> str:
    return storage.url_to_fs(url)[1].rstrip("/") or "/"


def judged_with(args, layouts: dict | None) -> str:
    """What a verdict depends on besides the listing: a directory judged with another version, registry
    or these options is judged again rather than carried."""
    registry = {name: layout.to_json() for name, layout in (layouts or {}).items()}
    basis = {"version": tool_version(), "registry": registry, "allow_zeros": args.allow_zeros,
             "in_place": args.in_place, "rehearse": args.rehearse}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def prepare(args, roots: list, shown_roots: list, run_id: str, now: float, layouts: dict | None) -> tuple:
    """(Nightly, what the run's meta gains) from the audit's arguments, before any work."""
    if args.verify_share is not None and not (args.verify_data or args.rehearse):
        raise UsageError("--verify-share 1/N chooses which healthy checkpoints --verify-data (or --rehearse) reads "
                         "each run: give it with --verify-data")
    if args.vault_keep_days < 0:
        raise UsageError("--vault-keep-days must be 0 or more")
    if args.vault:
        check_vault_place(args.vault, roots, args.report_dir)
        try:
            vault_for(args.vault, create=True)
        except VaultError as exc:
            raise UsageError(f"--vault {exc}") from None
    previous, warnings = None, []
    if args.previous:
        try:
            previous = earlier.read_previous(args.previous)
        except earlier.NotAReport as exc:
            raise UsageError(f"--previous {exc}") from None
    elif args.vault:
        previous = runs.previous_in_vault(args.vault, shown_roots, now)
    share = args.verify_share
    rounds = 0 if previous is None or previous.verify_round is None else previous.verify_round + 1
    nightly = Nightly(run_id, now, _shown(args.report_dir), vault=_shown(args.vault) if args.vault else None,
                      compare=_shown(args.vault) if args.vault and previous is not None else None,
                      previous=previous, full=args.full, keep_days=args.vault_keep_days, verify_share=share,
                      verify_round=rounds, judged_with=judged_with(args, layouts))
    meta = {"started_iso": iso(now), "vault": nightly.vault, "warnings": warnings,
            "previous_run": previous.summary_field() if previous else None,
            "previous_live": dict(previous.live) if previous else {},
            "options": {"vault": nightly.vault, "vault_keep_days": args.vault_keep_days, "full": args.full,
                        "verify_share": f"1/{share}" if share else None, "verify_round": rounds,
                        "previous": args.previous}}
    return nightly, meta


def start(nightly: Nightly, meta: dict, args) -> Nightly:
    """Once the report directory is marked: record the run in the vault; split an explicitly named
    previous report into tonight's report directory (the memory compared with); find the previous run's
    directories. Returns the Nightly the workers get."""
    if nightly.vault:
        runs.record_start(nightly.vault, meta)
    previous = nightly.previous
    if previous is None:
        return nightly
    if args.previous:
        split = earlier.split_into(previous, args.previous, args.report_dir)
        meta["previous_directories"] = f"{split.rstrip('/')}/{earlier.DIRECTORIES}"
        return _replace(nightly, compare=split)
    try:
        found = earlier.directories_file(previous.report_dir) if previous.report_dir else None
    except (OSError, ValueError, storage.StorageUnavailable):
        found = None
    if found is None:
        meta["warnings"].append(f"the previous run's report ({previous.report_dir}) has no {earlier.DIRECTORIES}: "
                                "directories gone since then are not reported this run")
    meta["previous_directories"] = found
    return nightly


def _replace(nightly: Nightly, **changes) -> Nightly:
    return dataclasses.replace(nightly, **changes)


def _shown(url: str) -> str:
    fs, path = storage.url_to_fs(url)
    return storage.display(fs, path)
