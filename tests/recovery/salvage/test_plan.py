"""Salvage of checkpoints TensorFlow wrote in this session and the tests then damaged: an upload cut
short, a page zeroed, a shard deleted, with the index kept or lost. Every salvaged checkpoint is
restored by TensorFlow: each restored variable must equal the value captured when it was saved, bit
for bit; every tensor the damage touched must be in the manifest as lost and must not be restored.
"""

import os

import pytest
from salvage_checkpoints import (
    check_keras,
    check_tf1,
    data_path,
    keys_touching,
    manifest_keys,
    offset_of,
    orphan,
    read_manifest,
    truncate,
    zero_bytes,
)

from recovery import storage
from recovery.rebuild import NO_SOURCE
from recovery.salvage import PLACED, PROVEN, UNCONFIRMED, Refused, plan_salvage, write_salvage
from tfbundle import OBJECT_GRAPH_KEY, read_index

pytestmark = pytest.mark.tf

PAGE = 4096
FROZEN = "model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE"
TRAINED = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
SLOT = "optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE"
# Where an upload stopped, by the tensor it stopped inside (and how many of its bytes arrived).
CUTS = {"a trained kernel": (TRAINED, 1000), "the frozen layer": (FROZEN, 100),
        "the object graph": (OBJECT_GRAPH_KEY, 40)}


def salvage(prefix: str, out: str, **options):
    fs, path = storage.split_prefix(prefix)
    plan = plan_salvage(fs, path, **options)
    write_salvage(plan, out)
    return plan, read_manifest(out)


def cut_point(run, cut: str) -> tuple:
    """(where the upload stopped, the keys it cut off) for one of CUTS."""
    key, arrived = CUTS[cut]
    end = offset_of(run.latest, key) + arrived
    return end, keys_touching(run.latest, 0, end)


# ---- the index survives: its CRCs are the references -------------------------------------------

@pytest.mark.parametrize("cut", CUTS)
def test_index_kept_upload_cut_short_keeps_every_tensor_whose_crc_verifies(keras_run, run_copy, tmp_path, cut):
    run = run_copy(keras_run)
    end, damaged = cut_point(run, cut)
    truncate(data_path(run.latest), end)
    entries = read_index(open(run.latest + ".index", "rb").read()).entries
    out = str(tmp_path / "out" / "ckpt-3")
    plan, doc = salvage(run.latest, out)
    assert plan.source == "its own index"
    assert {t.state for t in plan.kept} == {PROVEN}
    assert damaged == manifest_keys(doc, "lost")
    assert all("arrived" in item["why"] for item in doc["lost"])
    check_keras(run, out, doc, damaged, entries)
    # The graph ends the data, so it went with the tail: the sibling's is byte-identical (the index's CRC says so).
    assert doc["object_graph"]["from"] == ("sibling ckpt-2's, byte-identical to the lost one (its CRC equals the lost "
                                           "graph's)")


def test_index_kept_zeroed_page_loses_only_the_tensor_it_lies_in(keras_run, run_copy, tmp_path):
    run = run_copy(keras_run)
    start = (offset_of(run.latest, SLOT) // PAGE + 2) * PAGE
    zero_bytes(data_path(run.latest), start, PAGE)
    entries = read_index(open(run.latest + ".index", "rb").read()).entries
    out = str(tmp_path / "out" / "ckpt-3")
    _, doc = salvage(run.latest, out)
    assert [(item["key"], item["why"]) for item in doc["lost"]] == [
        (SLOT, f"its bytes do not match the CRC in the index (bytes {start}-{start + PAGE} of shard 0 are zero-filled: "
               "storage never written): damaged")]
    check_keras(run, out, doc, {SLOT}, entries)
    assert doc["object_graph"]["removed_attributes"] == [SLOT]


def test_index_kept_sharded_save_with_a_shard_deleted(keras_sharded_run, run_copy, tmp_path):
    """TensorFlow slices big variables across shards: a variable with one slice in the lost shard is lost
    whole (it restores only whole), the rest is kept."""
    run = run_copy(keras_sharded_run)
    shards = read_index(open(run.latest + ".index", "rb").read()).header.num_shards
    assert shards >= 4
    os.remove(data_path(run.latest, 1, shards))
    damaged = keys_touching(run.latest, 1, 0)
    entries = read_index(open(run.latest + ".index", "rb").read()).entries
    out = str(tmp_path / "out" / "ckpt-2")
    plan, doc = salvage(run.latest, out)
    lost = {item["key"]: item["why"] for item in doc["lost"]}
    assert damaged <= set(lost) and any("is missing" in why for why in lost.values())
    whole = [item for item in doc["lost"] if item["why"].startswith("intact, but another slice")]
    assert whole, "a variable with slices in the lost shard and in others"
    assert f"shard 1 ({data_path(run.latest, 1, shards)}) is missing" in " ".join(plan.cannot_check)
    check_keras(run, out, doc, damaged, entries)


def test_tf1_index_kept_shard_deleted_and_page_zeroed(tf1_run, run_copy, tmp_path):
    run = run_copy(tf1_run)
    os.remove(data_path(run.latest, 1, 3))   # the partitioned embedding's shard
    zero_bytes(data_path(run.latest, 0, 3), 8 * PAGE, PAGE)   # inside dense/kernel
    out = str(tmp_path / "out" / "model.ckpt-200")
    _, doc = salvage(run.latest, out)
    assert manifest_keys(doc, "lost") == {"dense/kernel", "embedding"}
    assert len(doc["lost"]) == 4     # dense/kernel and the embedding's three slices
    names = doc["restore"]["variables"]
    assert sorted(names) == ["dense/bias", "global_step", "logits/kernel"]
    assert "tf.compat.v1.train.Saver(var_list=" in doc["restore"]["how"]
    check_tf1(run, out, names, lost={"dense/kernel", "embedding/part_0", "embedding/part_1", "embedding/part_2"})


# ---- the index is lost too: a layout from the rebuild's sources, placed while the data lasts -----

@pytest.mark.parametrize("cut", CUTS)
def test_orphan_cut_short_keeps_what_references_prove_and_the_layout_places(keras_run, run_copy, tmp_path, cut):
    run = run_copy(keras_run)
    end, damaged = cut_point(run, cut)
    entries = orphan(run.latest)
    truncate(data_path(run.latest), end)
    out = str(tmp_path / "out" / "ckpt-3")
    plan, doc = salvage(run.latest, out)
    assert plan.source == "sibling ckpt-2"
    assert damaged == manifest_keys(doc, "lost")
    states = {item["key"]: item["state"] for item in doc["kept"]}
    assert set(states.values()) <= {PROVEN, PLACED} and PLACED in states.values()
    if FROZEN in states:   # the frozen layer did not change since ckpt-2: the sibling's CRC proves it
        assert states[FROZEN] == PROVEN
    assert "the checkpoint's own object graph (the last tensor of its data) did not arrive: keys and order come from " \
           "sibling ckpt-2, not from the checkpoint itself" in doc["cannot_check"]
    assert doc["object_graph"]["from"] == "sibling ckpt-2's, whose keys equal the layout's"
    # What ties the layout to the bytes of the cut shard: the largest tensor in it that the sibling's CRC proves.
    anchor = FROZEN + " float32[32, 128]" if FROZEN in states else "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"
    assert any(line.startswith(f"shard 0 was cut short; {anchor}") and line.endswith(
        " in it verifies against sibling ckpt-2: the layout is anchored to its bytes") for line in doc["checks"])
    check_keras(run, out, doc, damaged, entries)


def test_orphan_zeroed_page_loses_the_tensor_it_cuts_into_and_keeps_the_checkpoints_own_graph(keras_run, run_copy,
                                                                                             tmp_path):
    run = run_copy(keras_run)
    start = (offset_of(run.latest, SLOT) // PAGE + 2) * PAGE
    entries = orphan(run.latest)
    zero_bytes(data_path(run.latest), start, PAGE)
    out = str(tmp_path / "out" / "ckpt-3")
    plan, doc = salvage(run.latest, out)
    assert [(item["key"], item["why"]) for item in doc["lost"]] == [
        (SLOT, f"bytes {start}-{start + PAGE} of shard 0 inside it are zero-filled (storage never written) and no "
               "reference CRC covers it")]
    assert doc["object_graph"]["from"] == "the checkpoint's own (it arrived whole at the end of its data)"
    assert not plan.having(UNCONFIRMED)   # the layout tiles the file to its end: placement is anchored
    check_keras(run, out, doc, {SLOT}, entries)


@pytest.mark.parametrize("include", [False, True])
def test_orphan_zeros_then_a_cut_leave_what_lies_between_unconfirmed(keras_run, run_copy, tmp_path, include):
    run = run_copy(keras_run)
    start = (offset_of(run.latest, SLOT) // PAGE + 2) * PAGE
    end = offset_of(run.latest, TRAINED) + 1000
    before_zeros = keys_touching(run.latest, 0, 0, start + PAGE)
    between = keys_touching(run.latest, 0, start + PAGE, end) - before_zeros - {TRAINED}
    damaged = {SLOT} | keys_touching(run.latest, 0, end)
    entries = orphan(run.latest)
    zero_bytes(data_path(run.latest), start, PAGE)
    truncate(data_path(run.latest), end)
    out = str(tmp_path / "out" / "ckpt-3")
    _, doc = salvage(run.latest, out, include_unconfirmed=include)
    unconfirmed = {item["key"]: item for item in doc["unconfirmed"]}
    assert between and set(unconfirmed) == between
    assert all("lies after zero-filled bytes" in item["why"] and item["included"] is include
               for item in unconfirmed.values())
    assert (between <= manifest_keys(doc, "kept")) is include
    check_keras(run, out, doc, damaged & manifest_keys(doc, "lost"), entries)


def test_orphan_from_a_registered_layout_when_no_sibling_survives(keras_run, run_copy, tmp_path):
    from pipeline.cli import main as cli_main

    run = run_copy(keras_run)
    registry = str(tmp_path / "registry" / "architectures.yaml")
    assert cli_main(["register", "net", "--from-checkpoint", run.prefixes[1], "--registry", registry]) == 0
    for prefix in run.prefixes[:2]:
        for name in (prefix + ".index", data_path(prefix)):
            os.remove(name)
    end = offset_of(run.latest, TRAINED) + 1000
    damaged = keys_touching(run.latest, 0, end)
    entries = orphan(run.latest)
    truncate(data_path(run.latest), end)
    from pipeline.builders import resolve_registry

    out = str(tmp_path / "out" / "ckpt-3")
    plan, doc = salvage(run.latest, out, registry_layouts=resolve_registry(registry))
    assert plan.source == "registered `net`"
    assert ("keys and order as registered `net` holds them: the object graph that orders them did not arrive"
            in doc["cannot_check"])
    assert doc["object_graph"]["from"] == "registered `net`'s, whose keys equal the layout's"
    check_keras(run, out, doc, damaged, entries)


def test_tf1_orphan_with_a_shard_cut_short(tf1_run, run_copy, tmp_path):
    run = run_copy(tf1_run)
    orphan(run.latest)
    truncate(data_path(run.latest, 0, 3), 100_000)   # inside dense/kernel
    out = str(tmp_path / "out" / "model.ckpt-200")
    plan, doc = salvage(run.latest, out)
    assert plan.source == "sibling model.ckpt-100"
    assert manifest_keys(doc, "lost") == {"dense/kernel"}
    states = {(item["key"], str(item["slice"])): item["state"] for item in doc["kept"]}
    assert states[("logits/kernel", "None")] == PROVEN                  # unchanged since step 100
    assert states[("embedding", "[[667, 667], [0, 64]]")] == PLACED     # changed since: placed, not proven
    assert "global_step = 200, the step in the name" in doc["checks"]
    # Nothing in shard 0 verifies or counts steps (global_step is in shard 2): the values anchor the layout.
    assert any(line.startswith("shard 0 was cut short; dense/bias's values correlate element by element with sibling "
                               "model.ckpt-100's (r = ") for line in doc["checks"])
    names = doc["restore"]["variables"]
    assert sorted(names) == ["dense/bias", "embedding/part_0", "embedding/part_1", "embedding/part_2", "global_step",
                             "logits/kernel"]
    check_tf1(run, out, names, lost={"dense/kernel"})


def test_tf1_a_cut_shard_is_anchored_by_its_step_counter(tf1_run, run_copy, tmp_path):
    """Shard 2 holds global_step, then logits/kernel; cut inside logits/kernel, only the counter arrived whole.
    It changed since the sibling (100 -> 200), so no CRC proves it, but it holds the step in the name."""
    run = run_copy(tf1_run)
    orphan(run.latest)
    truncate(data_path(run.latest, 2, 3), 100)
    out = str(tmp_path / "out" / "model.ckpt-200")
    _, doc = salvage(run.latest, out)
    assert "shard 2 was cut short; its global_step holds 200, the step in the name: the layout is anchored to its " \
           "bytes" in doc["checks"]
    assert manifest_keys(doc, "lost") == {"logits/kernel"}
    assert {item["key"]: item["state"] for item in doc["kept"]}["global_step"] == PLACED
    names = doc["restore"]["variables"]
    assert "global_step" in names
    check_tf1(run, out, names, lost={"logits/kernel"})


def test_tf1_a_cut_shard_of_other_values_is_unconfirmed_and_the_anchored_shards_kept(tf1_run, run_copy, tmp_path):
    """Shard 0 holds another run's values (finite floats, the right length) and is cut short: no tensor in it
    verifies, it holds no step counter, its values are unlike the sibling's, so nothing ties the layout to its
    bytes. The shards the layout tiles to their last byte are kept as before."""
    import numpy as np

    run = run_copy(tf1_run)
    orphan(run.latest)
    shard0 = data_path(run.latest, 0, 3)
    other = np.random.default_rng(11).standard_normal(100_000 // 4).astype(np.float32).tobytes()
    with open(shard0, "r+b") as f:
        f.write(other)
    truncate(shard0, 100_000)
    out = str(tmp_path / "out" / "model.ckpt-200")
    plan, doc = salvage(run.latest, out)
    unconfirmed = {item["key"]: item for item in doc["unconfirmed"]}
    assert set(unconfirmed) == {"dense/bias"} and not unconfirmed["dense/bias"]["included"]
    assert unconfirmed["dense/bias"]["why"].startswith("shard 0 was cut short and nothing in it ties sibling "
                                                       "model.ckpt-100's layout to its bytes")
    assert not any(line.startswith("shard 0 was cut short;") for line in doc["checks"])
    names = doc["restore"]["variables"]
    assert sorted(names) == ["embedding/part_0", "embedding/part_1", "embedding/part_2", "global_step",
                             "logits/kernel"]
    check_tf1(run, out, names, lost={"dense/kernel", "dense/bias"})


@pytest.mark.parametrize("name", ["random", "ckpt-3"])
def test_random_bytes_named_like_a_data_file_are_not_salvaged(keras_run, tmp_path, name):
    """4,096 random bytes under a data file's name, and a registered layout: its first tensors fit inside and
    most random float32 words are finite, but nothing ties the layout to the bytes (no reference CRC
    verifies, no counter holds the step in the name, no sibling to compare values with)."""
    import random

    from pipeline.builders import resolve_registry
    from pipeline.cli import main as cli_main

    registry = str(tmp_path / "registry" / "architectures.yaml")
    assert cli_main(["register", "net", "--from-checkpoint", keras_run.prefixes[1], "--registry", registry]) == 0
    decoy = tmp_path / "decoys" / name
    decoy.parent.mkdir()
    with open(data_path(str(decoy)), "wb") as f:
        f.write(random.Random(7).randbytes(4096))
    fs, path = storage.split_prefix(str(decoy))
    for include in (False, True):
        with pytest.raises(Refused) as refused:
            plan_salvage(fs, path, registry_layouts=resolve_registry(registry), include_unconfirmed=include)
        reason = refused.value.reason
        assert reason.startswith("nothing provable: none of its 17 tensors is proven by a reference CRC or placed")
        assert "unconfirmed); first unconfirmed: " in reason
        if name == "random":
            assert ": shard 0 was cut short and nothing in it ties registered `net`'s layout to its bytes" in reason
        else:   # the name has a step, and the random counter contradicts it
            assert "first unconfirmed: save_counter/.ATTRIBUTES/VARIABLE_VALUE int64[]: save_counter = " in reason
            assert " but the name says 3" in reason
        assert refused.value.bytes_read == 4096
    assert os.listdir(decoy.parent) == [os.path.basename(data_path(str(decoy)))]


@pytest.mark.parametrize("index", ["kept", "lost"])
def test_tf1_partitioned_variable_cut_in_its_middle_part_keeps_the_first_part(tf1_run, run_copy, tmp_path, index):
    """Each part of a partitioned TF1 variable is a variable of its own: the salvaged index lists the parts
    that survived under the full entry, and the Saver restores those."""
    run = run_copy(tf1_run)
    if index == "lost":
        orphan(run.latest)
    truncate(data_path(run.latest, 1, 3), 200_000)   # the embedding's shard, inside its second part
    out = str(tmp_path / "out" / "model.ckpt-200")
    _, doc = salvage(run.latest, out)
    assert [(item["key"], item["slice"]) for item in doc["lost"]] == [
        ("embedding", [[667, 667], [0, 64]]), ("embedding", [[1334, 666], [0, 64]])]
    names = doc["restore"]["variables"]
    assert sorted(names) == ["dense/bias", "dense/kernel", "embedding/part_0", "global_step", "logits/kernel"]
    check_tf1(run, out, names, lost={"embedding/part_1", "embedding/part_2"})


def test_orphan_sharded_save_with_a_shard_deleted(keras_sharded_run, run_copy, tmp_path):
    run = run_copy(keras_sharded_run)
    shards = read_index(open(run.latest + ".index", "rb").read()).header.num_shards
    damaged = keys_touching(run.latest, 1, 0)
    entries = orphan(run.latest)
    os.remove(data_path(run.latest, 1, shards))
    out = str(tmp_path / "out" / "ckpt-2")
    plan, doc = salvage(run.latest, out)
    assert plan.source == "sibling ckpt-1"
    assert doc["object_graph"]["from"] == "the checkpoint's own (it arrived whole at the end of its data)"
    assert f"shard 1 ({data_path(run.latest, 1, shards)}) is missing: the tensors it held are lost" in plan.cannot_check
    check_keras(run, out, doc, damaged, entries)


# ---- refusals: nothing is written ---------------------------------------------------------------

def test_nothing_provable_is_refused(keras_run, run_copy, tmp_path):
    run = run_copy(keras_run)
    truncate(data_path(run.latest), 4)
    fs, path = storage.split_prefix(run.latest)
    with pytest.raises(Refused, match="nothing provable: none of its 17 tensors is proven by a reference CRC or "
                                      r"placed inside the data that arrived \(17 lost\); first lost: save_counter"):
        plan_salvage(fs, path)


def test_an_orphan_no_source_describes_is_refused(keras_run, run_copy):
    run = run_copy(keras_run)
    for prefix in run.prefixes[:2]:
        os.remove(prefix + ".index")
    orphan(run.latest)
    truncate(data_path(run.latest), 300_000)
    fs, path = storage.split_prefix(run.latest)
    with pytest.raises(Refused) as refused:
        plan_salvage(fs, path)
    assert refused.value.reason == NO_SOURCE


def test_a_damaged_object_graph_is_refused_index_kept(keras_run, run_copy):
    run = run_copy(keras_run)
    graph = offset_of(run.latest, OBJECT_GRAPH_KEY)
    with open(data_path(run.latest), "r+b") as f:
        f.seek(graph + 100)
        byte = f.read(1)
        f.seek(graph + 100)
        f.write(bytes([byte[0] ^ 0x01]))
    fs, path = storage.split_prefix(run.latest)
    with pytest.raises(Refused, match="the object graph is damaged: its bytes do not match the CRC in the index"):
        plan_salvage(fs, path)


def test_a_damaged_object_graph_is_refused_index_lost(keras_run, run_copy):
    """A child renamed inside the graph (its keys still fit): the sibling's graph says it is damaged."""
    run = run_copy(keras_run)
    orphan(run.latest)
    with open(data_path(run.latest), "r+b") as f:
        data = f.read()
        at = data.rindex(b"\x12\x0csave_counter")
        f.seek(at + 2 + len("save_counte"))
        f.write(b"s")
    fs, path = storage.split_prefix(run.latest)
    with pytest.raises(Refused, match="the object graph is damaged: the object graph differs from the one sibling "
                                      "ckpt-2 holds"):
        plan_salvage(fs, path)


def test_an_undecodable_object_graph_is_refused_index_lost(keras_run, run_copy):
    run = run_copy(keras_run)
    graph = offset_of(run.latest, OBJECT_GRAPH_KEY)
    orphan(run.latest)
    zero_bytes(data_path(run.latest), graph + 600, 64)
    fs, path = storage.split_prefix(run.latest)
    with pytest.raises(Refused, match="the object graph is damaged: sibling ckpt-2 puts the object graph at the end "
                                      "of the data .* but those bytes do not read as one"):
        plan_salvage(fs, path)


def test_sources_that_disagree_are_refused_naming_the_salvage_that_chooses_each(tmp_path, monkeypatch):
    """A sibling of another model ([16, 8]) and the registered model ([8, 16]) both place the data that
    arrived: the data holds sizes, not shapes, so nothing is salvaged until a person chooses. The
    commands name the registry in use, and the one that chooses it works from another directory."""
    import tensorflow as tf

    from pipeline.builders import resolve_registry
    from pipeline.cli import main as cli_main

    def module(shape, seed):
        root = tf.Module()
        root.w = tf.Variable(tf.random.stateless_normal(shape, seed=[seed, 0]))
        root.b = tf.Variable(tf.random.stateless_normal([64], seed=[seed, 1]))
        return tf.train.Checkpoint(model=root)

    run, healthy = tmp_path / "run", tmp_path / "a"
    module((16, 8), 1).write(str(run / "ckpt-1"))
    prefix = module((8, 16), 2).write(str(run / "ckpt-2"))
    module((8, 16), 3).write(str(healthy / "ckpt-2"))
    registry = str(tmp_path / "registry.yaml")
    assert cli_main(["register", "model_a", "--from-checkpoint", str(healthy / "ckpt-2"), "--registry", registry]) == 0
    orphan(prefix)
    truncate(data_path(prefix), 600)   # inside b: the object graph is lost, w arrived
    fs, path = storage.split_prefix(prefix)
    out = str(tmp_path / "new" / "ckpt-2")
    with pytest.raises(Refused) as refused:
        plan_salvage(fs, path, registry_layouts=resolve_registry(registry), output_args=f"--output {out}",
                     registry_path=registry)
    reason = refused.value.reason
    assert reason.startswith("sources disagree: sibling ckpt-1 and registered `model_a` both fit these bytes")
    chooses_registry = f"ckpt-rescue salvage {prefix} --output {out} --registry {registry} --arch model_a"
    assert (f"salvage with `ckpt-rescue salvage {prefix} --output {out} --template {run / 'ckpt-1'}` or "
            f"`{chooses_registry}`") in reason
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli_main(chooses_registry.split()[1:]) == 0
    assert read_manifest(out)["layout"] == "registered `model_a`"


@pytest.mark.parametrize("trained", [False, True])
def test_a_tensor_of_zeros_that_verifies_does_not_anchor_a_cut_shard(tmp_path, trained):
    """`a` is all zeros in every save, so a sibling's CRC verifies it wherever zeros lie: it says nothing about
    where the layout puts the bytes. `b` changed since: re-drawn (another run's values, say) it is
    unconfirmed; nudged, as training does, its values correlate with the sibling's and anchor the shard."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(3)
    first = rng.standard_normal((16, 16)).astype(np.float32)
    later = first + 0.05 * rng.standard_normal((16, 16)).astype(np.float32) if trained else \
        rng.standard_normal((16, 16)).astype(np.float32)

    def save(b, name):
        root = tf.Module()
        root.a, root.b = tf.Variable(tf.zeros([64])), tf.Variable(b)
        root.c = tf.Variable(rng.standard_normal((64, 64)).astype(np.float32))
        return tf.train.Checkpoint(model=root).write(str(tmp_path / "run" / name))

    save(first, "ckpt-1")
    prefix = save(later, "ckpt-2")
    end = offset_of(prefix, "model/c/.ATTRIBUTES/VARIABLE_VALUE") + 100
    orphan(prefix)
    truncate(data_path(prefix), end)
    fs, path = storage.split_prefix(prefix)
    plan = plan_salvage(fs, path)
    states = {t.spec.key.split("/")[1]: t.state for t in plan.tensors}
    assert states == {"a": PROVEN, "b": PLACED if trained else UNCONFIRMED, "c": "lost"}
    anchors = [line for line in plan.checks if line.startswith("shard 0 was cut short;")]
    if trained:
        assert anchors[0].startswith("shard 0 was cut short; model/b/.ATTRIBUTES/VARIABLE_VALUE's values correlate "
                                     "element by element with sibling ckpt-1's"), plan.checks
    else:
        assert anchors == [] and plan.tensors[1].why.startswith(
            "shard 0 was cut short and nothing in it ties sibling ckpt-1's layout to its bytes")
