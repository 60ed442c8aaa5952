"""Show what a checkpoint prefix holds: a healthy index tensor by tensor, or what an orphan's data
files reveal. A path that is not a prefix (a data, index or state file, an archive, a git-lfs
pointer, a directory, a typo) gets a diagnosis instead.

Exit codes: 0 healthy, 1 needs attention (orphan, unreadable index, missing or short data; a `checkpoint`
state file whose latest checkpoint does not exist), 2 not a checkpoint prefix, 3 could not check (the
store kept failing).
"""

import sys

from recovery.inspection import inspect_path
from recovery.records import EXIT_USAGE, carried_options
from recovery.storage import is_transient

from . import preflight
from .cli import UsageError
from .inspect_text import render, to_json


def add_arguments(parser):
    parser.add_argument("prefix", help="checkpoint prefix, e.g. runs/a/ckpt-57 or gs://bucket/run/ckpt-57")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    carried = parser.add_argument_group("options for the commands it suggests (an audit's records pass its own on)")
    carried.add_argument("--registry", metavar="FILE", help="the architecture registry the suggested rebuild uses")
    carried.add_argument("--vault", metavar="URL", help="the index vault the suggested rebuild uses")
    carried.add_argument("--allow-zeros", "--allow_zeros", dest="allow_zeros", action="store_true",
                         help="the suggested rebuild accepts zero-filled blocks (as the audit that found it did)")


def run(args) -> int:
    preflight.check_access([("PREFIX", args.prefix)])
    try:
        result = inspect_path(args.prefix)
    except (OSError, ValueError) as exc:
        if is_transient(exc):
            raise      # not a usage error: the store did not answer (cli.main: exit 3)
        raise UsageError(f"cannot read {args.prefix}: {exc}") from exc
    options = carried_options(args.registry, args.vault, args.allow_zeros)
    out = to_json(result) if args.json else render(result, options=options)
    usage = result.kind == "diagnosis" and result.exit_code == EXIT_USAGE     # not a prefix, and not a finding
    stream = sys.stderr if usage and not args.json else sys.stdout
    stream.write(out if out.endswith("\n") else out + "\n")
    return result.exit_code
