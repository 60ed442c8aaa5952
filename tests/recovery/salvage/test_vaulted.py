"""The index vault as salvage's reference: checkpoints TensorFlow wrote, kept in a vault by a night's audit
while healthy, then cut short (or damaged in place) with their index lost. Every tensor whose bytes arrived
and whose CRC equals the vaulted one is proven and restored bit for bit; one whose bytes differ from the
index of these very files is lost; without the vault the same tensors are only placed."""

import os

import pytest
from salvage_checkpoints import (
    check_keras,
    check_tf1,
    data_path,
    keys_touching,
    offset_of,
    orphan,
    read_manifest,
    truncate,
)

from recovery import storage
from recovery.salvage import LOST, PLACED, PROVEN, plan_salvage, write_salvage
from recovery.vault import ORIGIN_REBUILT, ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint

pytestmark = pytest.mark.tf

WHEN = 1764901800.0
VAULTED = "vaulted index of {} as it was on 2025-12-05 02:30 UTC"
TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"


def vault_with(tmp_path, *prefixes: str, origin: str = ORIGIN_SEEN_HEALTHY) -> Vault:
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    for prefix in prefixes:
        assert keep_checkpoint(vault, prefix, origin, WHEN, "night-1").created
    return vault


def plan(prefix: str, **options):
    fs, path = storage.split_prefix(prefix)
    return plan_salvage(fs, path, **options)


def test_a_vaulted_index_proves_every_tensor_that_arrived_of_a_cut_orphan(keras_run, run_copy, tmp_path):
    run = run_copy(keras_run)
    vault = vault_with(tmp_path, run.latest)
    end = offset_of(run.latest, TRAINED) + 1000
    damaged = keys_touching(run.latest, 0, end)
    entries = orphan(run.latest)
    truncate(data_path(run.latest), end)
    without = plan(run.latest)
    assert without.source == "sibling ckpt-2" and PLACED in {t.state for t in without.kept}
    found = plan(run.latest, vault=vault)
    label = VAULTED.format("ckpt-3")
    assert found.source == label     # the lost index itself, cut short: its layout, not the sibling's
    assert [t.spec.key for t in found.kept] == [t.spec.key for t in without.kept]
    assert {(t.state, t.reference) for t in found.kept} == {(PROVEN, label)}
    assert any(line.startswith("the index vaulted on 2025-12-05 02:30 UTC describes these data files before they "
                               "were cut short") for line in found.cannot_check)
    # The object graph did not arrive; the sibling's is the one the vaulted index records, byte for byte.
    assert found.graph.origin == f"sibling ckpt-2's, byte-identical to the lost one (its CRC equals the one {label} " \
                                 "records)"
    out = str(tmp_path / "salvaged" / "ckpt-3")
    write_salvage(found, out)
    check_keras(run, out, read_manifest(out), damaged, entries)


def test_the_vault_alone_salvages_a_tf1_checkpoint_cut_short_with_no_other_source(tf1_run, run_copy, tmp_path):
    """No sibling, no .meta, no registry: only the vault knows the layout, and it proves what arrived."""
    run = run_copy(tf1_run)
    vault = vault_with(tmp_path, run.latest)
    for name in os.listdir(run.directory):
        if name.startswith(os.path.basename(run.prefixes[0])) or name.endswith(".meta") or name == "checkpoint":
            os.remove(os.path.join(run.directory, name))
    cut = offset_of(run.latest, "embedding", shard=1) + 4000
    lost = keys_touching(run.latest, 1, cut)
    orphan(run.latest)
    truncate(data_path(run.latest, 1, 3), cut)
    with pytest.raises(Exception, match="no source of truth"):
        plan(run.latest)
    found = plan(run.latest, vault=vault)
    assert found.source == VAULTED.format("model.ckpt-200")
    assert {t.state for t in found.kept} == {PROVEN}
    assert {t.spec.key for t in found.having(LOST)} == lost
    out = str(tmp_path / "salvaged" / "model.ckpt-200")
    write_salvage(found, out)
    names = read_manifest(out)["restore"]["variables"]
    assert not any(name.startswith("embedding") for name in names)
    check_tf1(run, out, names, set(run.saved()) - set(names))


def test_bytes_that_differ_from_the_index_of_these_very_files_are_lost(keras_run, run_copy, tmp_path):
    """Damage in place that kept the file's size, inode and mtime: the vaulted index is of these very
    files, so a CRC that differs is damage, never a tensor that changed since."""
    run = run_copy(keras_run)
    vault = vault_with(tmp_path, run.latest)
    path = data_path(run.latest)
    stat = os.stat(path)
    offset = offset_of(run.latest, TRAINED) + 64
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    entries = orphan(run.latest)
    found = plan(run.latest, vault=vault)
    states = {t.spec.key: t for t in found.tensors}
    assert states[TRAINED].state == LOST
    assert states[TRAINED].why.startswith(f"its CRC differs from the one {VAULTED.format('ckpt-3')} recorded for "
                                          "these very bytes")
    assert {t.state for t in found.kept} == {PROVEN}
    out = str(tmp_path / "salvaged" / "ckpt-3")
    write_salvage(found, out)
    check_keras(run, out, read_manifest(out), {TRAINED}, entries)


def test_an_index_ckpt_rescue_rebuilt_proves_nothing(keras_run, run_copy, tmp_path):
    """A vaulted index the tool itself rebuilt: its CRCs came from the bytes then present, so it proves no
    tensor, and it is not offered as the cut prefix's own index."""
    run = run_copy(keras_run)
    vault = vault_with(tmp_path, run.latest, origin=ORIGIN_REBUILT)
    end = offset_of(run.latest, TRAINED) + 1000
    orphan(run.latest)
    truncate(data_path(run.latest), end)
    found = plan(run.latest, vault=vault)
    assert found.source == "sibling ckpt-2"
    assert PLACED in {t.state for t in found.kept}
    assert not any(t.reference.startswith("vaulted index") for t in found.kept)
