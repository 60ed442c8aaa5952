"""`ckpt-rescue` (also `python -m pipeline`): one subcommand per module, each with add_arguments/run.

Exit codes: EXIT_CODES in recovery/records.py, shown by every `--help` (exit_code_help).
"""

import argparse
import gc
import importlib
import logging
import sys
import textwrap

from recovery.records import EXIT_ATTENTION, EXIT_CODES, EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_ATTENTION", "EXIT_COULD_NOT_CHECK", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

# subcommand -> (module under pipeline/, one-line help)
COMMANDS = {
    "audit": ("audit_cmd", "find orphaned checkpoints under one or more roots, rebuild, and report"),
    "rebuild": ("rebuild_cmd", "rebuild the missing .index of one checkpoint prefix"),
    "register": ("register_cmd", "add an architecture to the registry (builder or captured layout)"),
    "inspect": ("inspect_cmd", "show what a checkpoint (or an orphaned data file) contains"),
    "promote": ("promote_cmd", "put the indexes an audit staged in place, create-only, from wherever the report is"),
    "salvage": ("salvage_cmd", "write a new checkpoint of every tensor a damaged one still provably holds"),
    "demo": ("demo_cmd", "write a demo tree of real checkpoints with TensorFlow and audit it"),
    "status": ("status_cmd", "wait for a (detached) audit's report directory, exit with that run's exit code"),
}


class UsageError(Exception):
    """A mistake in how the tool was called or configured: exit code 2, message, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen subcommand's module is imported (inspect should not load Beam)."""
    parser = _Parser(prog="ckpt-rescue", description="Find TensorFlow checkpoints whose .index is lost, rebuild "
                     "the index byte-identically or refuse with the reason, and audit whole buckets.",
                     epilog=exit_code_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_logging_flags(parser, argparse.SUPPRESS)
    parser.set_defaults(verbose=False, debug=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"pipeline.{module_name}")
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                             epilog=exit_code_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        _add_logging_flags(cmd, argparse.SUPPRESS)   # also after the subcommand: `ckpt-rescue audit -v ...`
        cmd.set_defaults(_run=module.run)
    return parser


def exit_code_help() -> str:
    """The exit-code table of `--help`, from EXIT_CODES (docs/running.md and the README show the same)."""
    lines = ["exit codes:"]
    for code, label, meaning in EXIT_CODES:
        lines += textwrap.wrap(f"{label}: {meaning}", 96, initial_indent=f"  {code}  ", subsequent_indent="     ")
    return "\n".join(lines)


def _add_logging_flags(parser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log progress at INFO level")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="log everything at DEBUG level, including Beam's own worker and harness logs")


# Beam's runner and harness loggers: worker start-up, pipeline-option warnings, job-service chatter.
HARNESS_LOGGERS = ("apache_beam", "absl", "tensorflow", "gcsfs", "s3fs", "botocore", "urllib3", "google.auth")
# fsspec's read-ahead logs, with a traceback at ERROR, the very error it then raises to us: that error is
# reported in the command's own words (a refusal, a record), so its log is shown only with --debug.
RAISED_AGAIN_LOGGERS = ("fsspec",)


JOB_LINKS = "apache_beam.runners.dataflow.internal.apiclient"

# Local Beam workers' log lines come back through this logger, ours and the harness's alike.
WORKER_RELAY = "apache_beam.runners.portability.local_job_service"
OUR_CODE = ("/pipeline/", "/recovery/", "/transforms/", "/tfbundle/")


class _OnlyOurWorkerLines(logging.Filter):
    """Keep a relayed worker line only when our code logged it (progress, warnings), not the SDK harness."""

    def filter(self, record):
        message = record.getMessage()
        location = message.partition('log_location: "')[2].partition('"')[0]
        return "/apache_beam/" not in location and any(part in location for part in OUR_CODE)


_RELAY_FILTER = _OnlyOurWorkerLines()


def configure_logging(verbose: bool, debug: bool) -> None:
    """Our own progress at INFO with -v; Beam's harness and the storage clients stay quiet unless --debug."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for name in HARNESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.ERROR)
    for name in RAISED_AGAIN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    # Except the lines a person needs from a remote runner: the Dataflow job id and console link.
    logging.getLogger(JOB_LINKS).setLevel(logging.DEBUG if debug else logging.INFO)
    relay = logging.getLogger(WORKER_RELAY)
    relay.removeFilter(_RELAY_FILTER)
    relay.setLevel(level)
    if not debug:
        relay.addFilter(_RELAY_FILTER)


def main(argv=None) -> int:
    if argv is None:        # the program itself (not a caller in the same process): it exits next
        try:
            return main(sys.argv[1:])
        finally:
            # Beam leaves ~200k objects; the collection at interpreter exit took 0.5-1.4 s of an audit's
            # wall time. Frozen objects are skipped by it (exit handlers still run).
            gc.freeze()
    argv = list(argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "audit":  # audit forwards unknown flags to Beam
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    configure_logging(args.verbose, args.debug)
    try:
        return args._run(args)
    except UsageError as exc:
        print(f"ckpt-rescue {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from recovery.storage import in_words, is_transient

        if isinstance(exc, OSError) and not is_transient(exc):   # a file the command could not read or write
            print(f"ckpt-rescue {args.command}: {in_words(exc)}", file=sys.stderr)
            return EXIT_ATTENTION
        if not is_transient(exc):
            raise
        print(f"ckpt-rescue {args.command}: could not check: storage kept failing after retries "
              f"({type(exc).__name__}: {exc}); nothing was written; run again", file=sys.stderr)
        return EXIT_COULD_NOT_CHECK
