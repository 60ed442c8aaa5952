"""Audit checkpoint trees: find every prefix under the roots (local, gs://, s3://, memory://),
classify it, rebuild lost indexes, and write records.jsonl, summary.json, failures.csv and
report.html to --report-dir.

Rebuilt indexes are staged under REPORT_DIR/rebuilt/ unless --in-place is given; nothing that
existed before the run is ever changed. Unknown flags go to Beam (e.g. --runner DataflowRunner).
Exit codes: 0 nothing needs a person, 1 something unrecoverable/corrupt/incomplete, 2 usage,
3 could not check (storage kept failing for some prefix, records say `error`; 1 wins over 3).
"""

import re
import shlex
import sys
import time
import uuid

from recovery import storage
from recovery.audit import DEFAULT_SPLIT_BYTES, AuditSettings
from recovery.listing import BadRoot, check_root, distinct_roots, same_filesystem_path
from recovery.records import ERROR, NEEDS_A_PERSON, STATUSES
from recovery.report import HTML, read_records, read_summary

from . import options as beam_flags
from .cli import EXIT_ATTENTION, EXIT_COULD_NOT_CHECK, UsageError
from .registry_args import registry_layouts_from_args

SHOWN_PROBLEMS = 20
_SIZE_RE = re.compile(r"^(\d+)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """`256MiB`, `1G`, `4096` -> bytes."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    return int(match[1]) * _UNITS[(match[2] or "")[:1].upper()]


byte_size.__name__ = "size"   # argparse names the type in its error message


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
    parser.add_argument("--split-bytes", "--split_bytes", dest="split_bytes", type=byte_size,
                        default=DEFAULT_SPLIT_BYTES, metavar="SIZE",
                        help="data files larger than this are checksummed in ranges on several workers "
                             "(default 256MiB)")
    parser.add_argument("--profile", metavar="NAME", help="runner profile from configs/runners "
                        f"({', '.join(beam_flags.profile_names()) or 'none found'}) or a YAML path")
    parser.add_argument("--detach", action="store_true",
                        help="submit the pipeline and return without waiting (Dataflow Flex Template launchers)")


def run(args) -> int:
    roots = list(args.roots) + [r for r in (args.roots_csv or "").split(",") if r.strip()]
    if not roots:
        raise UsageError("give at least one ROOT (or --roots)")
    for root in roots:
        try:
            check_root(root)
        except BadRoot as exc:
            raise UsageError(str(exc)) from None
    roots = distinct_roots(roots)
    _check_report_dir(args.report_dir, roots)
    args.arch = None
    layouts = registry_layouts_from_args(args) if args.registry else None
    in_memory = any(url.startswith("memory://") for url in roots + [args.report_dir])
    flags = beam_flags.audit_flags(args.beam_args, args.profile, in_memory)
    settings = AuditSettings(args.report_dir, args.in_place, args.split_bytes, args.verify_data, args.rehearse,
                             layouts)
    meta = {
        "run_id": uuid.uuid4().hex,
        "started": time.time(),
        "roots": [_display(r) for r in roots],
        "report_dir": _display(args.report_dir),
        "command": _command_line(args, roots),
        "options": {"in_place": args.in_place, "verify_data": args.verify_data, "rehearse": args.rehearse,
                    "split_bytes": args.split_bytes, "runner": beam_flags.describe(flags),
                    "registry_entries": sorted(layouts or {})},
    }
    from . import audit

    print(f"auditing {len(roots)} root(s) with {beam_flags.describe(flags)}", file=sys.stderr)
    pipeline_options = beam_flags.pipeline_options(flags)
    if args.detach:
        import apache_beam as beam

        pipeline = beam.Pipeline(options=pipeline_options)
        audit.build(pipeline, roots, settings, meta)
        result = pipeline.run()
        print(f"submitted (state {result.state}); reports will appear in {meta['report_dir']}")
        return 0
    try:
        result = audit.run(roots, settings, meta, pipeline_options)
    except Exception as exc:  # noqa: BLE001 - the runner itself failed: say so, and alert
        print(f"ckpt-rescue audit: the pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_CHECK
    summary = read_summary(args.report_dir)
    if summary.get("run_id") != meta["run_id"]:
        print(f"ckpt-rescue audit: {meta['report_dir']}/summary.json is not from this run; "
              "another audit may be writing to the same report directory", file=sys.stderr)
        return EXIT_ATTENTION
    _print_summary(summary, read_records(args.report_dir), audit.metrics(result))
    return summary["exit_code"]


def _display(url: str) -> str:
    fs, path = storage.url_to_fs(url)
    return storage.display(fs, path)


def _check_report_dir(url: str, roots: list[str]) -> None:
    """A file, or a directory that holds a root (whose listing it would then hide), cannot take reports."""
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
        root_path = storage.url_to_fs(root)[1].rstrip("/")
        if inside is not None and (root_path == inside.rstrip("/") or root_path.startswith(inside.rstrip("/") + "/")):
            raise UsageError(f"--report-dir {url} contains the root {root}: put the reports beside or inside it")


def _command_line(args, roots) -> str:
    parts = ["ckpt-rescue", "audit", *roots, "--report-dir", args.report_dir]
    if args.registry:
        parts += ["--registry", args.registry]
    parts += [flag for flag, on in (("--in-place", args.in_place), ("--verify-data", args.verify_data),
                                    ("--rehearse", args.rehearse)) if on]
    if args.split_bytes != DEFAULT_SPLIT_BYTES:
        parts += ["--split-bytes", str(args.split_bytes)]
    if args.profile:
        parts += ["--profile", args.profile]
    return shlex.join(parts + list(args.beam_args))


def _print_summary(summary: dict, records, metrics: dict) -> None:
    counts = summary["counts"]
    print(f"audited {summary['records']} record(s) under {len(summary['roots'])} root(s) "
          f"in {summary['duration_seconds']:.1f} s")
    print("  " + "  ".join(f"{status} {counts[status]}" for status in STATUSES))
    problems = [r for r in records if r.status in NEEDS_A_PERSON]
    if problems:
        print(f"needs a person ({len(problems)}):")
        for record in problems[:SHOWN_PROBLEMS]:
            print(f"  {record.status:<13} {record.prefix}\n                {record.reason}")
        if len(problems) > SHOWN_PROBLEMS:
            print(f"  ... {len(problems) - SHOWN_PROBLEMS} more in failures.csv")
    unchecked = [r for r in records if r.status == ERROR]
    if unchecked:
        print(f"could not check ({len(unchecked)}; storage kept failing, run again):")
        for record in unchecked[:SHOWN_PROBLEMS]:
            print(f"  {record.status:<13} {record.prefix}\n                {record.reason}")
    staged = [r for r in records if r.staged and r.status == "rebuilt"]
    if staged:
        print(f"staged {len(staged)} rebuilt index(es); promote each with the command in records.jsonl, "
              "or re-run with --in-place")
    if metrics:
        print("metrics: " + ", ".join(_metric(name, value) for name, value in sorted(metrics.items())))
    print(f"report: {summary['report_dir'].rstrip('/')}/{HTML}")


def _metric(name: str, value) -> str:
    if isinstance(value, dict):
        return f"{name} n={value['count']} mean={value['sum'] / value['count']:.0f} max={value['max']}"
    return f"{name}={value}"
