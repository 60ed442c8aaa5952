"""Wait for the audit in a report directory to finish, then exit with its exit code and print its one-line
summary: what a scheduler runs after a detached audit (Dataflow, a Flex Template, Flink), whose submit
step returns before any work is done. REPORT_DIR may be local, gs:// or s3://.

The run followed is the one named by --run-id (what `audit --detach` prints), else the one that
started last in REPORT_DIR (its `.ckpt-rescue-report` marker). Besides the audit's own codes, status
exits 5 when the run has not finished by the end of --wait (still running, or it died), 6 when no audit
ever started in REPORT_DIR, 7 when REPORT_DIR holds another run than --run-id.
"""

import re
import shlex
import sys

from recovery import storage
from recovery.records import EXIT_ATTENTION, EXIT_CODES, EXIT_NO_RUN, EXIT_NOT_FINISHED, EXIT_OTHER_RUN
from recovery.report.readback import first_failures
from recovery.report.schema import FAILURES, HTML
from recovery.report.summary import statuses_of
from recovery.run_status import NotAReport, RunState, follow

from . import preflight
from .cli import UsageError

DEFAULT_WAIT = 6 * 3600.0   # a nightly audit not finished 6 h after it was submitted is itself worth a page
DEFAULT_INTERVAL = 60.0     # one or two small reads a minute, also on a bucket
SHOWN_PROBLEMS = 10
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
LABELS = {code: label for code, label, _ in EXIT_CODES}


def seconds(text: str) -> float:
    """`90`, `90s`, `30m`, `6h` -> seconds."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    return float(match[1]) * _UNIT_SECONDS[match[2].lower()]


seconds.__name__ = "duration"   # argparse names the type in its error message


def add_arguments(parser):
    parser.add_argument("report_dir", metavar="REPORT_DIR", help="the audit's --report-dir (local, gs://, s3://)")
    parser.add_argument("--wait", type=seconds, default=DEFAULT_WAIT, metavar="SECONDS",
                        help=f"wait at most this long for the run to finish (e.g. 600, 30m, 6h; default "
                             f"{DEFAULT_WAIT / 3600:g}h; 0 looks once)")
    parser.add_argument("--interval", type=seconds, default=DEFAULT_INTERVAL, metavar="SECONDS",
                        help=f"look this often while waiting (default {DEFAULT_INTERVAL:g} s)")
    parser.add_argument("--run-id", "--run_id", dest="run_id", metavar="ID",
                        help="the run to follow (printed by `audit --detach`); default: the last run started there")


def run(args, clock=None, sleep=None) -> int:
    if args.interval <= 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {args.interval:g}")
    preflight.check_access([("REPORT_DIR", args.report_dir)])
    _check_local(args.report_dir)
    timing = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
    try:
        state = follow(args.report_dir, args.run_id, args.wait, args.interval, waiting=_say_waiting(args), **timing)
    except NotAReport as exc:
        raise UsageError(f"{exc}; is {args.report_dir} an audit's --report-dir?") from None
    except OSError as exc:      # a permanent refusal (403, a local permission); the transient ones are exit 3
        raise UsageError(f"{args.report_dir}: cannot be read ({type(exc).__name__}: {exc})") from None
    print(outcome_line(state, args))
    for warning in (state.finished or {}).get("warnings", []):     # what the audit says to read first
        print(f"  WARNING: {warning}")
    if state.finished and state.exit_code == EXIT_ATTENTION:
        _print_problems(state)
    return state.exit_code


def _check_local(url: str) -> None:
    fs, path = storage.url_to_fs(url)
    if storage.is_local(fs) and fs.exists(path) and not fs.isdir(path):
        raise UsageError(f"REPORT_DIR {url} is a file, not a report directory")


def _say_waiting(args):
    def waiting(state: RunState) -> None:
        what = f"run {state.run_id}" if state.run_id else "an audit to start"
        print(f"ckpt-rescue status: waiting up to {_duration(args.wait)} for {what} in {args.report_dir} "
              f"(looking every {_duration(args.interval)}; --wait 0 answers at once)", file=sys.stderr)
    return waiting


def outcome_line(state: RunState, args) -> str:
    """One line that says which run, how it ended (or why there is no answer yet), and what to run next."""
    code = state.exit_code
    if state.finished:
        summary = state.finished
        counts = summary.get("counts", {})
        shown = ", ".join(f"{s} {counts[s]}" for s in statuses_of(counts) if counts.get(s))
        report = f"{summary.get('report_dir') or args.report_dir}".rstrip("/")
        later = ""
        if state.marker and state.marker["run_id"] != state.run_id:
            later = f"; note: run {state.marker['run_id']} has started in the same directory since"
        return (f"run {state.run_id} finished {summary.get('finished', '?')}: exit {code} ({LABELS.get(code, '?')}); "
                f"{summary.get('records', 0)} record(s) under {len(summary.get('roots', []))} root(s)"
                f"{': ' + shown if shown else ''}; report: {report}/{HTML}{later}")
    waited = f"after waiting {_duration(args.wait)}" if args.wait else "(looked once: --wait 0)"
    if code == EXIT_NOT_FINISHED:
        again = _command(args.report_dir, state.run_id, max(args.wait * 2, 3600.0))
        return (f"run {state.run_id} (started {_started(state.marker)}) has not finished {waited}: no summary.json "
                f"of it in {args.report_dir} yet. It is still running, or it stopped (look at the job's logs); "
                f"wait longer with: {again}")
    if code == EXIT_NO_RUN:
        return (f"no audit has started in {args.report_dir} {waited} (no .ckpt-rescue-report, no summary.json): "
                "check the path, and whether the job was submitted (a launcher that failed writes nothing)")
    if code == EXIT_OTHER_RUN:
        holder = state.holder
        return (f"{args.report_dir} holds run {holder['run_id']} (started {_started(holder)}), not run {state.run_id}: "
                "another audit writes to the same directory, so run "
                f"{state.run_id}'s outcome cannot be read there; give each run its own --report-dir; that run: "
                f"{_command(args.report_dir, holder['run_id'], 0)}")
    return f"exit {code}"


def _print_problems(state: RunState) -> None:
    """The first rows of failures.csv: what the person paged by this exit code looks at first."""
    total = state.finished.get("needs_a_person", 0)
    try:
        rows = first_failures(state.report_dir, SHOWN_PROBLEMS)
    except (OSError, storage.StorageUnavailable) as exc:
        print(f"  (could not read {FAILURES}: {exc})")
        return
    for prefix, status, reason in rows:
        print(f"  {status:<13} {prefix}\n                {reason}")
    if total > len(rows):
        print(f"  ... {total - len(rows)} more in {state.report_dir.rstrip('/')}/{FAILURES}")


def _command(report_dir: str, run_id: str | None, wait: float) -> str:
    parts = ["ckpt-rescue", "status", report_dir]
    if run_id:
        parts += ["--run-id", run_id]
    if wait != DEFAULT_WAIT:
        parts += ["--wait", _duration(wait).replace(" ", "")]
    return shlex.join(parts)


def _duration(value: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _started(holder: dict | None) -> str:
    started = (holder or {}).get("started")
    if isinstance(started, (int, float)):
        import datetime

        return datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(started or "?")

