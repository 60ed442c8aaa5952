"""Loaded by every Python process of a benchmarked audit (PYTHONPATH): counts the files it opens under
one tree through Python's own `open` audit event (builtins.open, io.open, fsspec's local files alike),
so "no data file was read" is counted in the launcher and in every Beam worker, not assumed.

CKPT_BENCH_COUNT_OPENS=TREE:OUT_DIR: each process writes OUT_DIR/<pid>.json, {"data": n, "index": n},
at its first data-file open, every 1000 opens, and at exit.
"""

import atexit
import json
import os
import sys

_SPEC = os.environ.get("CKPT_BENCH_COUNT_OPENS", "")
if _SPEC:
    _TREE, _, _OUT = _SPEC.partition(":")
    _TREE = _TREE.rstrip("/") + "/"
    _counts = {"data": 0, "index": 0}

    def _flush():
        with open(os.path.join(_OUT, f"{os.getpid()}.json"), "w") as f:
            json.dump(_counts, f)

    def _hook(event, args):
        if event != "open" or not args or not isinstance(args[0], str) or not args[0].startswith(_TREE):
            return
        kind = "data" if ".data-" in args[0] else "index" if args[0].endswith(".index") else None
        if kind:
            _counts[kind] += 1
            total = _counts["data"] + _counts["index"]
            if (kind == "data" and _counts["data"] == 1) or total % 1000 == 0:
                _flush()

    sys.addaudithook(_hook)
    atexit.register(_flush)
