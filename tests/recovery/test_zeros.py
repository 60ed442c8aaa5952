"""Zero-filled storage (space allocated but never written) is refused; zeros that are data are not.

Checkpoints are the `tf1_adam` family TensorFlow writes in the session: a 301x722 kernel, a
2000x64 embedding that starts at zero and has 3 rows trained (so its untouched rows and their Adam
slots stay zero, including one run whose both edges fall 4 KiB-aligned on row boundaries), a frozen
bias of zeros, and a save before training (all Adam slots zero). Damage is written into the copies'
data files: a file of zeros, a zeroed 4 KiB or 64 KiB aligned block inside the kernel, a zeroed tail.
"""

import contextlib
import io
import os

import numpy as np
import pytest
from source_helpers import context, orphan

from pipeline.cli import main as cli_main
from recovery import storage
from recovery.rebuild import REBUILT, UNRECOVERABLE, checksum_range, finalize, prepare, rebuild, split_ranges
from recovery.report.readback import read_records
from recovery.zeros import PAGE
from samples.families import TF1_EMBEDDING_SHAPE, TF1_TRAINED_IDS
from tfbundle import data_filename, index_filename, read_index

pytestmark = pytest.mark.tf

DATA = ".data-00000-of-00001"


def offsets(index_bytes: bytes) -> dict:
    """key -> (offset, size) of every tensor TensorFlow wrote."""
    return {k.decode(): (e.offset, e.size) for k, e in read_index(index_bytes).data_entries()}


def renamed(prefix: str, new_prefix: str) -> str:
    """Move a TF1 checkpoint's files (index if any, data, .meta) to a step-less name, so the step
    counter check has nothing to compare and the zeros are what is judged."""
    for suffix in (".index", DATA, ".meta"):
        if os.path.exists(prefix + suffix):
            os.makedirs(os.path.dirname(new_prefix), exist_ok=True)
            os.rename(prefix + suffix, new_prefix + suffix)
    return new_prefix


def zero_fill(path: str, start: int, end: int) -> None:
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(end - start))


def lone_orphan(family, where: str) -> tuple:
    """The trained checkpoint, alone in its own directory under a step-less name, index removed:
    (prefix, TensorFlow's index bytes). Its .meta is the source of the layout."""
    original = orphan(family.prefix)
    return renamed(family.prefix, os.path.join(where, "model.ckpt")), original


def test_trained_orphan_with_zero_rows_and_a_zero_bias_is_rebuilt_identically(family_copy):
    family = family_copy("tf1_adam")
    original = orphan(family.prefix)
    data = np.fromfile(data_filename(family.prefix, 0, 1), np.uint8)
    start, size = offsets(original)["embedding"]
    rows = data[start:start + size].reshape(TF1_EMBEDDING_SHAPE[0], -1)
    trained = sorted(np.flatnonzero(rows.any(axis=1)).tolist())
    assert trained == list(TF1_TRAINED_IDS)
    untouched = (start + (trained[0] + 1) * rows.shape[1], start + trained[1] * rows.shape[1])
    assert untouched[0] % PAGE == 0 and untouched[1] % PAGE == 0, "the run this test is about must be block-aligned"

    outcome = rebuild(context(family.prefix))
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original
    zero_check = next(c for c in outcome.checks if "entirely zero" in c)
    assert zero_check.startswith("1 tensor(s)") and "frozen/bias" in zero_check
    assert "no zero-filled block inside a tensor, no data file of zeros" in outcome.checks


def test_a_save_before_training_is_rebuilt_identically_and_its_zero_slots_counted(family_copy):
    family = family_copy("tf1_adam")
    untrained = family.siblings[0]
    original = orphan(untrained)
    outcome = rebuild(context(untrained))
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original
    zero_check = next(c for c in outcome.checks if "entirely zero" in c)
    for key in ("dense/kernel/Adam ", "dense/kernel/Adam_1 ", "embedding ", "frozen/bias ", "global_step "):
        assert key in zero_check + " ", key
    assert zero_check.startswith("7 tensor(s)")


def test_a_data_file_of_zeros_is_refused_unless_allowed(family_copy, tmp_path):
    family = family_copy("tf1_adam")
    prefix, original = lone_orphan(family, str(tmp_path / "lone"))
    path = prefix + DATA
    zero_fill(path, 0, os.path.getsize(path))

    refused = rebuild(context(prefix))
    assert refused.status == UNRECOVERABLE
    assert f"data file {path} is zeros from first to last byte ({os.path.getsize(path)} bytes)" in refused.reason
    assert "--allow-zeros" in refused.reason

    allowed = rebuild(context(prefix), allow_zeros=True)
    assert allowed.status == REBUILT, allowed.reason
    assert any(c.startswith("zeros allowed (--allow-zeros): data file") for c in allowed.checks)
    # The layout is TensorFlow's: only the CRCs differ (they are the zeros' CRCs).
    assert offsets(allowed.index_bytes) == offsets(original)


def test_a_data_file_of_zeros_under_its_step_name_is_refused(family_copy):
    family = family_copy("tf1_adam")
    orphan(family.prefix)
    path = data_filename(family.prefix, 0, 1)
    zero_fill(path, 0, os.path.getsize(path))
    assert rebuild(context(family.prefix)).status == UNRECOVERABLE


def test_the_cli_refuses_zeros_and_writes_nothing_then_accepts_them_when_told(family_copy, tmp_path):
    family = family_copy("tf1_adam")
    prefix, _ = lone_orphan(family, str(tmp_path / "lone"))
    zero_fill(prefix + DATA, 0, os.path.getsize(prefix + DATA))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli_main(["rebuild", prefix, "--no-tf-check"]) == 1
    assert "zeros from first to last byte" in err.getvalue() and "--allow-zeros" in err.getvalue()
    assert not os.path.exists(index_filename(prefix))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["rebuild", prefix, "--allow-zeros"]) == 0
    assert "zeros allowed (--allow-zeros)" in out.getvalue()
    assert os.path.exists(index_filename(prefix))


@pytest.mark.parametrize("block", [4 << 10, 64 << 10])
def test_a_zeroed_aligned_block_inside_a_weight_is_refused_naming_it(family_copy, tmp_path, block):
    family = family_copy("tf1_adam")
    prefix, original = lone_orphan(family, str(tmp_path / "lone"))
    kernel_start, kernel_size = offsets(original)["dense/kernel"]
    start = (kernel_start + 3 * block) // block * block
    assert start + block < kernel_start + kernel_size
    zero_fill(prefix + DATA, start, start + block)

    refused = rebuild(context(prefix))
    assert refused.status == UNRECOVERABLE
    assert f"shard 0 bytes {start}-{start + block} ({block} bytes) are zeros" in refused.reason
    assert "inside dense/kernel float32[301, 722]" in refused.reason
    assert "allocated but never written" in refused.reason and "--allow-zeros" in refused.reason
    allowed = rebuild(context(prefix), allow_zeros=True)
    assert allowed.status == REBUILT
    assert offsets(allowed.index_bytes) == offsets(original)


def test_a_zeroed_tail_is_refused(family_copy, tmp_path):
    family = family_copy("tf1_adam")
    prefix, original = lone_orphan(family, str(tmp_path / "lone"))
    slot_start, slot_size = offsets(original)["dense/kernel/Adam_1"]
    start = (slot_start + slot_size // 2) // PAGE * PAGE
    size = os.path.getsize(prefix + DATA)
    zero_fill(prefix + DATA, start, size)
    refused = rebuild(context(prefix))
    assert refused.status == UNRECOVERABLE
    assert f"shard 0 bytes {start}-{size}" in refused.reason and "dense/kernel/Adam_1" in refused.reason


def _damage(kind: str, prefix: str, original: bytes) -> None:
    path = prefix + DATA
    kernel_start, _ = offsets(original)["dense/kernel"]
    if kind == "file":
        zero_fill(path, 0, os.path.getsize(path))
    elif kind == "block":
        start = (kernel_start + 5 * PAGE) // PAGE * PAGE
        zero_fill(path, start, start + 3 * PAGE)
    elif kind == "tail":
        zero_fill(path, (kernel_start + 10 * PAGE) // PAGE * PAGE, os.path.getsize(path))


@pytest.mark.parametrize("kind", ["none", "file", "block", "tail"])
def test_split_ranges_and_small_chunks_agree_with_the_whole_file(family_copy, tmp_path, kind):
    family = family_copy("tf1_adam")
    prefix, original = lone_orphan(family, str(tmp_path / "lone"))
    _damage(kind, prefix, original)
    ctx = context(prefix)
    plan = prepare(ctx)
    whole = finalize(plan, [checksum_range(ctx.fs, plan, s, 0, size) for s, size in enumerate(plan.shard_sizes)])
    ranges = split_ranges(plan, 10_000)
    assert len(ranges) > 100
    split = finalize(plan, [checksum_range(ctx.fs, plan, s, a, b, chunk_size=3000) for s, a, b in ranges])
    assert (split.status, split.reason, split.checks, split.index_bytes) == (
        whole.status, whole.reason, whole.checks, whole.index_bytes)
    assert (whole.status == REBUILT) == (kind == "none"), whole.reason
    if kind == "none":
        assert whole.index_bytes == original


def test_audit_with_a_small_split_refuses_a_zeroed_block_and_rebuilds_legitimate_zeros(family_copy, tmp_path):
    family = family_copy("tf1_adam")
    root = str(tmp_path / "root")
    os.makedirs(root)
    trained = family_copy("tf1_adam")
    os.rename(os.path.dirname(trained.prefix), os.path.join(root, "run"))
    trained_prefix = os.path.join(root, "run", os.path.basename(trained.prefix))
    trained_index = orphan(trained_prefix)
    damaged, original = lone_orphan(family, os.path.join(root, "damaged"))
    _damage("block", damaged, original)

    records = {}
    for allow in (False, True):
        report = str(tmp_path / f"report-{allow}")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli_main(["audit", root, "--min-age", "0", "--report-dir", report, "--split-bytes", "65536"]
                     + (["--allow-zeros"] if allow else []))
        records[allow] = {r.prefix: r for r in read_records(report)}
    refused, rebuilt = records[False][damaged], records[False][trained_prefix]
    assert refused.status == UNRECOVERABLE and "dense/kernel" in refused.reason and "--allow-zeros" in refused.reason
    assert rebuilt.status == REBUILT and any("frozen/bias" in c for c in rebuilt.checks), rebuilt.reason
    staged = storage.read_bytes(*storage.url_to_fs(rebuilt.index_path))
    assert staged == trained_index
    assert records[True][damaged].status == REBUILT
    assert any(c.startswith("zeros allowed") for c in records[True][damaged].checks)
    assert not os.path.exists(index_filename(damaged))


def _registered_module(root: str, first_bytes: int) -> tuple:
    """A model whose 256x256 float32 kernel (1 KiB rows) starts `first_bytes` into its data file (after a
    vector of that size), saved with `Checkpoint.write` to an orphan, and registered from a healthy copy:
    the registry is the only source. Returns (orphan prefix, the kernel's offset, registry layouts)."""
    from pipeline.tensorflow_env import import_tensorflow
    from recovery.registry import load_registry

    tf = import_tensorflow()
    module = tf.Module()
    if first_bytes:
        module.scale = tf.Variable(tf.ones([first_bytes // 4]))
    module.kernel = tf.Variable(tf.random.stateless_normal([256, 256], seed=[7, first_bytes]))
    for name in ("healthy", "run"):
        prefix = tf.train.Checkpoint(model=module).write(os.path.join(root, name, "latest"))
    registry = os.path.join(root, "architectures.yaml")
    assert cli_main(["register", "net", "--from-checkpoint", os.path.join(root, "healthy", "latest"),
                     "--registry", registry]) == 0
    kernel_offset = offsets(open(index_filename(prefix), "rb").read())["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"][0]
    orphan(prefix)
    return prefix, kernel_offset, load_registry(registry).layouts()


def test_with_only_a_registry_a_zeroed_page_is_refused_or_named_as_pruned_rows_or_a_lost_page(tmp_path):
    """Issue 14.5: a zeroed 4 KiB page inside a tensor, the registry the only source. Its edges at 4 KiB
    alignment inside the tensor: refused. Its edges on the tensor's row boundaries too (the rule accepts
    what pruned rows look like): rebuilt, and the evidence names the run."""
    prefix, kernel, layouts = _registered_module(str(tmp_path / "off-rows"), first_bytes=8)
    assert (2 * PAGE - kernel) % 1024                    # the page's edges fall inside rows
    zero_fill(prefix + DATA, 2 * PAGE, 3 * PAGE)
    outcome = rebuild(context(prefix, registry_layouts=layouts, arch="net"))
    assert outcome.status == UNRECOVERABLE and outcome.source == "registered `net`"
    assert f"bytes {2 * PAGE}-{3 * PAGE}" in outcome.reason and "model/kernel" in outcome.reason

    prefix, kernel, layouts = _registered_module(str(tmp_path / "on-rows"), first_bytes=0)
    assert kernel == 0                                   # rows start at multiples of 1 KiB: pages end on rows
    zero_fill(prefix + DATA, 2 * PAGE, 3 * PAGE)
    outcome = rebuild(context(prefix, registry_layouts=layouts, arch="net"))
    assert outcome.status == REBUILT, outcome.reason
    [named] = [c for c in outcome.evidence.cannot_confirm if "pruned rows or a lost page" in c]
    assert f"bytes {2 * PAGE}-{3 * PAGE}" in named and "model/kernel" in named
    assert "model/kernel/.ATTRIBUTES/VARIABLE_VALUE" not in outcome.evidence.matched_keys


def test_untouched_embedding_rows_are_rebuilt_and_named_as_the_data_cannot_tell(family_copy, tmp_path):
    """The legitimate input: rows of an embedding no step touched (and their Adam slots) are zeros that end
    on row boundaries; rebuilt byte-identically, and said."""
    family = family_copy("tf1_adam")
    prefix, original = lone_orphan(family, str(tmp_path / "lone"))
    outcome = rebuild(context(prefix))
    assert outcome.status == REBUILT and outcome.index_bytes == original, outcome.reason
    assert any("pruned rows or a lost page" in c and "embedding" in c for c in outcome.evidence.cannot_confirm)
