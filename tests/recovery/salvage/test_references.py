"""Reference CRCs: the list a new source (the index vault) joins, a part index, the old index of a stale prefix."""

import os
import shutil

import pytest
from salvage_checkpoints import (
    check_keras,
    data_path,
    keys_touching,
    offset_of,
    orphan,
    read_manifest,
    truncate,
    zero_bytes,
)

from recovery import storage
from recovery.layout import layout_from_index
from recovery.salvage import (
    LOST,
    PLACED,
    PROVEN,
    REFERENCE_SOURCES,
    Reference,
    ReferenceSource,
    plan_salvage,
    write_salvage,
)
from recovery.salvage import references as references_module
from tfbundle import read_index

pytestmark = pytest.mark.tf

TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"


class KeptIndex(ReferenceSource):
    """What the index vault will be: the index this very prefix had when it was seen healthy."""
    name = "vault"

    def __init__(self, index_bytes: bytes):
        self.layout = layout_from_index(read_index(index_bytes), "the vault's copy of its index")

    def references(self, ctx):
        return [(key, Reference(size, crc, self.layout.source, exact=True))
                for key, (size, crc) in self.layout.reference_crcs.items()]


def test_a_new_reference_source_joins_the_list_and_proves_what_was_only_placed(keras_run, run_copy, monkeypatch):
    run = run_copy(keras_run)
    with open(run.latest + ".index", "rb") as f:
        vaulted = f.read()
    orphan(run.latest)
    truncate(data_path(run.latest), 300_000)
    fs, path = storage.split_prefix(run.latest)
    without = plan_salvage(fs, path)
    assert {t.state for t in without.kept} == {PROVEN, PLACED}
    monkeypatch.setattr(references_module, "REFERENCE_SOURCES", [KeptIndex(vaulted), *REFERENCE_SOURCES])
    with_vault = plan_salvage(fs, path)
    assert [t.spec.key for t in with_vault.kept] == [t.spec.key for t in without.kept]
    assert {(t.state, t.reference) for t in with_vault.kept} == {(PROVEN, "the vault's copy of its index")}


def test_the_old_index_of_a_stale_prefix_proves_the_tensors_that_did_not_change(keras_run, run_copy, tmp_path):
    """ckpt-3's data beside the index of an earlier save (ckpt-2's): a save to a reused prefix that stopped
    before its index. The layout comes from the sibling; the old index proves what did not change."""
    run = run_copy(keras_run)
    entries = read_index(open(run.latest + ".index", "rb").read()).entries
    shutil.copyfile(run.prefixes[1] + ".index", run.latest + ".index")
    end = offset_of(run.latest, TRAINED) + 1000
    damaged = keys_touching(run.latest, 0, end)
    truncate(data_path(run.latest), end)
    fs, path = storage.split_prefix(run.latest)
    plan = plan_salvage(fs, path)
    assert plan.source == "sibling ckpt-2" and plan.ctx.stale_index
    assert any(line.startswith("its own index describes an earlier save") for line in plan.cannot_check)
    states = {t.spec.key: (t.state, t.reference) for t in plan.kept}
    assert states["optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == (PROVEN, "the old index of this prefix")
    assert states["save_counter/.ATTRIBUTES/VARIABLE_VALUE"] == (PLACED, "")   # 3 here, 2 in the old index
    out = str(tmp_path / "out" / "ckpt-3")
    write_salvage(plan, out)
    check_keras(run, out, read_manifest(out), damaged, entries)


def test_a_part_index_proves_every_tensor_and_convicts_the_damaged_one(keras_run, run_copy, tmp_path):
    """A crash during the merge left the part index of these very bytes (for one shard, the index itself):
    every tensor that arrived is proven or, where its bytes differ, lost; nothing is merely placed, not even
    what follows a zero-filled block in a file cut short."""
    run = run_copy(keras_run)
    slot = "optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE"
    entries = read_index(open(run.latest + ".index", "rb").read()).entries
    os.makedirs(run.latest + "_temp")
    shutil.copyfile(run.latest + ".index", run.latest + "_temp/part-00000-of-00001.index")
    start = (offset_of(run.latest, slot) // 4096 + 2) * 4096
    end = offset_of(run.latest, TRAINED) + 1000
    damaged = keys_touching(run.latest, 0, end) | {slot}
    orphan(run.latest)
    zero_bytes(data_path(run.latest), start, 4096)
    truncate(data_path(run.latest), end)
    fs, path = storage.split_prefix(run.latest)
    plan = plan_salvage(fs, path)
    assert plan.source.startswith("part index in ")
    assert {(t.state, t.reference) for t in plan.kept} == {(PROVEN, plan.source)}
    lost = {t.spec.key: t.why for t in plan.having(LOST)}
    assert lost[slot] == (f"its CRC differs from the one {plan.source} recorded for these very bytes: damaged after "
                          "they were written")
    assert plan.graph.origin == "sibling ckpt-2's, byte-identical to the lost one (its CRC equals the lost graph's)"
    out = str(tmp_path / "out" / "ckpt-3")
    write_salvage(plan, out)
    check_keras(run, out, read_manifest(out), damaged, entries)
