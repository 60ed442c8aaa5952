"""The command users run, as whole processes: `ckpt-rescue rebuild` on a 2 GB (and with --8gb an 8 GB) orphan against
a plain read + crc32c, TensorFlow's import, and TensorFlow's own full read, in one run.

Every measurement is one fresh process tree (interpreter start and imports included), timed by the
parent, with its peak RSS (benchmarks.process_tree). The page cache is warmed first, so the ratios compare
the work, not the disk. Targets (issue 8): the default rebuild (TensorFlow's sample check on) costs
at most TensorFlow's import + 1.5x the plain pass, with a peak RSS at most TensorFlow's import +
100 MB; without TensorFlow's check it stays under 256 MB.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tfbundle import index_filename

from . import process_tree
from .rebuild_large import BASELINE, GIB, TF_READ, WRITE

SIZE_2GB, SIZE_8GB = 2 * GIB + (64 << 20), 8 * GIB + (64 << 20)

TF_IMPORT = "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow"


def measure(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one whole process tree: the larger of the process's own peak and
    the sum over it and its children sampled at one moment, so a child process cannot hide memory."""
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    measured = process_tree.measure(argv, env=env, interval=0.01)
    return measured.wall, measured.tree_peak


def one_size(size_bytes: int, repeats: int, workdir: str | None) -> dict:
    root = tempfile.mkdtemp(prefix="ckpt-rescue-bench-cmd-", dir=workdir)
    try:
        out = subprocess.run([sys.executable, "-c", WRITE, str(size_bytes), root], check=True, capture_output=True,
                             text=True)
        prefix = out.stdout.strip().splitlines()[-1]
        data = prefix + ".data-00000-of-00001"
        original = os.path.join(root, "original.index")
        os.replace(index_filename(prefix), original)
        # A sibling of the same run: only its index is read, so a copy stands in for it.
        shutil.copy(original, os.path.join(root, "ckpt-0.index"))
        judged = os.path.join(root, "judged")     # TensorFlow's own read needs an index beside the data
        os.mkdir(judged)
        os.symlink(data, os.path.join(judged, "ckpt-1.data-00000-of-00001"))
        shutil.copy(original, os.path.join(judged, "ckpt-1.index"))
        cli = [sys.executable, "-m", "pipeline", "rebuild", prefix]
        out_index = os.path.join(root, "rebuilt.index")
        commands = {
            "plain read + crc32c": [sys.executable, "-c", BASELINE, data, str(8 << 20)],
            "TensorFlow import": [sys.executable, "-c", TF_IMPORT],
            "rebuild (default: TF sample check)": cli + ["--output", out_index],
            "rebuild --no-tf-check": cli + ["--no-tf-check", "--output", out_index],
            "rebuild --tf-check full": cli + ["--tf-check", "full", "--output", out_index],
            "TensorFlow full read": [sys.executable, "-c", TF_READ, os.path.join(judged, "ckpt-1")],
        }
        measure(commands["plain read + crc32c"])   # warm the page cache
        runs = {name: [] for name in commands}
        for _ in range(repeats):
            for name, argv in commands.items():
                if os.path.exists(out_index):
                    os.remove(out_index)
                runs[name].append(measure(argv))
                if name.startswith("rebuild"):
                    with open(out_index, "rb") as f, open(original, "rb") as g:
                        assert f.read() == g.read(), f"{name}: not byte-identical"

        def paired(fn):
            return round(statistics.median(fn(i) for i in range(repeats)), 2)

        def s(name, i):
            return runs[name][i][0]

        default, plain, tf_import = "rebuild (default: TF sample check)", "plain read + crc32c", "TensorFlow import"
        return {
            "data_bytes": os.path.getsize(data),
            "repeats": repeats,
            "seconds": {n: round(statistics.median(x for x, _ in r), 2) for n, r in runs.items()},
            "peak_rss_mb": {n: round(max(m for _, m in r) / 1e6) for n, r in runs.items()},
            # (default - TF import) / plain, per repeat: target <= 1.5
            "default_minus_import_vs_plain": paired(lambda i: (s(default, i) - s(tf_import, i)) / s(plain, i)),
            "no_tf_check_vs_plain": paired(lambda i: s("rebuild --no-tf-check", i) / s(plain, i)),
            "tf_full_read_vs_plain": paired(lambda i: s("TensorFlow full read", i) / s(plain, i)),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(with_8gb: bool = False, repeats: int = 3, workdir: str | None = None) -> dict:
    """The 2 GB orphan; with `with_8gb` (`python -m benchmarks rebuild-command --8gb`) also an 8 GB one, which
    takes minutes to write and needs 8 GB of free disk (deleted afterwards)."""
    sizes = (SIZE_2GB, SIZE_8GB) if with_8gb else (SIZE_2GB,)
    return {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
            "sizes": [one_size(size, repeats, workdir) for size in sizes]}


def render(report: dict) -> str:
    lines = [f"`ckpt-rescue rebuild` as whole processes ({report['date']}, {report['cpus']} cores; median of "
             "the repeats, page cache warm; ratios are medians of per-repeat pairs)", ""]
    for one in report["sizes"]:
        imp = one["peak_rss_mb"]["TensorFlow import"]
        lines += [f"**{one['data_bytes'] / GIB:.2f} GiB orphan** ({one['repeats']} repeats)", "",
                  "| process | seconds | peak RSS MB (process tree) |", "|---|---|---|"]
        lines += [f"| {name} | {one['seconds'][name]} | {one['peak_rss_mb'][name]} |" for name in one["seconds"]]
        lines += ["",
                  f"- (default rebuild - TensorFlow import) / plain pass = {one['default_minus_import_vs_plain']}x "
                  "(target <= 1.5x)",
                  f"- default rebuild peak RSS {one['peak_rss_mb']['rebuild (default: TF sample check)']} MB vs "
                  f"TensorFlow import {imp} MB + 100 (target)",
                  f"- `--no-tf-check`: {one['no_tf_check_vs_plain']}x the plain pass, "
                  f"{one['peak_rss_mb']['rebuild --no-tf-check']} MB (target <= 256 MB)",
                  f"- TensorFlow's full read: {one['tf_full_read_vs_plain']}x the plain pass", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    result = main()
    print(render(result))
    print(json.dumps(result))
