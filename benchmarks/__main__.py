"""`python -m benchmarks [rebuild-command|rebuild|audit|report|listing ...]`: run benchmarks, print markdown."""

import json
import sys


def main(argv: list[str]) -> int:
    which = argv or ["rebuild-command", "rebuild", "audit", "report", "listing"]
    for name in which:
        if name == "rebuild-command":
            from . import rebuild_command as bench
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
        else:
            print(f"unknown benchmark {name!r}; choose from rebuild-command, rebuild, audit, report, listing",
                  file=sys.stderr)
            return 2
        result = bench.main()
        print(bench.render(result))
        print(json.dumps(result), flush=True)
    return 0


raise SystemExit(main(sys.argv[1:]))
