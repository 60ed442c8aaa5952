"""Put the indexes an audit staged beside their data, create-only, from wherever the report is now.

REPORT_DIR is the report directory as it is now: where the audit wrote it, a copy on a laptop, or the
bucket it was written to (local, gs://, s3://). Staged indexes are read from REPORT_DIR/rebuilt/; each
goes to the audited location, or where --root-map OLD=NEW says that tree is now. An index that exists is
never overwritten, and an index is written only where the data files beside it have the sizes it
describes (one create-only write per index: a hard link locally, ifGenerationMatch=0 on GCS,
If-None-Match: * on S3). Re-running it is safe. --replace PREFIX (one a person decided on) keeps an index
the audit found unreadable or stale aside, create-only, before it promotes. `promote.sh` in the report
directory runs this command.

Exit codes: 0 nothing failed (an index already there is left alone), 1 something could not be promoted
or needs a person, 2 usage (no report at REPORT_DIR, a PREFIX it does not hold), 3 storage kept failing.
"""

import difflib
import shlex
import sys

from recovery import storage
from recovery.promotion import FAILED, LEFT, PROMOTED, REPLACED, RootMap, promote, staged_indexes, tally
from recovery.records import EXIT_ATTENTION, EXIT_OK
from recovery.report.readback import read_records, read_summary
from recovery.report.schema import SUMMARY
from recovery.vault import ORIGIN_REBUILT, VaultError, keep_checkpoint

from . import preflight
from .cli import UsageError
from .rebuild_cmd import open_vault


def add_arguments(parser):
    parser.add_argument("report_dir", metavar="REPORT_DIR",
                        help="the audit's report directory as it is now (a copy is fine; local, gs://, s3://)")
    parser.add_argument("prefixes", nargs="*", metavar="PREFIX",
                        help="promote only these checkpoints (as in the records, or relative to their root)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="check everything and say what would be done; write nothing")
    parser.add_argument("--root-map", "--root_map", dest="root_map", action="append", default=[], type=RootMap.parse,
                        metavar="OLD=NEW", help="the audited root OLD is now at NEW (a copy, another mount point or "
                                                "bucket); may be given more than once")
    parser.add_argument("--replace", action="store_true",
                        help="for the PREFIXes named, whose own index the audit found unreadable or stale: keep that "
                             "index aside (P.index.unreadable, P.index.stale, create-only), then promote")
    parser.add_argument("--vault", metavar="URL",
                        help="keep each promoted index in this index vault as `rebuilt` (default: the audit's "
                             "--vault), so a later rehearsal knows it is not independent evidence")


def run(args) -> int:
    preflight.check_access([("REPORT_DIR", args.report_dir), ("--vault", args.vault)])
    summary = _summary(args.report_dir)
    staged = staged_indexes(args.report_dir, summary, read_records(args.report_dir), RootMap(args.root_map))
    staged = _chosen(staged, args.prefixes)
    if args.replace and not args.prefixes:
        raise UsageError("--replace takes the PREFIXes to replace: replacing an index is decided one at a time")
    vault = None if args.dry_run else open_vault(args.vault or summary.get("options", {}).get("vault"))
    outcomes = []
    for item in staged:
        outcome = promote(item, dry_run=args.dry_run, replace=args.replace)
        print(outcome.line())
        if outcome.result in (PROMOTED, REPLACED) and vault is not None:
            _keep(vault, item.prefix, summary.get("run_id", ""))
        outcomes.append(outcome)
    print(tally(outcomes, args.dry_run))
    return EXIT_ATTENTION if any(o.result in (FAILED, LEFT) for o in outcomes) else EXIT_OK


def _summary(report_dir: str) -> dict:
    fs, path = storage.url_to_fs(report_dir)
    if not storage.fresh_exists(fs, f"{path.rstrip('/')}/{SUMMARY}"):
        raise UsageError(f"no finished report at {report_dir} (no {SUMMARY}): give the directory that holds "
                         "report.html and promote.sh, wherever it is now")
    return read_summary(report_dir)


def _chosen(staged: list, prefixes: list) -> list:
    """The staged indexes named by PREFIX (all when none is given); a PREFIX the report does not hold is a
    usage error naming the nearest ones it does."""
    if not prefixes:
        return staged
    names = {}
    for item in staged:
        record = item.record
        names[record.prefix] = item
        names[record.prefix[len(record.root.rstrip("/")) + 1:] if record.prefix.startswith(record.root) else ""] = item
    names.pop("", None)
    chosen, unknown = [], []
    for prefix in prefixes:
        (chosen.append(names[prefix]) if prefix in names else unknown.append(prefix))
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(names), n=3, cutoff=0.5)
        hint = f"; nearest: {', '.join(shlex.quote(n) for n in near)}" if near else ""
        raise UsageError(f"{unknown[0]}: this report staged no index for it{hint}")
    return chosen


def _keep(vault, prefix: str, run_id: str) -> None:
    """The vault learns that ckpt-rescue wrote this index (origin `rebuilt`), so no rehearsal counts it as
    independent evidence about the checkpoint it was rebuilt from."""
    import time

    try:
        keep_checkpoint(vault, prefix, ORIGIN_REBUILT, time.time(), run_id)
    except (OSError, VaultError) as exc:
        print(f"  note: not kept in the vault ({exc}); a rehearsal may take this index for independent evidence",
              file=sys.stderr)
