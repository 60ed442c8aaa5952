"""The vault as a source, on checkpoints TensorFlow writes: an index kept while healthy comes back as it
was; damage in place is named, tensor by tensor; a re-saved prefix's entry is an earlier save (same
sizes) or not used at all (other sizes), and the evidence says which; vaulted siblings count as
references exactly as live ones do; and a vault that does not answer stops the rebuild."""

import os
import pickle
import uuid

import pytest
from source_helpers import assert_rebuilt_identically, orphan, tensor_values
from storage_servers import upload_tree

from recovery import storage
from recovery.context import open_orphan
from recovery.rebuild import (
    REBUILT,
    UNRECOVERABLE,
    checksum_range,
    finalize,
    portable,
    prepare,
    rebuild,
    split_ranges,
)
from recovery.storage import StorageUnavailable
from recovery.vault import ORIGIN_REBUILT, ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint
from samples import models
from tfbundle import decode_slice_key, dtype, index_filename, is_slice_key, read_index

pytestmark = pytest.mark.tf

WHEN = 1764901800.0
DATE = "2025-12-05 02:30 UTC"


def _vault(tmp_path) -> Vault:
    return Vault.open(str(tmp_path / "vault"), create=True)


def _keep(vault: Vault, *prefixes: str) -> None:
    for prefix in prefixes:
        assert keep_checkpoint(vault, prefix, ORIGIN_SEEN_HEALTHY, WHEN, "night-1").created


def _context(prefix: str, vault: Vault | None):
    fs, path = storage.split_prefix(prefix)
    return open_orphan(fs, path, vault=vault)


@pytest.mark.parametrize("name", ["keras3_adam", "tf1_saver", "savedmodel", "mixed_dtypes", "sharded",
                                  "tf1_dir_prefix"])
def test_an_index_kept_while_healthy_comes_back_byte_identical(name, family_copy, tmp_path):
    """TF2 Keras with Adam, TF1 with partitioned variables, a SavedModel's variables, a zero-size
    tensor among strings and odd dtypes, several shards, a TF1 `model_dir/` prefix."""
    family = family_copy(name)
    vault = _vault(tmp_path)
    _keep(vault, family.prefix, *family.siblings)
    expected = tensor_values(family.prefix)
    original = orphan(family.prefix)
    ctx = _context(family.prefix, vault)
    outcome = assert_rebuilt_identically(ctx, None, original, expected)
    tensors = len(read_index(original).data_entries())
    label = f"vaulted index of {storage.prefix_name(ctx.prefix)} as it was on {DATE}"
    assert outcome.source == label
    assert ctx.fitted_sources == [label]      # exact: nothing after it was asked, not even live siblings
    assert (f"{tensors} of {tensors} tensors confirmed by the index as it was on {DATE}: the rebuilt index is "
            "byte-identical to it") in " ".join(outcome.evidence.confirmed)
    assert outcome.evidence.reference_matched == outcome.evidence.reference_total == tensors
    assert not any("no reference CRC covers" in line for line in outcome.evidence.cannot_confirm)


def _damage_in_place(path: str, offsets: list) -> None:
    """Flip the lowest mantissa bit of the float at each offset, keeping the file's mtime and inode:
    what bit rot or a tool that restores times leaves (the store's identity is unchanged)."""
    stat = os.stat(path)
    with open(path, "r+b") as f:
        for offset in offsets:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ 0x01]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_damage_in_place_is_refused_naming_every_changed_tensor(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    vault = _vault(tmp_path)
    _keep(vault, family.prefix)
    original = orphan(family.prefix)
    floats = sorted((key.decode(), entry) for key, entry in read_index(original).data_entries()
                    if dtype(entry.dtype).name == "float32" and entry.size >= 8)[:5]
    data_file = family.prefix + ".data-00000-of-00001"
    _damage_in_place(data_file, [entry.offset + entry.size // 8 * 4 for _, entry in floats])
    outcome = rebuild(_context(family.prefix, vault))
    assert outcome.status == UNRECOVERABLE and outcome.index_bytes is None
    assert outcome.reason.startswith(f"5 of 16 tensor(s) do not match the index as it was on {DATE}")
    assert f"the data changed after the index of {DATE} was vaulted" in outcome.reason
    assert "and 2 more (all in the evidence)" in outcome.reason
    changed = [line for line in outcome.evidence.cannot_confirm if line.startswith("changed after the index")]
    assert len(changed) == 5
    for (key, entry), line in zip(sorted(floats, key=lambda item: item[1].offset), changed):
        assert key in line and f"shard 0, bytes {entry.offset}-{entry.offset + entry.size}" in line
    assert not os.path.exists(index_filename(family.prefix))


def test_damage_with_a_new_identity_is_an_earlier_save_and_the_evidence_names_it(family_copy, tmp_path):
    """Damage that also changed the file's identity (a rewrite) cannot be told from a re-save by the
    vault alone: its index is then a reference like a sibling's, and what differs is said."""
    family = family_copy("keras3_adam")
    vault = _vault(tmp_path)
    _keep(vault, family.prefix)
    original = orphan(family.prefix)
    key, entry = next((k.decode(), e) for k, e in read_index(original).data_entries()
                      if dtype(e.dtype).name == "float32" and e.size >= 64)
    data_file = family.prefix + ".data-00000-of-00001"
    _damage_in_place(data_file, [entry.offset + 8])
    stat = os.stat(data_file)
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    outcome = rebuild(_context(family.prefix, vault))
    assert outcome.status == REBUILT and outcome.source == f"vaulted index of ckpt-3 from {DATE} (an earlier save)"
    [line] = [c for c in outcome.evidence.cannot_confirm if "is of an earlier save" in c]
    assert "1 tensor(s) differ from it" in line and key in line


def test_a_zeroed_page_under_a_vaulted_index_is_refused(family_copy, tmp_path):
    family = family_copy("tf1_adam")
    vault = _vault(tmp_path)
    _keep(vault, family.prefix)
    original = orphan(family.prefix)
    kernel = read_index(original).entries[b"dense/kernel"]
    start = (kernel.offset + kernel.size // 2) // 4096 * 4096
    data_file = family.prefix + ".data-00000-of-00001"
    stat = os.stat(data_file)
    with open(data_file, "r+b") as f:
        f.seek(start)
        f.write(bytes(4096))
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    outcome = rebuild(_context(family.prefix, vault))
    assert outcome.status == UNRECOVERABLE and outcome.index_bytes is None
    assert "dense/kernel" in outcome.reason and f"bytes {start}-{start + 4096}" in outcome.reason


def test_the_vaults_checks_travel_with_a_plan_split_across_workers(family_copy, tmp_path):
    """What the audit's workers do: a portable plan, pickled, checksummed in ranges, finalized apart."""
    family = family_copy("sharded")
    vault = _vault(tmp_path)
    _keep(vault, family.prefix)
    original = orphan(family.prefix)
    fs, _ = storage.split_prefix(family.prefix)

    def in_ranges():
        plan = pickle.loads(pickle.dumps(portable(prepare(_context(family.prefix, vault)))))
        return finalize(plan, [checksum_range(fs, plan, *r) for r in split_ranges(plan, 512)])

    outcome = in_ranges()
    assert outcome.status == REBUILT and outcome.index_bytes == original
    assert "13 of 13 tensors confirmed by the index as it was on" in " ".join(outcome.evidence.confirmed)
    key, entry = next((k, e) for k, e in read_index(original).data_entries() if e.shard_id == 1 and e.size >= 64)
    name = decode_slice_key(key)[0] if is_slice_key(key) else key.decode()
    _damage_in_place(f"{family.prefix}.data-00001-of-00005", [entry.offset + 32])
    outcome = in_ranges()
    assert outcome.status == UNRECOVERABLE and name in outcome.reason
    assert f"shard 1, bytes {entry.offset}-{entry.offset + entry.size}" in outcome.reason


def _write(directory, name: str, ckpt) -> str:
    return ckpt.write(os.path.join(str(directory), name))


def test_a_prefix_saved_again_with_the_same_sizes_offers_its_earlier_index_as_a_reference(tmp_path):
    """`Checkpoint.write` to one prefix, again: TensorFlow renames new files into place (new identity),
    the sizes stay. Unchanged content verifies whole; changed tensors are named, not confirmed."""
    ckpt = models.mixed_dtypes()
    run = tmp_path / "run"
    prefix = _write(run, "latest", ckpt)
    vault = _vault(tmp_path)
    _keep(vault, prefix)
    [vaulted] = vault.entries(prefix)
    tensors = len(read_index(vault.read_index(vaulted)).data_entries())
    _write(run, "latest", ckpt)                                   # the same values, saved again
    original = orphan(prefix)
    outcome = rebuild(_context(prefix, vault))
    assert outcome.status == REBUILT and outcome.index_bytes == original
    assert outcome.source == f"vaulted index of latest from {DATE} (an earlier save)"
    confirmed = " ".join(outcome.evidence.confirmed)
    assert (f"{tensors} of {tensors} tensors confirmed by the index this prefix had on {DATE} (an earlier save with "
            "the same data file sizes): the rebuilt index is byte-identical to it") in confirmed
    ckpt.module.f64.assign([2.5, -1.0])
    ckpt.module.count.assign(7)
    _write(run, "other", ckpt)                                    # a live sibling of the new values
    _write(run, "latest", ckpt)
    expected = tensor_values(prefix)
    original = orphan(prefix)
    ctx = _context(prefix, vault)
    outcome = assert_rebuilt_identically(ctx, None, original, expected)
    assert outcome.index_bytes != vault.read_index(vaulted)
    assert outcome.source == f"vaulted index of latest from {DATE} (an earlier save)"   # the prefix's own wins
    assert "2 sources agree on every key, dtype, shape and offset" in " ".join(outcome.checks)
    [line] = [c for c in outcome.evidence.cannot_confirm if "is of an earlier save" in c]
    assert "2 tensor(s) differ from it" in line and "module/f64" in line and "module/count" in line
    assert any(line.startswith(f"{tensors - 2} of {tensors} tensors confirmed by the index this prefix had on {DATE}")
               for line in outcome.evidence.confirmed)


def test_a_prefix_saved_again_with_other_sizes_does_not_use_the_stale_entry(tmp_path):
    ckpt = models.mixed_dtypes()
    run = tmp_path / "run"
    prefix = _write(run, "latest", ckpt)
    vault = _vault(tmp_path)
    _keep(vault, prefix)
    then = os.path.getsize(prefix + ".data-00000-of-00001")
    ckpt.module.words.assign(["longer words", "than before", "so the data grows"])
    _write(run, "latest", ckpt)
    now = os.path.getsize(prefix + ".data-00000-of-00001")
    original = orphan(prefix)
    why = f"the index vaulted on {DATE} is for other bytes (shard 0: {then} bytes then, {now} now)"
    alone = rebuild(_context(prefix, vault))
    assert alone.status == UNRECOVERABLE and why in alone.reason
    _write(run, "other", ckpt)
    outcome = rebuild(_context(prefix, vault))
    assert outcome.status == REBUILT and outcome.index_bytes == original and outcome.source == "sibling other"
    assert any(why in line and "it was not used" in line for line in outcome.evidence.cannot_confirm)
    assert any(why in str(refusal) for refusal in outcome.refusals)


def test_vaulted_siblings_whose_indexes_are_gone_count_as_live_siblings_do(family_copy, tmp_path):
    """ckpt-1 deleted whole, ckpt-2's index lost, ckpt-3 never vaulted: the vault still holds the
    run's layout, and the tensors they share with ckpt-3 are confirmed exactly as by live siblings."""
    family = family_copy("keras3_adam")
    vault = _vault(tmp_path)
    _keep(vault, *family.siblings)
    expected = tensor_values(family.prefix)
    original = orphan(family.prefix)
    live = rebuild(_context(family.prefix, None))
    assert live.status == REBUILT
    for name in os.listdir(os.path.dirname(family.prefix)):
        if name.startswith("ckpt-1.") or name == "ckpt-2.index":
            os.remove(os.path.join(os.path.dirname(family.prefix), name))
    assert rebuild(_context(family.prefix, None)).status == UNRECOVERABLE      # no source without the vault
    ctx = _context(family.prefix, vault)
    outcome = assert_rebuilt_identically(ctx, None, original, expected)
    assert outcome.source == f"vaulted index of sibling ckpt-2 as of {DATE}"
    assert ctx.fitted_sources == [f"vaulted index of sibling ckpt-2 as of {DATE}",
                                  f"vaulted index of sibling ckpt-1 as of {DATE}"]
    assert outcome.evidence.matched_keys == live.evidence.matched_keys          # the same semantics, no more
    assert outcome.evidence.reference_matched == live.evidence.reference_matched > 0
    assert any(f"(vaulted index of sibling ckpt-1 as of {DATE}, vaulted index of sibling ckpt-2 as of {DATE})" in c
               for c in outcome.evidence.confirmed)


@pytest.mark.parametrize("with_graph", [True, False])
def test_a_vaulted_siblings_graph_tells_tensorflows_renaming_from_damage(with_graph, tmp_path):
    """A second model built in one process saves `adam_1/...` names into the same run: the keys equal the
    vaulted sibling's, the graph bytes do not. An entry that kept the graph's payload lets the rebuild
    name that difference as TensorFlow's own; one that kept only its CRC says it was not compared."""
    import tensorflow as tf

    run = tmp_path / "run"
    first = tf.train.CheckpointManager(models.keras3_adam(), str(run), max_to_keep=None).save()
    second = tf.train.CheckpointManager(models.keras3_adam(), str(run), max_to_keep=None).save(checkpoint_number=2)
    vault = _vault(tmp_path)
    kept = keep_checkpoint(vault, first, ORIGIN_SEEN_HEALTHY, WHEN, "night-1", with_graph=with_graph)
    assert (kept.entry.graph_payload is not None) == with_graph
    for name in os.listdir(run):                  # ckpt-1 deleted since; ckpt-2 lost its index
        if name.startswith("ckpt-1."):
            os.remove(run / name)
    expected = tensor_values(second)
    original = orphan(second)
    outcome = assert_rebuilt_identically(_context(second, vault), None, original, expected)
    assert outcome.source == f"vaulted index of sibling ckpt-1 as of {DATE}"
    renamed = [c for c in outcome.evidence.confirmed if "TensorFlow itself makes them differ" in c]
    not_compared = [c for c in outcome.evidence.cannot_confirm if "so the two were not compared" in c]
    assert (bool(renamed), bool(not_compared)) == (with_graph, not with_graph)


def test_an_index_ckpt_rescue_rebuilt_gives_its_layout_but_is_no_evidence(family_copy, tmp_path):
    """A vaulted `rebuilt` index: its CRCs came from the bytes then present, so they confirm nothing."""
    family = family_copy("keras_app")
    vault = _vault(tmp_path)
    assert keep_checkpoint(vault, family.prefix, ORIGIN_REBUILT, WHEN, "night-1").created
    expected = tensor_values(family.prefix)
    original = orphan(family.prefix)
    assert rebuild(_context(family.prefix, None)).status == UNRECOVERABLE          # nothing else knows it
    outcome = assert_rebuilt_identically(_context(family.prefix, vault), None, original, expected)
    assert outcome.source == f"vaulted index of ckpt-1 from {DATE} (rebuilt by ckpt-rescue)"
    assert outcome.evidence.reference_matched == 0
    assert (f"identical to the index ckpt-rescue rebuilt for this prefix on {DATE} (not independent evidence: its "
            "CRCs were computed from the bytes then present)") in outcome.evidence.confirmed
    assert any("not written by TensorFlow: its layout is used, its CRCs are not evidence" in line
               for line in outcome.evidence.cannot_confirm)


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_on_cloud_storage_the_generation_or_etag_makes_the_vaulted_index_exact(scheme, family_copy, request):
    proxy = request.getfixturevalue("faulty_gcs" if scheme == "gs" else "faulty_s3")
    family = family_copy("keras3_adam")
    bucket = f"{scheme}://ckpt-{uuid.uuid4().hex[:12]}"
    fs, path = storage.url_to_fs(bucket)
    fs.mkdir(path)
    upload_tree(os.path.dirname(family.prefix), f"{bucket}/run")
    prefix = f"{bucket}/run/ckpt-3"
    vault = Vault.open(f"{bucket}/vault", create=True)
    _keep(vault, prefix, f"{bucket}/run/ckpt-2")
    with open(index_filename(family.prefix), "rb") as f:
        original = f.read()
    fs.rm_file(storage.split_prefix(prefix)[1] + ".index")
    if scheme == "s3":        # a vault that does not answer is `error`, never a fall-through to the sibling
        request.getfixturevalue("monkeypatch").setenv("AWS_MAX_ATTEMPTS", "2")
        proxy.fail(500, times=None, method="GET", path=r"/vault/v1/.*\.json$")
        with pytest.raises(StorageUnavailable):
            rebuild(_context(prefix, Vault.open(f"{bucket}/vault")))
        assert proxy.hits() > 0
        proxy.clear()
    ctx = _context(prefix, vault)
    outcome = rebuild(ctx)
    assert outcome.status == REBUILT and outcome.index_bytes == original
    assert outcome.source == f"vaulted index of ckpt-3 as it was on {DATE}" and len(ctx.fitted_sources) == 1
