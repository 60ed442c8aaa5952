"""Damage real orphans in many ways and hold the rebuild to its promise.

Every case starts from a checkpoint TensorFlow wrote in this session, removes its index, damages
the data at the storage level (as a disk, a transfer or a crash would), and asks for a rebuild.
Whatever the damage, the rebuild must:
  - not crash (a refusal is an answer; an exception is not);
  - touch nothing (every file that existed is byte-for-byte the same afterwards);
  - never produce a wrong index: when it rebuilds, every entry describes exactly where the original
    tensor lies (dtype, shape, shard, offset, size), the CRC of every tensor whose bytes the damage
    did not reach equals TensorFlow's, and no damaged tensor is claimed "confirmed by a reference CRC";
  - refuse damage that changes a size or the object graph, zero-filled files and zeroed blocks.
Damage that keeps sizes and lands inside a tensor's values (a flipped bit, two equal-sized tensors
swapped) may be invisible without a reference: then the rebuild may succeed, but only with the
layout TensorFlow wrote, and the damaged tensors stay unconfirmed.
"""

import collections
import os
import random
import shutil

import pytest
from source_helpers import tree_digest

from recovery import storage
from recovery.context import NotRebuildable, open_orphan
from recovery.rebuild import REBUILT, rebuild
from tfbundle import OBJECT_GRAPH_KEY, data_filename, index_filename, read_index

pytestmark = pytest.mark.tf

SEEDS = range(4)
PAGE = 4096

# The families rebuilt here: a TF2 run with siblings, a TF1 Saver with its .meta (and a partitioned
# variable), a sharded save with slices, strings and odd dtypes, a SavedModel (fingerprint-checked),
# and a run with one large tensor so that block-sized damage lands inside a tensor.
FAMILIES = ("keras3_adam", "tf1_saver", "sharded", "mixed_dtypes", "savedmodel", "large_tensor")

# Kinds of damage that must always be refused (they change a size, the object graph, or look like
# space that was allocated and never written).
MUST_REFUSE = {"truncate", "append", "insert", "delete", "flip_object_graph", "zero_file", "zero_block"}

OUTCOMES = collections.Counter()   # (kind, verdict) over the whole module, for the closing summary


def _write_large_tensor_run(directory: str) -> str:
    """Two steps of a run whose kernel is 256 KiB, so a zeroed 4 KiB page falls inside one tensor."""
    from pipeline.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    module = tf.Module()
    module.kernel = tf.Variable(tf.random.stateless_normal([256, 256], seed=[1, 2]))
    module.bias = tf.Variable(tf.zeros([256]))                     # legitimately all zeros
    module.frozen = tf.Variable(tf.random.stateless_normal([64, 32], seed=[3, 4]), trainable=False)
    ckpt = tf.train.Checkpoint(module=module)
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=5)
    saved = None
    for step in range(2):
        module.kernel.assign(tf.random.stateless_normal([256, 256], seed=[10, step]))
        saved = manager.save()
    return saved


@pytest.fixture(scope="module")
def originals(pristine_family, tmp_path_factory):
    """family name -> (root directory, prefix): pristine checkpoints to copy for each case."""
    found = {}
    for name in FAMILIES:
        if name == "large_tensor":
            root = str(tmp_path_factory.mktemp("fuzz-large"))
            found[name] = (root, _write_large_tensor_run(root))
            continue
        family = pristine_family(name)
        root = family.savedmodel_dir if family.savedmodel_dir else os.path.dirname(family.prefix)
        found[name] = (root, family.prefix)
    return found


class Orphan:
    """A private copy of one family with the index removed; knows where each tensor lies."""

    def __init__(self, root: str, prefix: str, workdir: str):
        self.root = os.path.join(workdir, "ckpt")
        shutil.copytree(root, self.root)
        self.prefix = os.path.join(self.root, os.path.relpath(prefix, root))
        index_path = index_filename(self.prefix)
        with open(index_path, "rb") as f:
            self.original_index = f.read()
        os.remove(index_path)
        self.index = read_index(self.original_index)
        self.num_shards = self.index.header.num_shards or 1
        self.entries = {key: entry for key, entry in self.index.data_entries()}
        self.pristine = [bytes(self.read(s)) for s in range(self.num_shards)]
        self.sizes_changed = False    # set by damage that moves whole shards of different sizes

    @property
    def damaged(self) -> set:
        """Keys whose bytes differ from what TensorFlow wrote (where the shard kept its size)."""
        changed, current = set(), [bytes(self.read(s)) for s in range(self.num_shards)]
        for key, entry in self.entries.items():
            now, before = current[entry.shard_id], self.pristine[entry.shard_id]
            span = slice(entry.offset, entry.offset + entry.size)
            if len(now) != len(before) or now[span] != before[span]:
                changed.add(key)
        return changed

    def shard_path(self, shard: int) -> str:
        return data_filename(self.prefix, shard, self.num_shards)

    def read(self, shard: int) -> bytearray:
        with open(self.shard_path(shard), "rb") as f:
            return bytearray(f.read())

    def write(self, shard: int, data: bytes) -> None:
        with open(self.shard_path(shard), "wb") as f:
            f.write(data)

    def tensors(self, shard: int | None = None, graph: bool = False):
        """(key, entry) of non-empty tensors, optionally of one shard, with or without the object graph."""
        return [(k, e) for k, e in self.entries.items() if e.size > 0 and (shard is None or e.shard_id == shard)
                and (graph or k != OBJECT_GRAPH_KEY.encode())]


def _name(key: bytes) -> str:
    """A key for messages: slice keys hold binary OrderedCode bytes."""
    return key.decode("utf-8", "backslashreplace")


def _biggest_shard(orphan: Orphan) -> int:
    return max(range(orphan.num_shards), key=lambda s: os.path.getsize(orphan.shard_path(s)))


def damage(kind: str, orphan: Orphan, rng: random.Random) -> str:
    """Apply one kind of damage; returns a short description, or "" where it does not apply."""
    shard = _biggest_shard(orphan)
    data = orphan.read(shard)
    n = len(data)
    if kind == "truncate":
        cut = rng.randint(1, max(1, n // 3))
        orphan.write(shard, data[: n - cut])
        return f"shard {shard} truncated by {cut} bytes"
    if kind == "append":
        extra = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        orphan.write(shard, data + extra)
        return f"{len(extra)} bytes appended to shard {shard}"
    if kind == "insert":
        at, extra = rng.randint(0, n - 1), bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        orphan.write(shard, data[:at] + extra + data[at:])
        return f"{len(extra)} bytes inserted at {at} of shard {shard}"
    if kind == "delete":
        at = rng.randint(0, n - 2)
        gone = rng.randint(1, min(16, n - at - 1))
        orphan.write(shard, data[:at] + data[at + gone:])
        return f"{gone} bytes deleted at {at} of shard {shard}"
    if kind in ("flip_body", "flip_object_graph"):
        graph_key = OBJECT_GRAPH_KEY.encode()
        if kind == "flip_object_graph":
            if graph_key not in orphan.entries:
                return ""
            choices = [(graph_key, orphan.entries[graph_key])]
        else:
            choices = orphan.tensors()
        key, entry = rng.choice(choices)
        shard = entry.shard_id
        data = orphan.read(shard)
        at = entry.offset + rng.randrange(entry.size)
        data[at] ^= 1 << rng.randrange(8)
        orphan.write(shard, data)
        return f"bit flipped at byte {at} of shard {shard} ({_name(key)})"
    if kind == "zero_file":
        for s in range(orphan.num_shards):
            size = os.path.getsize(orphan.shard_path(s))
            orphan.write(s, bytes(size))
        return "every data file zero-filled"
    if kind == "zero_block":
        # A page-aligned block inside a tensor of at least two pages: space allocated, never written.
        inside = [(k, e) for k, e in orphan.tensors() if e.size >= 3 * PAGE]
        if not inside:
            return ""
        key, entry = rng.choice(inside)
        first = -(-entry.offset // PAGE) * PAGE
        last = (entry.offset + entry.size) // PAGE * PAGE
        start = first + rng.randrange((last - first) // PAGE - 1) * PAGE
        data = orphan.read(entry.shard_id)
        if not any(data[start:start + PAGE]):
            return ""
        data[start:start + PAGE] = bytes(PAGE)
        orphan.write(entry.shard_id, data)
        return f"page {start}-{start + PAGE} of shard {entry.shard_id} zeroed, inside {_name(key)}"
    if kind == "swap_tensors":
        by_size = collections.defaultdict(list)
        for key, entry in orphan.tensors():
            by_size[(entry.size, entry.shard_id)].append((key, entry))
        data_cache = {}
        pairs = []
        for group in by_size.values():
            for i, (ka, ea) in enumerate(group):
                for kb, eb in group[i + 1:]:
                    shard_data = data_cache.setdefault(ea.shard_id, orphan.read(ea.shard_id))
                    if shard_data[ea.offset:ea.offset + ea.size] != shard_data[eb.offset:eb.offset + eb.size]:
                        pairs.append(((ka, ea), (kb, eb)))
        if not pairs:
            return ""
        (ka, ea), (kb, eb) = rng.choice(pairs)
        data = orphan.read(ea.shard_id)
        a, b = bytes(data[ea.offset:ea.offset + ea.size]), bytes(data[eb.offset:eb.offset + eb.size])
        data[ea.offset:ea.offset + ea.size], data[eb.offset:eb.offset + eb.size] = b, a
        orphan.write(ea.shard_id, data)
        return f"{_name(ka)} and {_name(kb)} swapped"
    if kind == "swap_shards":
        if orphan.num_shards < 2:
            return ""
        a, b = rng.sample(range(orphan.num_shards), 2)
        data_a, data_b = orphan.read(a), orphan.read(b)
        if data_a == data_b:
            return ""
        orphan.write(a, data_b)
        orphan.write(b, data_a)
        orphan.sizes_changed = len(data_a) != len(data_b)
        return f"shards {a} and {b} swapped"
    raise AssertionError(kind)


KINDS = ("truncate", "append", "insert", "delete", "flip_body", "flip_object_graph", "zero_file", "zero_block",
         "swap_tensors", "swap_shards")


def _must_refuse(kind: str, orphan: Orphan, family: str) -> bool:
    if kind in MUST_REFUSE:
        return True
    if kind == "swap_shards":
        return orphan.sizes_changed
    # A SavedModel's fingerprint.pb hashes the true index: any change to any tensor's bytes shows.
    return family == "savedmodel" and bool(orphan.damaged)


def _assert_not_wrong(orphan: Orphan, outcome, what: str) -> None:
    """A rebuilt index describes exactly where TensorFlow put every tensor, with honest CRCs."""
    rebuilt, damaged = read_index(outcome.index_bytes), orphan.damaged
    assert set(rebuilt.entries) == set(orphan.index.entries), what
    assert rebuilt.header.num_shards == orphan.index.header.num_shards, what
    for key, original in orphan.index.entries.items():
        entry = rebuilt.entries[key]
        assert (entry.dtype, tuple(entry.shape), entry.shard_id, entry.offset, entry.size, entry.slices) == (
            original.dtype, tuple(original.shape), original.shard_id, original.offset, original.size,
            original.slices), f"{what}: {key!r} placed differently from TensorFlow's index"
        if entry.size and key not in damaged:
            assert entry.crc32c == original.crc32c, f"{what}: undamaged {key!r} got a different CRC"
        if entry.size and key in damaged:
            assert entry.crc32c != original.crc32c, f"{what}: damaged {key!r} kept TensorFlow's CRC"
    evidence = getattr(outcome, "evidence", None)
    assert evidence is not None, f"{what}: a rebuilt outcome must carry its evidence"
    confirmed = {k.encode() if isinstance(k, str) else k for k in evidence.matched_keys}
    assert not confirmed & damaged, f"{what}: damaged tensors claimed confirmed: {confirmed & damaged}"


def run_case(family: str, kind: str, seed: int, originals, workdir: str) -> str:
    """Damage one copy, rebuild, check every promise; returns the verdict for the tally."""
    root, prefix = originals[family]
    orphan = Orphan(root, prefix, workdir)
    what = damage(kind, orphan, random.Random(f"{family}/{kind}/{seed}"))
    if not what:
        return "not applicable"
    what = f"{family}, seed {seed}: {what}"
    before = tree_digest(orphan.root)
    fs, path = storage.url_to_fs(orphan.prefix)
    try:
        outcome = rebuild(open_orphan(fs, path))
    except NotRebuildable as exc:
        verdict, reason = "refused", str(exc)
    else:
        verdict, reason = ("rebuilt" if outcome.status == REBUILT else "refused"), outcome.reason
    assert tree_digest(orphan.root) == before, f"{what}: the rebuild changed files"
    assert not os.path.exists(index_filename(orphan.prefix)), what
    if verdict == "refused":
        assert reason, f"{what}: refused without a reason"
        return "refused"
    assert not _must_refuse(kind, orphan, family), f"{what}: rebuilt damage that must be refused ({outcome.source})"
    _assert_not_wrong(orphan, outcome, what)
    return "rebuilt, exact layout" + (", damage unconfirmed" if orphan.damaged else "")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_damage_is_refused_or_rebuilt_exactly(family, kind, originals, tmp_path):
    for seed in SEEDS:
        verdict = run_case(family, kind, seed, originals, str(tmp_path / f"seed-{seed}"))
        OUTCOMES[(kind, verdict)] += 1


def test_undamaged_copies_rebuild_byte_identical(originals, tmp_path):
    """The legitimate input: the same copies without damage rebuild exactly what TensorFlow wrote."""
    for family in FAMILIES:
        root, prefix = originals[family]
        orphan = Orphan(root, prefix, str(tmp_path / family))
        fs, path = storage.url_to_fs(orphan.prefix)
        outcome = rebuild(open_orphan(fs, path))
        assert outcome.status == REBUILT, f"{family}: {outcome.reason}"
        assert outcome.index_bytes == orphan.original_index, family


def test_fuzz_covered_every_kind_both_ways():
    """The tally: every kind of damage was applied, and the suite saw both verdicts (it can fail)."""
    if not OUTCOMES:
        pytest.skip("run together with the damage cases")
    applied = {kind for (kind, verdict) in OUTCOMES if verdict != "not applicable"}
    assert applied == set(KINDS), set(KINDS) - applied
    verdicts = collections.Counter()
    for (_kind, verdict), count in OUTCOMES.items():
        verdicts[verdict.split(",")[0]] += count
    assert verdicts["refused"] and verdicts["rebuilt"], verdicts
    lines = [f"{kind:18} {verdict:40} {count}" for (kind, verdict), count in sorted(OUTCOMES.items())]
    print("\nfuzz tally:\n" + "\n".join(lines))


@pytest.mark.slow
def test_audit_in_place_over_every_damage_touches_nothing_and_writes_no_wrong_index(originals, tmp_path):
    """The whole pipeline, allowed to write in place, over one damaged copy of each family per kind."""
    import subprocess
    import sys

    from recovery.report.readback import read_records

    tree, cases = tmp_path / "tree", {}
    for family in FAMILIES:
        for kind in KINDS:
            orphan = Orphan(*originals[family], str(tree / family / kind))
            if damage(kind, orphan, random.Random(f"audit/{family}/{kind}")):
                cases[orphan.prefix] = (family, kind, orphan)
    before = tree_digest(str(tree))
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "pipeline", "audit", str(tree), "--min-age", "0",
                           "--report-dir", str(report),
                           "--in-place", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    after = tree_digest(str(tree))
    assert {path: digest for path, digest in after.items() if path in before} == before
    new_files = set(after) - set(before)
    assert all(path.endswith(".index") for path in new_files), new_files
    records = {r.prefix: r for r in read_records(str(report))}
    verdicts = {records[p].status for p in cases if p in records}
    assert REBUILT in verdicts and len(verdicts) > 1, verdicts      # the audit judged them: not all alike
    for prefix, (family, kind, orphan) in cases.items():
        record = records.get(prefix)
        assert record is not None, f"{family}/{kind}: no record for {prefix}"
        written = os.path.exists(index_filename(prefix))
        assert written == (record.status == REBUILT), (family, kind, record.status, record.reason)
        if not written:
            continue
        assert not _must_refuse(kind, orphan, family), f"{family}/{kind}: rebuilt in place: {record.reason}"
        with open(index_filename(prefix), "rb") as f:
            index_bytes = f.read()
        outcome = collections.namedtuple("Written", "index_bytes evidence")(
            index_bytes, collections.namedtuple("Evidence", "matched_keys")(
                (getattr(record, "evidence", None) or {}).get("matched_keys", [])))
        _assert_not_wrong(orphan, outcome, f"audit {family}/{kind}")
