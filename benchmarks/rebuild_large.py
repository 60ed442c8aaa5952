"""Rebuild a large orphan (>= 2 GB by default) and compare, in one run:

- a plain read of the data file with google-crc32c over every chunk (the floor for any tool that
  must checksum every byte),
- ckpt-rescue's rebuild (layout from a sibling index; fit, stream, checksum, build, verify),
- TensorFlow's own full read (`load_checkpoint` + `get_tensor` of every key) through the index.

Each runs in a fresh subprocess so peak RSS is its own. The page cache is warmed first so all
three read from memory; the ratios compare CPU work, not the disk.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from tfbundle import index_filename
from tfbundle.scan import DEFAULT_CHUNK

GIB = 1 << 30

WRITE = r'''
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
target, directory = int(sys.argv[1]), sys.argv[2]
class Big(tf.Module):
    pass
root = Big()
rng = np.random.default_rng(0)
chunk = 64 << 20  # 64 MiB float32 variables, plus a few small ones of other dtypes
n = max(1, target // chunk)
root.weights = [tf.Variable(rng.standard_normal(chunk // 4, dtype=np.float32)) for _ in range(n)]
root.step = tf.Variable(7, dtype=tf.int64)
root.names = tf.Variable(["alpha", "beta", ""])
root.small = [tf.Variable(rng.standard_normal((17, 3)).astype(np.float16)) for _ in range(50)]
print(tf.train.Checkpoint(model=root).save(os.path.join(directory, "ckpt")))
'''

BASELINE = r'''
import sys, time, resource, google_crc32c
path, chunk_size = sys.argv[1], int(sys.argv[2])
t = time.perf_counter(); crc = 0
with open(path, "rb") as f:
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        crc = google_crc32c.extend(crc, chunk)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
'''

REBUILD = r'''
import sys, time, resource
from recovery import storage
from recovery.context import open_orphan
from recovery.rebuild import rebuild
from recovery.sources.sibling import sibling_layouts
prefix, expected = sys.argv[1], sys.argv[2]
t = time.perf_counter()
fs, path = storage.url_to_fs(prefix)
outcome = rebuild(open_orphan(fs, path), [sibling_layouts])
elapsed = time.perf_counter() - t
assert outcome.index_bytes == open(expected, "rb").read(), outcome.reason
assert "tensorflow" not in sys.modules and "apache_beam" not in sys.modules
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
'''

TF_READ = r'''
import os, sys, time, resource
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
prefix = sys.argv[1]
t = time.perf_counter()
reader = tf.train.load_checkpoint(prefix)
for key in reader.get_variable_to_shape_map():
    reader.get_tensor(key)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
'''


def _run(code: str, *args) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def main(size_bytes: int = 2 * GIB + (64 << 20), repeats: int = 5, workdir: str | None = None) -> dict:
    root = tempfile.mkdtemp(prefix="ckpt-rescue-bench-", dir=workdir)
    try:
        print(f"writing a {size_bytes / GIB:.2f} GiB checkpoint with TensorFlow ...", flush=True)
        out = subprocess.run([sys.executable, "-c", WRITE, str(size_bytes), root], check=True, capture_output=True,
                             text=True)
        prefix = out.stdout.strip().splitlines()[-1]
        data = prefix + ".data-00000-of-00001"
        index = index_filename(prefix)
        original = os.path.join(root, "original.index")
        shutil.copy(index, original)
        # A sibling of the same run: only its index is read, so a copy stands in for it.
        shutil.copy(index, os.path.join(root, "ckpt-0.index"))
        data_size = os.path.getsize(data)
        _run(BASELINE, data, str(8 << 20))  # warm the page cache

        # Two plain passes: the usual 8 MiB reads, and reads of the rebuild's own chunk size (small
        # chunks stay in CPU cache between the read and the CRC, which favours whoever uses them).
        results = {"baseline": [], "baseline_same_chunk": [], "rebuild": [], "tensorflow": []}
        for _ in range(repeats):
            results["baseline"].append(_run(BASELINE, data, str(8 << 20)))
            results["baseline_same_chunk"].append(_run(BASELINE, data, str(DEFAULT_CHUNK)))
            os.remove(index)
            results["rebuild"].append(_run(REBUILD, prefix, original))
            shutil.copy(original, index)
            results["tensorflow"].append(_run(TF_READ, prefix))

        def median_seconds(name):
            return statistics.median(s for s, _ in results[name])

        def paired(slower, faster):
            return round(statistics.median(a[0] / b[0] for a, b in zip(results[slower], results[faster])), 2)

        report = {
            "data_bytes": data_size,
            "seconds": {name: round(median_seconds(name), 3) for name in results},
            "throughput_mb_s": {name: round(data_size / median_seconds(name) / 1e6) for name in results},
            "peak_rss_mb": {name: round(max(r for _, r in results[name]) / 1e6) for name in results},
            # Ratios are paired per repeat (each baseline with the rebuild right after it), so drift in
            # the machine's load cancels; the median of those is reported.
            "rebuild_vs_plain_read_crc": paired("baseline", "rebuild"),
            "rebuild_vs_plain_read_crc_same_chunk": paired("baseline_same_chunk", "rebuild"),
            "chunk_bytes": DEFAULT_CHUNK,
            "rebuild_vs_tensorflow_read": paired("tensorflow", "rebuild"),
            "repeats": repeats,
        }
        return report
    finally:
        shutil.rmtree(root, ignore_errors=True)


def render(report: dict) -> str:
    s, t, r = report["seconds"], report["throughput_mb_s"], report["peak_rss_mb"]
    lines = [
        f"Rebuild of a {report['data_bytes'] / GIB:.2f} GiB orphan (median of {report['repeats']}, page cache warm; "
        "ratios are medians of per-repeat pairs)",
        "",
        "| pass | seconds | MB/s | peak RSS MB |",
        "|---|---|---|---|",
        f"| plain read (8 MiB reads) + google-crc32c | {s['baseline']} | {t['baseline']} | {r['baseline']} |",
        f"| plain read ({report['chunk_bytes'] >> 20} MiB reads) + google-crc32c | {s['baseline_same_chunk']} | "
        f"{t['baseline_same_chunk']} | {r['baseline_same_chunk']} |",
        f"| ckpt-rescue rebuild (no TensorFlow) | {s['rebuild']} | {t['rebuild']} | {r['rebuild']} |",
        f"| TensorFlow load_checkpoint + get_tensor | {s['tensorflow']} | {t['tensorflow']} | {r['tensorflow']} |",
        "",
        f"rebuild throughput / plain pass = {report['rebuild_vs_plain_read_crc']}x (8 MiB reads), "
        f"{report['rebuild_vs_plain_read_crc_same_chunk']}x (same chunk size) (target >= 0.8x); "
        f"rebuild / TensorFlow's read = {report['rebuild_vs_tensorflow_read']}x; "
        f"rebuild peak RSS {r['rebuild']} MB (target <= 256 MB)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    result = main()
    print(render(result))
    print(json.dumps(result))
