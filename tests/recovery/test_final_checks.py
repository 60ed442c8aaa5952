"""Each final check of a rebuild (recovery/final_checks.py) alone. The rebuild is planned on a
checkpoint TensorFlow wrote, with its index removed (every check before streaming passes), then the
damage a check must catch is written into the data, and the check must refuse it; on the bytes as
TensorFlow wrote them it must not, and it says what it confirmed."""

import dataclasses
import os
import shutil

import numpy as np
import pytest
from source_helpers import context, orphan
from transform_helpers import flip_byte, float_tensor_near

from recovery import storage
from recovery.final_checks import (
    DATA_CHECKS,
    INDEX_CHECKS,
    every_tensor_read,
    exact_source_crcs,
    fingerprint_matches,
    finishing,
    finite_floats,
    in_band_checksums,
    no_zero_fill,
    other_saves_bytes,
    plausible_values,
    reads_back,
    vault_agreement,
)
from recovery.rebuild import RebuildPlan, built, checksum_range, checksum_whole, prepare, split_ranges
from recovery.vault import ORIGIN_SEEN_HEALTHY, Vault, keep_checkpoint
from recovery.zeros import PAGE
from tfbundle import OBJECT_GRAPH_KEY, data_filename, read_index

pytestmark = pytest.mark.tf


def planned(family, vault=None, **options) -> tuple[RebuildPlan, bytes]:
    """The plan of a rebuild of the family's latest checkpoint, its index removed: (plan, TensorFlow's index)."""
    original = orphan(family.prefix)
    plan = prepare(context(family.prefix, vault=vault), **options)
    assert isinstance(plan, RebuildPlan), plan.reason
    return plan, original


def streamed(plan: RebuildPlan):
    return finishing(plan, checksum_whole(storage.url_to_fs(plan.prefix)[0], plan))


def entry(index_bytes: bytes, key: str):
    return read_index(index_bytes).entries[key.encode()]


def test_the_checks_run_data_first_then_index():
    assert DATA_CHECKS == (in_band_checksums, every_tensor_read, plausible_values, finite_floats, no_zero_fill)
    assert INDEX_CHECKS == (reads_back, vault_agreement, exact_source_crcs, fingerprint_matches, other_saves_bytes)


def test_in_band_checksums_refuse_a_string_tensor_whose_lengths_do_not_verify(family_copy):
    plan, original = planned(family_copy("keras3_adam"))
    checks = []
    assert in_band_checksums(streamed(plan), checks) is None
    assert checks == ["in-band checksums of 1 string/variant tensor(s) verify at their offsets"]   # the object graph
    graph = entry(original, OBJECT_GRAPH_KEY)
    flip_byte(data_filename(plan.prefix, graph.shard_id, 1), graph.offset)     # its length varint
    refused = in_band_checksums(streamed(plan), [])
    assert refused.startswith("sibling ckpt-2 placed a string/variant tensor where its in-band checksum fails")


def test_every_tensor_read_refuses_when_a_range_never_came_back(family_copy):
    plan, _ = planned(family_copy("keras3_adam"))
    fs = storage.url_to_fs(plan.prefix)[0]
    ranges = split_ranges(plan, 1024)
    assert len(ranges) > 2
    read = [checksum_range(fs, plan, *r) for r in ranges]
    assert every_tensor_read(finishing(plan, read), []) is None
    refused = every_tensor_read(finishing(plan, read[:1] + read[2:]), [])
    assert refused.startswith("no checksum for ")


def test_finite_floats_refuse_inf_and_nan_unless_allowed(family_copy):
    family = family_copy("keras3_adam")
    plan, original = planned(family)
    checks = []
    assert finite_floats(streamed(plan), checks) is None and checks == ["every float tensor is finite"]
    key, path, middle = float_tensor_near(original, plan.prefix, 0)
    start = middle - (middle - entry(original, key).offset) % 4
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\x00\x00\xc0\x7f")                               # a float32 NaN
    refused = finite_floats(streamed(plan), [])
    assert "reads non-finite floats in 1 tensor(s)" in refused and key in refused and "--allow-nonfinite" in refused
    checks = []
    assert finite_floats(streamed(dataclasses.replace(plan, allow_nonfinite=True)), checks) is None
    assert checks == [f"non-finite floats allowed: ['{key} (1 Inf/NaN)']"]


def test_plausible_values_refuse_integers_where_the_sibling_has_floats_and_only_when_it_alone_says_so(family_copy):
    family = family_copy("keras3_adam")          # siblings of the same run: its layout rests on them alone
    plan, original = planned(family)
    assert plan.rests_on == ["sibling ckpt-2", "sibling ckpt-1"]
    checks = []
    assert plausible_values(streamed(plan), checks) is None
    assert checks == ["the values at the edges of 13 float tensor(s) look like what sibling ckpt-2 says they are (no "
                      "integers read as floats, no boundary inside one run of values)"]
    key = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"     # the model's float32[8, 16] kernel
    start = entry(original, key).offset
    with open(data_filename(plan.prefix, 0, 1), "r+b") as f:
        f.seek(start)
        f.write(np.arange(1, 129, dtype="<i4").tobytes())     # what an int32[8, 16] holds (its first 256 bytes read)
    refused = plausible_values(streamed(plan), [])
    assert f"{key} float32[8, 16]: 64 of its 64 sampled non-zero values are subnormal floats" in refused
    assert "rests on sibling ckpt-2 and sibling ckpt-1 alone" in refused
    # A source that declares the shapes agreeing (here: the plan says so) leaves it to that source.
    assert plausible_values(streamed(dataclasses.replace(plan, rests_on=[])), []) is None


def test_no_zero_fill_refuses_an_aligned_zero_block_inside_a_tensor_and_counts_zero_tensors(family_copy):
    family = family_copy("tf1_adam")      # a 301x722 kernel, a frozen bias of zeros
    plan, original = planned(family)
    checks = []
    assert no_zero_fill(streamed(plan), checks) is None
    assert any("tensor(s) are entirely zero" in c and "frozen/bias" in c for c in checks)
    assert checks[-1] == "no zero-filled block inside a tensor, no data file of zeros"
    kernel = entry(original, "dense/kernel")
    start = (kernel.offset // PAGE + 2) * PAGE
    with open(data_filename(plan.prefix, 0, 1), "r+b") as f:
        f.seek(start)
        f.write(bytes(PAGE))
    refused = no_zero_fill(streamed(plan), [])
    assert "dense/kernel" in refused and "allocated but never written" in refused and "--allow-zeros" in refused
    checks = []
    assert no_zero_fill(streamed(dataclasses.replace(plan, allow_zeros=True)), checks) is None
    assert checks[-1].startswith("zeros allowed (--allow-zeros)")


def test_reads_back_refuses_index_bytes_that_are_not_the_entries_built(family_copy):
    family = family_copy("keras3_adam")
    plan, _ = planned(family)
    done = built(streamed(plan))
    checks = []
    assert reads_back(done, checks) is None
    assert checks == [f"index reads back: {len(done.entries)} entries besides the header, "
                      f"{len(done.index_bytes)} bytes"]
    with open(family.siblings[-1] + ".index", "rb") as f:
        another = f.read()                 # the same keys, another step's CRCs
    assert reads_back(dataclasses.replace(done, index_bytes=another), []) == (
        "the built index does not read back as written")


def test_exact_source_crcs_refuse_data_damaged_after_the_part_index_was_written(family_copy):
    family = family_copy("tf_keras_weights")
    os.makedirs(family.prefix + "_temp")
    shutil.copy(family.prefix + ".index", family.prefix + "_temp/part-00000-of-00001.index")   # a crashed merge
    plan, original = planned(family)
    assert plan.exact and plan.layout.source.startswith("part index in ")
    assert exact_source_crcs(built(streamed(plan)), []) is None
    key, path, middle = float_tensor_near(original, plan.prefix, 0)
    flip_byte(path, middle)
    refused = exact_source_crcs(built(streamed(plan)), [])
    assert refused.startswith(f"1 tensor(s) do not match the CRC {plan.layout.source} recorded for these very bytes")
    assert key in refused and refused.endswith("the data was damaged after it was written")


def test_a_sibling_is_no_exact_source_its_other_crcs_are_not_damage(family_copy):
    plan, original = planned(family_copy("keras3_adam"))
    assert not plan.exact
    done = built(streamed(plan))
    assert done.mismatched                  # trained tensors differ from the sibling's: expected
    assert exact_source_crcs(done, []) is None


def test_fingerprint_matches_refuses_an_index_fingerprint_pb_does_not_hash_to(family_copy):
    plan, original = planned(family_copy("savedmodel"))
    assert plan.layout.expected_fingerprint is not None
    done, checks = built(streamed(plan)), []
    assert fingerprint_matches(done, checks) is None
    assert checks[0].startswith("Fingerprint64 equals fingerprint.pb's checkpoint_hash")
    assert done.matched == list(range(len(plan.placed)))      # exact: every tensor confirmed
    _, path, middle = float_tensor_near(original, plan.prefix, 0)
    flip_byte(path, middle)
    refused = fingerprint_matches(built(streamed(plan)), [])
    assert refused.startswith(f"fingerprint.pb says the true index hashes to {plan.layout.expected_fingerprint:#018x}")


def test_vault_agreement_refuses_data_changed_in_place_under_the_prefixs_own_vaulted_index(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    vault = Vault.open(str(tmp_path / "vault"), create=True)
    assert keep_checkpoint(vault, family.prefix, ORIGIN_SEEN_HEALTHY, 1764901800.0, "night-1").created
    plan, original = planned(family, vault=vault)
    assert plan.exact and plan.layout.source.startswith("vaulted index of ckpt-3")
    done, checks = built(streamed(plan)), []
    assert vault_agreement(done, checks) is None and done.cannot_confirm == []
    assert "the rebuilt index is byte-identical to it" in checks[0]
    key, path, middle = float_tensor_near(original, plan.prefix, 0)
    stat = os.stat(path)
    flip_byte(path, middle)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))     # same size, same time: the identity it was kept with
    done = built(streamed(plan))
    refused = vault_agreement(done, [])
    assert refused.startswith("1 of ") and "the data changed after the index of" in refused and key in refused
    assert len(done.cannot_confirm) == 1 and key in done.cannot_confirm[0]
