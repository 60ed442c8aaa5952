"""`python -m benchmarks [rebuild-command|rebuild|audit|report|listing|nightly ...] [--8gb] [--s3]`: print markdown.

--8gb adds an 8 GB orphan to rebuild-command (minutes, 8 GB of disk); `make bench` leaves it out.
--s3 runs the listing benchmark on moto S3 at 100k objects instead of fake-gcs-server at 30k."""

import compileall
import json
import sys
from pathlib import Path

PACKAGES = ("tfbundle", "recovery", "transforms", "pipeline")


def compiled() -> None:
    """Bytecode for every module of ckpt-rescue, as pip writes it when it installs the wheel. Where
    PYTHONDONTWRITEBYTECODE is set (as on the machines these figures come from), every process of a
    benchmarked command would otherwise compile each module changed since its .pyc was last written."""
    repo = Path(__file__).resolve().parent.parent
    for package in PACKAGES:
        compileall.compile_dir(repo / package, quiet=1)


def main(argv: list[str]) -> int:
    compiled()
    flags = {a for a in argv if a.startswith("--")}
    which = [a for a in argv if not a.startswith("--")] or ["rebuild-command", "rebuild", "audit", "report", "listing",
                                                            "nightly"]
    for name in which:
        options = {}
        if name == "rebuild-command":
            from . import rebuild_command as bench

            options = {"with_8gb": "--8gb" in flags}
        elif name == "rebuild":
            from . import rebuild_large as bench
        elif name == "audit":
            try:
                from . import audit_tree as bench
            except ImportError:
                print("audit benchmark not available yet")
                continue
        elif name == "report":
            from . import report_render as bench
        elif name == "listing":
            from . import listing_latency as bench

            options = {"store": "s3"} if "--s3" in flags else {}
        elif name == "nightly":
            from . import nightly as bench
        else:
            print(f"unknown benchmark {name!r}; choose from rebuild-command, rebuild, audit, report, listing, "
                  "nightly",
                  file=sys.stderr)
            return 2
        result = bench.main(**options)
        print(bench.render(result))
        print(json.dumps(result), flush=True)
    return 0


raise SystemExit(main(sys.argv[1:]))
