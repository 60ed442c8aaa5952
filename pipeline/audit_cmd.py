"""Audit checkpoint trees: find every prefix under the roots (local, gs://, s3://, memory://),
classify it, rebuild lost indexes, and write records.jsonl, summary.json, failures.csv and
report.html to --report-dir.

Rebuilt indexes are staged under REPORT_DIR/rebuilt/ unless --in-place is given; nothing that
existed before the run is ever changed. Unknown flags go to Beam (e.g. --runner DataflowRunner).
--detach submits and returns at once, printing the run id and the `ckpt-rescue status` command that
waits for the run and exits with its exit code (the codes are listed below).
"""

import argparse
import json
import os
import shlex
import sys
import time
import uuid

from recovery import storage
from recovery.diagnosis import nearest_paths
from recovery.listing import (
    REPORT_MARKER,
    BadRoot,
    MissingRoot,
    check_root,
    distinct_roots,
    hidden_checkpoint_files,
    same_filesystem_path,
)
from recovery.prefix_steps import DEFAULT_SPLIT_BYTES, AuditSettings
from recovery.records import REBUILT, carried_options
from recovery.registry import write_resolved
from recovery.report.readback import first_failures, read_summary
from recovery.report.schema import HTML, PROMOTE
from recovery.report.summary import statuses_of
from recovery.stores import store_for
from transforms.collection import collect_less

from . import flink_preflight, nightly_setup, preflight
from . import options as beam_flags
from .cli import EXIT_ATTENTION, EXIT_COULD_NOT_CHECK, UsageError
from .option_values import byte_size, minutes, share
from .registry_args import absolute_location, registry_layouts_from_args
from .warm_workers import WarmWorkers

SHOWN_PROBLEMS = 20
DEFAULT_MIN_AGE_MINUTES = 10.0   # a save of a large model takes minutes; a nightly audit must not alarm on it
# Vault entries of a checkpoint gone from storage are kept this long: a month in which a deletion (by a
# lifecycle rule or by mistake) is reported every night and its index can still be restored.
DEFAULT_VAULT_KEEP_DAYS = 30.0
# Local trees up to this size run in this process unless the user chose the engine. Worker processes take
# ~3 s to start; on 2 cores (BENCHMARKS.md, 2026-12-05) one process audited 10,000 prefixes (20,100 files) in
# 0.72x the wall time of two workers, and even 100,000 in 0.98x, but a machine with more cores gains from
# workers sooner, so the limit sits just above 10,000 prefixes.
SMALL_TREE_FILES = 25_000
SMALL_TREE_BYTES = 4 << 30
# The one way to set the audit's clock: ages (--min-age) are measured at this time, in seconds since the
# epoch, instead of each worker's clock. For tests, and for judging a tree as of another moment (docs/running.md).
CLOCK_VARIABLE = "CKPT_RESCUE_NOW"


def add_arguments(parser):
    parser.add_argument("roots", nargs="*", metavar="ROOT", help="directories or bucket prefixes to audit")
    parser.add_argument("--roots", dest="roots_csv", metavar="ROOT[,ROOT...]",
                        help="roots as one comma-separated option (for schedulers that pass only named options)")
    parser.add_argument("--report-dir", "--report_dir", dest="report_dir", required=True, metavar="DIR",
                        help="where the reports and staged indexes go (a local path or a bucket URL)")
    parser.add_argument("--registry", metavar="FILE",
                        help="architecture registry, e.g. configs/architectures.yaml (builders run here, once)")
    parser.add_argument("--in-place", "--in_place", dest="in_place", action="store_true",
                        help="write rebuilt indexes beside their data (create-only; never overwrites)")
    parser.add_argument("--verify-data", "--verify_data", dest="verify_data", action="store_true",
                        help="stream every healthy checkpoint and check each tensor's CRC (bit rot)")
    parser.add_argument("--rehearse", action="store_true",
                        help="rebuild every healthy checkpoint's index from other sources and compare")
    parser.add_argument("--allow-zeros", "--allow_zeros", dest="allow_zeros", action="store_true",
                        help="rebuild orphans even where whole blocks inside tensors (or whole data files) are zeros")
    parser.add_argument("--split-bytes", "--split_bytes", dest="split_bytes", type=byte_size,
                        default=DEFAULT_SPLIT_BYTES, metavar="SIZE",
                        help="data files larger than this are checksummed in ranges on several workers "
                             "(default 256MiB)")
    parser.add_argument("--min-age", "--min_age", dest="min_age", type=minutes, default=DEFAULT_MIN_AGE_MINUTES,
                        metavar="MINUTES",
                        help="files younger than this are reported in progress, never rebuilt "
                             f"(default {DEFAULT_MIN_AGE_MINUTES:g}; 0 judges everything)")
    parser.add_argument("--small-tree-files", "--small_tree_files", dest="small_tree_files", type=int,
                        default=SMALL_TREE_FILES, metavar="N",
                        help="local roots holding at most N files (and 4 GiB) are audited in this process, since "
                             "worker processes take seconds to start; larger trees and buckets get a worker per core "
                             f"(default {SMALL_TREE_FILES}; ignored when --runner, --direct_running_mode, "
                             "--direct_num_workers or --profile is given)")
    parser.add_argument("--profile", metavar="NAME", help="runner profile shipped in the package "
                        f"({', '.join(beam_flags.profile_names()) or 'none found'}) or a YAML path")
    nightly = parser.add_argument_group("nightly memory (docs/running.md, \"Nightly\")")
    nightly.add_argument("--vault", metavar="URL",
                         help="the index vault (local, gs://, s3://): keeps every healthy index it sees, rebuilds a "
                              "lost one from it, and remembers the previous run")
    nightly.add_argument("--vault-keep-days", "--vault_keep_days", dest="vault_keep_days", type=float,
                         default=DEFAULT_VAULT_KEEP_DAYS, metavar="DAYS",
                         help="vault entries of checkpoints gone from storage for longer than this are pruned "
                              f"(default {DEFAULT_VAULT_KEEP_DAYS:g}); never those of checkpoints that exist")
    nightly.add_argument("--previous", metavar="REPORT_DIR",
                         help="compare with this earlier report instead of the previous run the vault knows")
    nightly.add_argument("--full", action="store_true",
                         help="read every directory, even those unchanged since the previous run")
    nightly.add_argument("--verify-share", "--verify_share", dest="verify_share", type=share, default=None,
                         metavar="1/N", help="with --verify-data: verify a rotating 1/N of the healthy checkpoints "
                                             "each run, so each is verified at least once in N runs")
    nightly.add_argument("--now", type=nightly_setup.clock, default=None, help=argparse.SUPPRESS)   # the run's clock

    parser.add_argument("--detach", action="store_true",
                        help="submit the pipeline and return without waiting (Dataflow Flex Template launchers)")


def run(args) -> int:
    collect_less()      # before Beam is imported: its import makes a million objects, each passed over again and
    #                     again at the default threshold (0.1-0.2 s of the launcher's start, before any stage)
    with WarmWorkers() as workers:     # started once the engine is known; those not used are ended
        return _run(args, workers)


def _run(args, workers: WarmWorkers) -> int:
    # argparse takes an unknown `--flag=value` whose value holds a space for a positional: Airflow's Beam
    # provider passes `--labels={"airflow-version": "v3-3-2"}`. It is a Beam flag, not a root.
    flags_taken_for_roots = [r for r in args.roots if r.startswith("--") and "=" in r]
    args.beam_args = list(args.beam_args) + flags_taken_for_roots
    roots = [r for r in args.roots if r not in flags_taken_for_roots]
    roots += [r for r in (args.roots_csv or "").split(",") if r.strip()]
    if not roots:
        raise UsageError("give at least one ROOT (or --roots)")
    now = audit_clock()
    preflight.check_access([("ROOT", r) for r in roots]
                           + [("--report-dir", args.report_dir), ("--registry", args.registry),
                              ("--vault", args.vault), ("--previous", args.previous)])
    missing = {}
    for root in roots:
        try:
            check_root(root)
        except MissingRoot:
            near = _nearest(root)
            missing[_display(root)] = f" (nearest that exist: {', '.join(near)})" if near else ""
        except BadRoot as exc:
            raise UsageError(str(exc)) from None
    roots = distinct_roots(roots)
    _check_report_dir(args.report_dir, roots)
    preflight.check_output_dir("--report-dir", args.report_dir)
    args.arch = None
    layouts = registry_layouts_from_args(args) if args.registry else None
    flags, why = _engine(args, [r for r in roots if _display(r) not in missing], workers)
    flags = flink_preflight.check(flags)     # a Flink cluster that cannot run the job: exit 2 before any work
    run_id = uuid.uuid4().hex
    now = args.now if args.now is not None else now if now is not None else time.time()
    shown_roots = [_display(r) for r in roots]
    nightly, memory_meta = nightly_setup.prepare(args, roots, shown_roots, run_id, now, layouts)
    meta = {
        "run_id": run_id,
        "started": now,
        "roots": shown_roots,
        "report_dir": _display(args.report_dir),
        "command": _command_line(args, roots),
        "missing_roots": missing,
        "clock_offset": now - time.time(),
        **memory_meta,
        "options": {"in_place": args.in_place, "verify_data": args.verify_data, "rehearse": args.rehearse,
                    "allow_zeros": args.allow_zeros,
                    "split_bytes": args.split_bytes, "runner": beam_flags.describe(flags),
                    "min_age_minutes": args.min_age,
                    "registry_entries": sorted(layouts or {}), **memory_meta["options"]},
    }
    _mark_report_dir(args.report_dir, meta)
    registry = (write_resolved(args.report_dir, layouts, absolute_location(args.registry))
                if layouts is not None else None)
    nightly = nightly_setup.start(nightly, meta, args)
    settings = AuditSettings(args.report_dir, args.in_place, args.split_bytes, args.verify_data, args.rehearse,
                             registry=registry, allow_zeros=args.allow_zeros, min_age=args.min_age * 60,
                             vault=nightly.vault, nightly=nightly, now=now,
                             command_options=carried_options(args.registry, nightly.vault, args.allow_zeros))
    roots = [r for r in roots if _display(r) not in missing]
    from . import audit_pipeline

    for root, near in missing.items():
        print(f"ckpt-rescue audit: root {root} does not exist{near}: it is reported, and the run exits 4",
              file=sys.stderr)
    print(f"auditing {len(roots)} root(s) with {beam_flags.describe(flags)}: {why}", file=sys.stderr)
    pipeline_options = beam_flags.pipeline_options(workers.flags(flags))
    if args.detach:
        import apache_beam as beam

        pipeline = beam.Pipeline(options=pipeline_options)
        audit_pipeline.build(pipeline, roots, settings, meta)
        result = pipeline.run()
        print(f"submitted run {meta['run_id']} (state {result.state}); reports will appear in {meta['report_dir']}")
        print("follow it (waits for the run, then exits with its exit code): "
              + shlex.join(["ckpt-rescue", "status", meta["report_dir"], "--run-id", meta["run_id"]]))
        return 0
    try:
        result = audit_pipeline.run(roots, settings, meta, pipeline_options, workers.runner())
    except Exception as exc:  # noqa: BLE001 - the runner itself failed: say so, and alert
        print(f"ckpt-rescue audit: the pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_CHECK
    summary = read_summary(args.report_dir)
    if summary.get("run_id") != meta["run_id"]:
        print(f"ckpt-rescue audit: {meta['report_dir']}/summary.json is not from this run; "
              "another audit may be writing to the same report directory", file=sys.stderr)
        return EXIT_ATTENTION
    _print_summary(summary, first_failures(args.report_dir, SHOWN_PROBLEMS), audit_pipeline.metrics(result))
    return summary["exit_code"]


def audit_clock() -> float | None:
    """The run's clock from CLOCK_VARIABLE, or None (this machine's) when unset; --now wins over it."""
    value = os.environ.get(CLOCK_VARIABLE, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{CLOCK_VARIABLE}={value!r}: give the time as seconds since the epoch, e.g. "
                         f"{CLOCK_VARIABLE}={time.time():.0f}") from None


def _nearest(root: str) -> list:
    """For a root that does not exist: the nearest existing paths (as `inspect` lists them for a prefix),
    or the deepest directory that exists."""
    fs, path = storage.url_to_fs(root)
    return nearest_paths(fs, path, limit=3, or_ancestor=True)


def _engine(args, roots: list[str], workers: WarmWorkers) -> tuple[list[str], str]:
    """(Beam flags, why this engine): the user's choice, else one process for a store that lives in this
    process (memory://) and for small local trees (found by a walk that stops at the limit), else a
    worker process per core, started now (`workers`) so that they import Beam while this process does."""
    in_process = [url for url in roots + [args.report_dir] if store_for(url).in_process]
    if in_process:
        return beam_flags.audit_flags(args.beam_args, args.profile, in_memory_storage=True), \
            f"{in_process[0].split('://', 1)[0]}:// lives in this process"
    if beam_flags.engine_chosen(args.beam_args, args.profile):
        return beam_flags.audit_flags(args.beam_args, args.profile), "as chosen"
    size = preflight.local_tree_size(roots, args.small_tree_files, SMALL_TREE_BYTES)
    small = size is not None and not size.over
    if not small and not args.detach:
        workers.start(os.cpu_count() or 1)
    flags = beam_flags.audit_flags(args.beam_args, args.profile, small_tree=small)
    limits = f"{args.small_tree_files} files or {SMALL_TREE_BYTES >> 30} GiB"
    if size is None:
        return flags, "roots in cloud storage, so a worker process per core"
    if small:
        return flags, (f"a small local tree ({size.files} files, {size.bytes / 1e6:.1f} MB; up to {limits} run in one "
                       "process, which starts faster than workers; see --small-tree-files)")
    return flags, f"more than {limits} under the roots, so a worker process per core"


def _display(url: str) -> str:
    fs, path = storage.url_to_fs(url)
    return storage.display(fs, path)


def _check_report_dir(url: str, roots: list[str]) -> None:
    """The listing leaves the report directory out, so it must hide nothing: it may not be a file, equal or
    contain a root, or (inside a root) hold checkpoint files other than the indexes earlier runs staged."""
    try:
        fs, path = storage.url_to_fs(url)
        if fs.exists(path) and not fs.isdir(path):
            raise UsageError(f"--report-dir {url} is a file")
    except (OSError, ValueError) as exc:
        if storage.is_transient(exc):
            raise    # the store did not answer: could not check (exit 3), not a usage error
        raise UsageError(f"--report-dir {url}: {exc}") from None
    for root in roots:
        inside = same_filesystem_path(root, url)
        if inside is None:
            continue
        root_path = storage.url_to_fs(root)[1].rstrip("/") or "/"
        report = inside.rstrip("/") or "/"
        if root_path == report or root_path.startswith(report.rstrip("/") + "/"):
            raise UsageError(f"--report-dir {url} {'is' if root_path == report else 'contains'} the root {root}: "
                             "the audit leaves the report directory out, so it would not see the checkpoints; put the "
                             "reports beside the root or in a directory of their own inside it")
        if report.startswith(root_path.rstrip("/") + "/"):
            try:
                hidden = hidden_checkpoint_files(fs, report)
            except OSError as exc:
                raise UsageError(f"--report-dir {url}: cannot be listed ({exc})") from None
            if hidden:
                shown = ", ".join(storage.display(fs, p) for p in hidden[:3])
                raise UsageError(f"--report-dir {url} holds checkpoint files that are not staged indexes ({shown}"
                                 f"{', ...' if len(hidden) > 3 else ''}): the audit leaves the report directory out "
                                 "of the listing, so they would never be checked; choose an empty directory")


def _mark_report_dir(url: str, meta: dict) -> None:
    """Mark the directory as ckpt-rescue reports before any work, so a later audit of a root that holds it
    leaves its staged indexes out even if this run stops before writing its summary."""
    fs, path = storage.url_to_fs(url)
    if storage.is_local(fs):
        fs.makedirs(path, exist_ok=True)
    marker = {"tool": "ckpt-rescue", "run_id": meta["run_id"], "started": meta["started"]}
    storage.write_replaceable(fs, f"{path.rstrip('/')}/{REPORT_MARKER}", json.dumps(marker).encode("utf-8"))


def _command_line(args, roots) -> str:
    parts = ["ckpt-rescue", "audit", *roots, "--report-dir", args.report_dir]
    if args.registry:
        parts += ["--registry", args.registry]
    parts += [flag for flag, on in (("--in-place", args.in_place), ("--verify-data", args.verify_data),
                                    ("--rehearse", args.rehearse), ("--allow-zeros", args.allow_zeros)) if on]
    if args.split_bytes != DEFAULT_SPLIT_BYTES:
        parts += ["--split-bytes", str(args.split_bytes)]
    if args.min_age != DEFAULT_MIN_AGE_MINUTES:
        parts += ["--min-age", f"{args.min_age:g}"]
    if args.small_tree_files != SMALL_TREE_FILES:
        parts += ["--small-tree-files", str(args.small_tree_files)]
    if args.profile:
        parts += ["--profile", args.profile]
    if args.vault:
        parts += ["--vault", args.vault]
        if args.vault_keep_days != DEFAULT_VAULT_KEEP_DAYS:
            parts += ["--vault-keep-days", f"{args.vault_keep_days:g}"]
    if args.verify_share:
        parts += ["--verify-share", f"1/{args.verify_share}"]
    parts += ["--full"] if args.full else []
    parts += ["--previous", args.previous] if args.previous else []
    return shlex.join(parts + list(args.beam_args))


def _print_summary(summary: dict, problems: list, metrics: dict) -> None:
    """From summary.json and the first rows of failures.csv: the launcher never loads every record.
    What a person must read first (the summary's warnings) comes first."""
    counts = summary["counts"]
    for warning in summary.get("warnings", []):
        print(f"WARNING: {warning}")
    print(f"audited {summary['records']} record(s) under {len(summary['roots'])} root(s) "
          f"in {summary['duration_seconds']:.1f} s")
    _print_changes(summary)
    print("  " + "  ".join(f"{status} {counts[status]}" for status in statuses_of(counts) if status in counts))
    total = summary.get("needs_a_person", len(problems))
    if total:
        print(f"needs a person ({total}):")
        for prefix, status, reason in problems[:SHOWN_PROBLEMS]:
            print(f"  {status:<13} {prefix}\n                {reason}")
        if total > SHOWN_PROBLEMS:
            print(f"  ... {total - SHOWN_PROBLEMS} more in failures.csv")
    rebuilt_staged = counts.get(REBUILT, 0) - summary.get("written_in_place", 0)
    if rebuilt_staged:
        print(f"staged {rebuilt_staged} rebuilt index(es); promote them all with `sh "
              f"{summary['report_dir'].rstrip('/')}/{PROMOTE}` (create-only), or re-run with --in-place")
    unchecked = counts.get("error", 0)
    if unchecked:
        print(f"could not check {unchecked} (storage kept failing; run again): see failures.csv")
    skipped = summary.get("not_followed", {})
    if skipped.get("count"):
        print(f"not followed: {skipped['count']} symbolic link(s) to directories outside their root; checkpoints "
              "reached only through them were not audited (give a target as a ROOT to audit it):")
        for where in skipped.get("where", []):
            print(f"  {where}")
        if skipped["count"] > len(skipped.get("where", [])):
            print(f"  ... {skipped['count'] - len(skipped['where'])} more in records.jsonl (kind listing)")
    if metrics:
        print("metrics: " + ", ".join(_metric(name, value) for name, value in sorted(metrics.items())))
    print(f"report: {summary['report_dir'].rstrip('/')}/{HTML}")


def _print_changes(summary: dict) -> None:
    """One line on what changed since the previous run, and what the memory saved."""
    previous, changes = summary.get("previous_run"), summary.get("changes") or {}
    if previous:
        print(f"since the run of {previous['finished']}: " + ", ".join(
            f"{name} {changes.get(name, 0)}" for name in ("new", "deleted", "resolved", "persists")))
    directories = summary.get("directories") or {}
    if directories.get("carried"):
        print(f"carried forward {summary.get('carried', 0)} record(s) of {directories['carried']} unchanged "
              f"director(ies) without reading them; judged {directories.get('judged', 0)} (--full reads all)")
    vault = summary.get("vault")
    if vault:
        print(f"vault {vault['url']}: kept {vault['kept']} new index(es) ({vault['kept_bytes']} bytes), pruned "
              f"{vault['pruned']}")


def _metric(name: str, value) -> str:
    if isinstance(value, dict):
        return f"{name} n={value['count']} mean={value['sum'] / value['count']:.0f} max={value['max']}"
    return f"{name}={value}"
