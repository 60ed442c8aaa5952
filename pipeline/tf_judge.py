"""TensorFlow as the final judge of a rebuilt index: does its own reader accept it?

Runs on the launching machine only. The data files are linked into a scratch directory next to
the new index, so nothing is written beside the user's checkpoint.

The rebuilt CRCs were computed from the same bytes TensorFlow would re-read, so a second full pass
proves little and costs more than the rebuild (TensorFlow reads about ten times slower than a plain
read + CRC). By default TensorFlow parses the index and reads a sample that exercises every part of
the index it could disagree with: every string and variant tensor (their in-band layouts), the
smallest tensor of every dtype, and the tensors at both ends of every shard (offsets and shard ids),
within a byte budget. `full` reads every tensor.

TensorFlow's import (seconds, hundreds of MB) dwarfs the rebuild itself, so `BackgroundJudge`
imports it in a separate process while the rebuild streams the data, and hands it the index only
when there is one to judge: on two cores the two overlap instead of adding up.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from tfbundle import (
    DT_STRING,
    DT_VARIANT,
    INDEX_SUFFIX,
    data_filename,
    decode_slice_key,
    dtype,
    index_filename,
    is_slice_key,
    read_index,
)

from .tensorflow_env import INSTALL_HINT, tensorflow_available

__all__ = ["SKIPPED_NOTICE", "start_judge", "tensorflow_available", "tf_reads", "tf_reads_every_tensor"]

SAMPLE, FULL = "sample", "full"
SAMPLE_BUDGET = 64 << 20        # bytes TensorFlow reads in the sample, strings and variants included
SAMPLE_MAX_TENSOR = 32 << 20    # a shard-end tensor larger than this is passed over (memory, time)
SKIPPED_NOTICE = f"TensorFlow check skipped: TensorFlow is not installed; {INSTALL_HINT}"


@dataclass
class Sample:
    keys: list          # full tensor names TensorFlow lists, in the order to read them
    bytes: int          # data bytes behind them
    why: list           # what the sample covers, in words
    passed_over: list   # shard ends too large for the budget


def choose_sample(index_bytes: bytes, budget: int = SAMPLE_BUDGET, max_tensor: int = SAMPLE_MAX_TENSOR) -> Sample:
    """The tensors TensorFlow reads by default; see the module docstring for why these."""
    index = read_index(index_bytes)
    sizes, kinds, placed = {}, {}, []
    for key, entry in index.data_entries():
        name = decode_slice_key(key)[0] if is_slice_key(key) else key.decode("utf-8", "surrogateescape")
        sizes[name] = sizes.get(name, 0) + entry.size
        kinds[name] = entry.dtype
        placed.append((entry.shard_id, entry.offset, entry.size, name))
    chosen, total = {}, 0

    def take(name: str, why: str) -> bool:
        nonlocal total
        if name in chosen:
            return True
        if total + sizes[name] > budget:
            return False
        chosen[name], total = why, total + sizes[name]
        return True

    strings = sorted((n for n, d in kinds.items() if d in (DT_STRING, DT_VARIANT)), key=lambda n: sizes[n])
    read_strings = sum(take(n, "string/variant") for n in strings)
    smallest = {}
    for name, number in kinds.items():
        if number not in smallest or sizes[name] < sizes[smallest[number]]:
            smallest[number] = name
    for name in smallest.values():
        take(name, "dtype")
    passed_over = []
    by_shard = {}
    for shard, _offset, size, name in sorted(placed):
        by_shard.setdefault(shard, []).append((size, name))
    for shard, tensors in sorted(by_shard.items()):
        for size, name in {tensors[0], tensors[-1]}:
            if sizes[name] > max_tensor or not take(name, "shard end"):
                passed_over.append(f"{name} ({size} bytes, shard {shard})")
    why = []
    if strings:
        why.append(f"{read_strings} of {len(strings)} string/variant tensor(s)")
    why.append(f"the smallest tensor of each of {len(smallest)} dtype(s) "
               f"({', '.join(sorted(dtype(d).name for d in smallest))})")
    why.append(f"the tensors at both ends of {len(by_shard)} shard(s)")
    return Sample(list(chosen), total, why, passed_over)


def tf_reads(data_paths: list[str], index_bytes: bytes, mode: str = SAMPLE) -> tuple[bool, str]:
    """(ok, message): TensorFlow parses the index and reads a sample (or every tensor) through it."""
    from .tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    sample = choose_sample(index_bytes) if mode == SAMPLE else None
    with tempfile.TemporaryDirectory(prefix="ckpt-rescue-judge-") as scratch:
        prefix = os.path.join(scratch, "judged")
        for shard, path in enumerate(data_paths):
            os.symlink(os.path.abspath(path), data_filename(prefix, shard, len(data_paths)))
        with open(index_filename(prefix), "wb") as f:
            f.write(index_bytes)
        try:
            reader = tf.train.load_checkpoint(prefix)
            dtypes = reader.get_variable_to_dtype_map()
            keys = list(dtypes) if sample is None else sample.keys
            for key in keys:
                if dtypes[key] == tf.variant:  # the reader cannot hand variants to numpy; RestoreV2 reads them
                    tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key], shape_and_slices=[""],
                                         dtypes=[tf.variant])
                else:
                    reader.get_tensor(key)
        except Exception as exc:  # TF raises many error types; any of them is a verdict
            return False, f"TensorFlow could not read the rebuilt checkpoint: {type(exc).__name__}: {exc}"
    if sample is None:
        return True, f"TensorFlow {tf.__version__} read all {len(keys)} tensors through the rebuilt index (full check)"
    message = (f"TensorFlow {tf.__version__} parsed the rebuilt index ({len(dtypes)} tensors) and read {len(keys)} "
               f"of them ({sample.bytes} bytes): {'; '.join(sample.why)}")
    if sample.passed_over:
        message += f"; passed over as too large: {', '.join(sample.passed_over[:3])}"
    return True, message + " (--tf-check full reads every tensor)"


def tf_reads_every_tensor(data_paths: list[str], index_bytes: bytes) -> tuple[bool, str]:
    """The full check: every tensor read (and CRC-checked) by TensorFlow."""
    return tf_reads(data_paths, index_bytes, FULL)


class InProcessJudge:
    """Where TensorFlow is imported already (a notebook, the tests) a child would only import it again."""

    def __init__(self, mode: str = SAMPLE):
        self.mode = mode

    def judge(self, data_paths: list[str], index_bytes: bytes) -> tuple[bool, str]:
        return tf_reads(data_paths, index_bytes, self.mode)

    def cancel(self) -> None:
        pass


def start_judge(mode: str = SAMPLE):
    """The cheapest way to TensorFlow's verdict from here: in this process if it is loaded, else a child."""
    return InProcessJudge(mode) if "tensorflow" in sys.modules else BackgroundJudge(mode)


class BackgroundJudge:
    """TensorFlow's check in a child process that starts importing TensorFlow at once.

    `judge()` sends it the data paths and the rebuilt index and waits for the verdict; `cancel()`
    ends it when there is nothing to judge. The child reads one request and exits.
    """

    def __init__(self, mode: str = SAMPLE):
        self.mode = mode
        self._child = subprocess.Popen([sys.executable, "-m", "pipeline.tf_judge"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def judge(self, data_paths: list[str], index_bytes: bytes) -> tuple[bool, str]:
        with tempfile.NamedTemporaryFile(prefix="ckpt-rescue-judged-", suffix=INDEX_SUFFIX) as index_file:
            index_file.write(index_bytes)
            index_file.flush()
            request = {"data_paths": [os.path.abspath(p) for p in data_paths], "index_path": index_file.name,
                       "mode": self.mode}
            out, err = self._child.communicate(json.dumps(request) + "\n")
        if self._child.returncode != 0 or not out.strip():
            last = err.strip().splitlines()[-1] if err.strip() else "no answer"
            return False, f"TensorFlow's check did not run: {last}"
        answer = json.loads(out.strip().splitlines()[-1])
        return answer["ok"], answer["message"]

    def cancel(self) -> None:
        if self._child.returncode is not None:
            return                      # judged already
        self._child.kill()
        self._child.communicate()


def _serve() -> int:
    """Child side of BackgroundJudge: import TensorFlow now, then judge the one request on stdin."""
    from .tensorflow_env import import_tensorflow

    import_tensorflow()
    line = sys.stdin.readline()
    if not line:
        return 0
    request = json.loads(line)
    with open(request["index_path"], "rb") as f:
        index_bytes = f.read()
    ok, message = tf_reads(request["data_paths"], index_bytes, request["mode"])
    print(json.dumps({"ok": ok, "message": message}), flush=True)
    return 0


if __name__ == "__main__":
    code = _serve()
    sys.stderr.flush()
    # The verdict is out; TensorFlow's own teardown at exit costs ~0.7 s of CPU the launcher would wait for.
    os._exit(code)
