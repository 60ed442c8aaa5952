"""`python -m benchmarks [rebuild|audit|report ...]`: run the benchmarks and print markdown for BENCHMARKS.md."""

import json
import sys


def main(argv: list[str]) -> int:
    which = argv or ["rebuild", "audit", "report"]
    for name in which:
        if name == "rebuild":
            from . import rebuild_large as bench
        elif name == "audit":
            try:
                from . import audit_tree as bench
            except ImportError:
                print("audit benchmark not available yet")
                continue
        elif name == "report":
            from . import report_render as bench
        else:
            print(f"unknown benchmark {name!r}; choose from rebuild, audit, report", file=sys.stderr)
            return 2
        result = bench.main()
        print(bench.render(result))
        print(json.dumps(result), flush=True)
    return 0


raise SystemExit(main(sys.argv[1:]))
