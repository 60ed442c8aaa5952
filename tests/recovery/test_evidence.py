"""Evidence: a rebuilt index says what confirmed it and what the data cannot tell, and damage that a
reference can see (object graph, step counter, shapes two sources disagree on) is refused.

Every checkpoint here is written by TensorFlow during the session; damage is a flipped bit or a
zeroed counter in a copy, never a mocked check.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
from source_helpers import assert_rebuilt_identically, context, local_source, orphan, tensor_values

from pipeline.cli import main
from recovery.evidence import Evidence, compare_object_graphs
from recovery.rebuild import REBUILT, UNRECOVERABLE, rebuild
from recovery.registry import load_registry
from recovery.sources.part_index import part_index_layouts
from tfbundle import (
    OBJECT_GRAPH_KEY,
    data_filename,
    index_filename,
    locate_object_graph,
    parse_object_graph,
    read_index,
)

pytestmark = pytest.mark.tf
SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def _tf():
    from pipeline.tensorflow_env import import_tensorflow

    return import_tensorflow()


def _data(prefix: str) -> str:
    return data_filename(prefix, 0, 1)


def _located_graph(prefix: str):
    with local_source(_data(prefix)) as source:
        return locate_object_graph(source)


def _graph_payload_start(prefix: str) -> tuple[int, bytes]:
    """(file offset of the object graph's payload, the payload), read from the data file's end."""
    located = _located_graph(prefix)
    return os.path.getsize(_data(prefix)) - len(located.payload), located.payload


def _flip(path: str, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def _flip_in_graph(prefix: str, needle: bytes, skip: int) -> None:
    """Flip the low bit of the byte `skip` bytes into the first occurrence of `needle` in the graph,
    and prove the damaged graph still parses with the same keys: the case only a reference catches."""
    start, payload = _graph_payload_start(prefix)
    where = payload.index(needle)
    _flip(_data(prefix), start + where + skip)
    damaged = _located_graph(prefix)
    assert damaged is not None, "the flip must leave a graph TensorFlow's framing accepts"
    assert damaged.graph.checkpoint_keys() == parse_object_graph(payload).checkpoint_keys()
    assert damaged.payload != payload


def _register(registry_dir, name: str, prefix: str) -> dict:
    registry = str(registry_dir / "architectures.yaml")
    assert main(["register", name, "--from-checkpoint", prefix, "--registry", registry]) == 0
    return load_registry(registry).layouts()


# --- 1. The object graph against every reference ---------------------------------------------------

FLIPS = {
    "variable name": (b"/iteration", 1),         # a full_name: adam/iteration -> adam/hteration
    "child name": (b"\x12\x09optimizer", 2),     # ObjectReference.local_name of the root's child
}


def _builder_layouts() -> dict:
    """The registry entry `adam: {builder: samples.models:keras3_adam}`, resolved as the launcher does."""
    from pipeline.builders import builder_layout

    return {"adam": builder_layout("samples.models:keras3_adam", ".", "adam")}


@pytest.mark.parametrize("flip", sorted(FLIPS))
@pytest.mark.parametrize("reference", ["sibling", "template", "registered", "builder"])
def test_a_flipped_bit_in_the_object_graph_is_refused_showing_where(family_copy, tmp_path, reference, flip):
    family = family_copy("keras3_adam")
    layouts = {"registered": lambda: _register(tmp_path, "adam", family.siblings[-1]),
               "builder": _builder_layouts}.get(reference, lambda: None)()
    orphan(family.prefix)
    before = open(_data(family.prefix), "rb").read()
    _flip_in_graph(family.prefix, *FLIPS[flip])
    options = {"sibling": {}, "template": {"template": family.siblings[-1]},
               "registered": {"registry_layouts": layouts, "arch": "adam"},
               "builder": {"registry_layouts": layouts, "arch": "adam"}}[reference]
    outcome = rebuild(context(family.prefix, **options))
    assert outcome.status == UNRECOVERABLE
    assert "object graph differs from the one" in outcome.reason
    shown = {"variable name": "variable name", "child name": "child `optimizer`"}[flip]
    assert shown in outcome.reason, outcome.reason
    assert outcome.index_bytes is None and not os.path.exists(index_filename(family.prefix))
    assert outcome.evidence is not None and outcome.evidence.confirmed   # the fit itself was fine
    assert len(open(_data(family.prefix), "rb").read()) == len(before)


@pytest.mark.parametrize("reference", ["sibling", "template", "registered"])
def test_an_intact_object_graph_is_confirmed_by_the_reference(family_copy, tmp_path, reference):
    family = family_copy("keras3_adam")
    layouts = _register(tmp_path, "adam", family.siblings[-1]) if reference == "registered" else None
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    options = {"sibling": {}, "template": {"template": family.siblings[-1]},
               "registered": {"registry_layouts": layouts, "arch": "adam"}}[reference]
    outcome = assert_rebuilt_identically(context(family.prefix, **options), None, original, values)
    assert any(c.startswith("object graph identical to the one") for c in outcome.evidence.confirmed)
    assert OBJECT_GRAPH_KEY in outcome.evidence.matched_keys


def test_a_builders_object_graph_confirms_the_orphans_and_survives_the_trip_to_workers(family_copy):
    """Issue 14.5: a builder entry alone. TensorFlow wrote the model's graph when the builder was resolved
    (another process's names: `adam_1`); the orphan's equals it but for what TensorFlow makes differ."""
    from recovery.layout import Layout

    family = family_copy("keras3_adam")
    layouts = _builder_layouts()
    shipped = Layout.from_json(layouts["adam"].to_json(), kind="registry")      # registry-layouts.json
    assert shipped.graph_declared and shipped.reference_graph == layouts["adam"].reference_graph
    assert not shipped.reference_crcs          # fresh values of a built model confirm nothing
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    outcome = assert_rebuilt_identically(context(family.prefix, registry_layouts={"adam": shipped}, arch="adam"),
                                         None, original, values)
    [said] = [c for c in outcome.checks if c.startswith("object graph equals the one the builder of")]
    assert "registered `adam`" in said and "uniquify" in said
    assert not any("no source holds a CRC or a copy of this graph" in c for c in outcome.evidence.cannot_confirm)


def _strip_layout_file(registry_dir, name: str, fields: tuple) -> dict:
    """Remove what `register` now writes, as a layout file from before would lack it; reload the registry."""
    path = registry_dir / "layouts" / f"{name}.json"
    doc = json.loads(path.read_text())
    assert "object_graph_payload" in doc and all("crc32c" in t and "size" in t for t in doc["tensors"])
    if "object_graph_payload" in fields:
        del doc["object_graph_payload"]
    for tensor in doc["tensors"] if "crc32c" in fields else ():
        del tensor["crc32c"], tensor["size"]
    path.write_text(json.dumps(doc))
    return load_registry(str(registry_dir / "architectures.yaml")).layouts()


def test_layout_files_without_references_still_load_and_rebuild(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    _register(tmp_path, "adam", family.siblings[-1])
    layouts = _strip_layout_file(tmp_path, "adam", ("object_graph_payload", "crc32c"))
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    outcome = assert_rebuilt_identically(context(family.prefix, registry_layouts=layouts, arch="adam"), None,
                                         original, values)
    assert outcome.evidence.reference_matched == 0
    assert any("the object graph's bytes: no source holds" in c for c in outcome.evidence.cannot_confirm)


def test_a_registered_graph_crc_without_its_bytes_still_refuses_a_flipped_graph(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    _register(tmp_path, "adam", family.siblings[-1])
    layouts = _strip_layout_file(tmp_path, "adam", ("object_graph_payload",))
    orphan(family.prefix)
    _flip_in_graph(family.prefix, *FLIPS["child name"])
    outcome = rebuild(context(family.prefix, registry_layouts=layouts, arch="adam"))
    assert outcome.status == UNRECOVERABLE
    reference = read_index(open(index_filename(family.siblings[-1]), "rb").read()).entries[OBJECT_GRAPH_KEY.encode()]
    assert (f"differs from the one registered `adam` holds ({reference.size} bytes, CRC {reference.crc32c:#010x})"
            in outcome.reason)


@pytest.mark.parametrize("reference", ["sibling", "template"])
def test_an_object_graph_a_flip_makes_unparseable_is_refused(family_copy, reference):
    """A flipped bit in the graph's first tag: the search from the end finds no graph at all, yet the
    TF2 layout puts one there, so the bytes are damage (today's fuzz finding), not a TF1 checkpoint."""
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    start, payload = _graph_payload_start(family.prefix)
    assert payload[0] == 0x0a              # the tag of the graph's first node
    _flip(_data(family.prefix), start, bit=3)
    assert _located_graph(family.prefix) is None
    options = {"sibling": {}, "template": {"template": family.siblings[-1]}}[reference]
    outcome = rebuild(context(family.prefix, **options))
    assert outcome.status == UNRECOVERABLE
    assert "do not read as one" in outcome.reason, outcome.reason
    assert outcome.index_bytes is None and not os.path.exists(index_filename(family.prefix))


def test_a_tf1_layout_without_an_object_graph_is_not_asked_for_one(family_copy):
    """The legitimate side: TF1 data has no graph, and its rebuild does not look for one."""
    family = family_copy("tf1_saver")
    original = orphan(family.prefix)
    assert _located_graph(family.prefix) is None
    outcome = rebuild(context(family.prefix))
    assert outcome.status == REBUILT, outcome.reason
    assert outcome.index_bytes == original


def test_a_damaged_graph_without_a_parse_shows_the_byte(tmp_path):
    payload = b"\x0a\x04\x0a\x02\x08\x01"
    difference = compare_object_graphs(payload, payload[:-1] + b"\xff")
    assert not difference.legitimate and "payload byte 5" in difference.where


def test_variable_names_tensorflow_uniquified_in_another_process_are_accepted_and_said(tmp_path):
    """A second model built in one process gets `adam_1/...` names: the keys are equal, the graph bytes
    are not. That is the difference TensorFlow makes itself; it is accepted and named."""
    from samples.models import keras3_adam

    tf = _tf()
    first = tf.train.CheckpointManager(keras3_adam(), str(tmp_path / "first"), max_to_keep=2).save()
    second_root = keras3_adam()
    second = tf.train.CheckpointManager(second_root, str(tmp_path / "second"), max_to_keep=2).save()
    values = tensor_values(second)
    original = orphan(second)
    outcome = assert_rebuilt_identically(context(second, template=first), None, original, values)
    said = [c for c in outcome.evidence.confirmed if "TensorFlow itself makes them differ" in c]
    assert said and "uniquify" in said[0]
    assert any("variable names" in c for c in outcome.evidence.cannot_confirm)

    # One flipped digit renames one variable alone (adam_2/iteration -> adam_3/iteration): not TensorFlow's doing.
    orphan(second)
    start, payload = _graph_payload_start(second)
    digit = re.search(rb"_\d+/iteration", payload).start() + 1
    _flip(_data(second), start + digit)
    outcome = rebuild(context(second, template=first))
    assert outcome.status == UNRECOVERABLE
    assert "while other names rename" in outcome.reason and "iteration" in outcome.reason


# --- 2. Step counters -----------------------------------------------------------------------------

def _tf1_run(directory: str, name_step: int, global_step: int) -> str:
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.get_variable("dense/kernel", [4, 3], initializer=v1.random_normal_initializer(seed=1))
        step = v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(step.assign(global_step))
            return saver.save(session, os.path.join(directory, "model.ckpt"), global_step=name_step)


def test_tf1_global_step_that_contradicts_the_name_is_refused(tmp_path):
    prefix = _tf1_run(str(tmp_path), name_step=1234, global_step=0)
    orphan(prefix)
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "global_step = 0 but the name says 1234" in outcome.reason
    assert "TF1 graph model.ckpt-1234.meta" in outcome.reason
    assert not os.path.exists(index_filename(prefix))


def test_tf1_global_step_that_matches_the_name_is_rebuilt(tmp_path):
    prefix = _tf1_run(str(tmp_path), name_step=1234, global_step=1234)
    values = tensor_values(prefix)
    original = orphan(prefix)
    outcome = assert_rebuilt_identically(context(prefix), None, original, values)
    assert "global_step = 1234, the step in the name" in outcome.evidence.confirmed


def _module(seed: int, shape=(8, 16)):
    tf = _tf()
    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(seed).standard_normal(shape).astype("float32"))
    module.frozen = tf.Variable(np.arange(6, dtype="float32"), trainable=False)
    return module


def test_an_async_save_with_save_counter_0_is_accepted_with_the_note(tmp_path):
    tf = _tf()
    module = _module(1)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=module), str(tmp_path), max_to_keep=5)
    options = tf.train.CheckpointOptions(experimental_enable_async_checkpoint=True)
    for _ in range(3):
        module.w.assign_add(tf.ones_like(module.w))
        prefix = manager.save(options=options)
    manager.sync()
    assert prefix.endswith("ckpt-3")
    values = tensor_values(prefix)
    assert values[SAVE_COUNTER] == 0    # what TensorFlow 2.21 stores for an async save
    original = orphan(prefix)
    outcome = assert_rebuilt_identically(context(prefix), None, original, values)
    notes = [c for c in outcome.checks if c.startswith("note: save_counter = 0")]
    assert notes and "experimental_enable_async_checkpoint" in notes[0]
    assert any("asynchronous save" in c for c in outcome.evidence.cannot_confirm)


def test_a_zeroed_save_counter_in_a_run_that_names_by_it_is_refused(family_copy):
    """The same 0 where the run's other checkpoints hold their own step is damage, not an async save."""
    family = family_copy("keras3_adam")
    index = read_index(open(index_filename(family.prefix), "rb").read())
    entry = index.entries[SAVE_COUNTER.encode()]
    orphan(family.prefix)
    with open(_data(family.prefix), "r+b") as f:
        f.seek(entry.offset)
        f.write(bytes(entry.size))
    outcome = rebuild(context(family.prefix))
    assert outcome.status == UNRECOVERABLE
    assert "save_counter is 0 but the name says 3" in outcome.reason and "ckpt-2" in outcome.reason


def test_a_run_named_by_checkpoint_number_is_rebuilt(tmp_path):
    tf = _tf()
    module = _module(2)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=module), str(tmp_path), max_to_keep=5)
    for step in (1000, 2000):
        module.w.assign_add(tf.ones_like(module.w))
        prefix = manager.save(checkpoint_number=step)
    values = tensor_values(prefix)
    assert values[SAVE_COUNTER] == 2
    original = orphan(prefix)
    outcome = assert_rebuilt_identically(context(prefix), None, original, values)
    assert any("checkpoint_number=" in c for c in outcome.checks)


@pytest.mark.parametrize("counter", ["named by checkpoint_number", "damaged"])
def test_template_and_a_layout_registered_from_it_agree(tmp_path, family_copy, counter):
    """Issue 9: `--template P` and a layout registered from P give one verdict, whatever the counter."""
    tf = _tf()
    from samples.models import keras3_adam

    family = family_copy("keras3_adam")
    template = family.siblings[-1]
    layouts = _register(tmp_path, "adam", template)
    if counter == "named by checkpoint_number":
        # Another run of the model, in its own directory, names by step: save_counter 1 in ckpt-5000.
        prefix = tf.train.CheckpointManager(keras3_adam(), str(tmp_path / "run"), max_to_keep=2).save(
            checkpoint_number=5000)
        expected = REBUILT
    else:
        # The run's own ckpt-3 with its counter overwritten by 7, beside ckpt-1 and ckpt-2 that hold theirs.
        prefix = family.prefix
        entry = read_index(open(index_filename(prefix), "rb").read()).entries[SAVE_COUNTER.encode()]
        with open(_data(prefix), "r+b") as f:
            f.seek(entry.offset)
            f.write((7).to_bytes(8, "little"))
        expected = UNRECOVERABLE
    original = orphan(prefix)
    outcomes = [rebuild(context(prefix, template=template)),
                rebuild(context(prefix, registry_layouts=layouts, arch="adam"))]
    assert [o.status for o in outcomes] == [expected, expected], [o.reason for o in outcomes]
    if expected == REBUILT:
        assert outcomes[0].index_bytes == outcomes[1].index_bytes == original
    else:
        assert all("save_counter = 7 but the name says 3" in o.reason for o in outcomes)


# --- 3. Reference CRCs ----------------------------------------------------------------------------

def test_frozen_and_unchanged_tensors_are_confirmed_by_a_reference_crc(tmp_path):
    tf = _tf()
    module = _module(3)
    ckpt = tf.train.Checkpoint(model=module)
    ckpt.save(str(tmp_path / "ckpt"))
    module.w.assign_add(tf.ones_like(module.w))     # trained; `frozen` is not
    prefix = ckpt.save(str(tmp_path / "ckpt"))
    values = tensor_values(prefix)
    original = orphan(prefix)
    outcome = assert_rebuilt_identically(context(prefix), None, original, values)
    evidence = outcome.evidence
    assert isinstance(evidence, Evidence)
    assert set(evidence.matched_keys) == {"model/frozen/.ATTRIBUTES/VARIABLE_VALUE", OBJECT_GRAPH_KEY}
    assert (evidence.reference_matched, evidence.reference_total) == (2, 4)
    assert evidence.summary() == "2 of 4 tensors confirmed by a reference CRC"
    assert any(c.startswith("2 of 4 tensors confirmed by a reference CRC (sibling ckpt-1)") for c in evidence.confirmed)
    assert any("2 tensor(s) no reference CRC covers" in c for c in evidence.cannot_confirm)


def test_a_part_index_confirms_every_tensor_and_refuses_one_flipped_bit(family_copy):
    family = family_copy("keras3_adam")
    original = orphan(family.prefix)
    os.makedirs(family.prefix + "_temp")
    with open(os.path.join(family.prefix + "_temp", "part-00000-of-00001.index"), "wb") as f:
        f.write(original)
    outcome = rebuild(context(family.prefix), [part_index_layouts])
    assert outcome.status == REBUILT and outcome.index_bytes == original
    total = len(read_index(original).entries)
    assert outcome.evidence.reference_matched == outcome.evidence.reference_total == total
    assert not any("shapes taken from" in c for c in outcome.evidence.cannot_confirm)

    entry = read_index(original).entries[b"optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"]
    _flip(_data(family.prefix), entry.offset + 5, bit=3)     # a float that stays finite: only the CRC sees it
    outcome = rebuild(context(family.prefix), [part_index_layouts])
    assert outcome.status == UNRECOVERABLE
    assert "do not match the CRC part index" in outcome.reason and "_trainable_variables/0/" in outcome.reason


def test_a_savedmodel_is_confirmed_whole_by_its_fingerprint(family_copy):
    family = family_copy("savedmodel")
    values = tensor_values(family.prefix)
    original = orphan(family.prefix)
    outcome = assert_rebuilt_identically(context(family.prefix), None, original, values)
    evidence = outcome.evidence
    assert evidence.reference_matched == evidence.reference_total == len(read_index(original).entries)
    assert any("fingerprint.pb" in c for c in evidence.confirmed)


# --- 5. Shape-ambiguous sources -------------------------------------------------------------------

def _transposed_run(root) -> tuple[str, str]:
    """ckpt-1 from model B (w [16,8]) and ckpt-2 from model A (w [8,16]): same keys, dtypes and sizes;
    plus a healthy copy of A elsewhere to register. Returns (orphan prefix, A's healthy copy)."""
    tf = _tf()
    run = os.path.join(root, "run")
    tf.train.Checkpoint(model=_module(4, (16, 8))).write(os.path.join(run, "ckpt-1"))
    prefix = tf.train.Checkpoint(model=_module(5, (8, 16))).write(os.path.join(run, "ckpt-2"))
    healthy = os.path.join(root, "a", "ckpt-2")
    os.makedirs(os.path.dirname(healthy))
    for name in os.listdir(run):
        if name.startswith("ckpt-2."):
            shutil.copy(os.path.join(run, name), os.path.join(root, "a", name))
    return prefix, healthy


def test_a_transposed_sibling_and_a_registry_that_knows_the_shape_are_refused_naming_both(tmp_path):
    prefix, healthy = _transposed_run(str(tmp_path))
    layouts = _register(tmp_path, "model_a", healthy)
    original = orphan(prefix)
    outcome = rebuild(context(prefix, registry_layouts=layouts))
    assert outcome.status == UNRECOVERABLE
    assert "sources disagree" in outcome.reason
    assert "sibling ckpt-1" in outcome.reason and "registered `model_a`" in outcome.reason
    assert "model/w/.ATTRIBUTES/VARIABLE_VALUE float32[16, 8]" in outcome.reason
    assert "float32[8, 16]" in outcome.reason
    assert not os.path.exists(index_filename(prefix))
    sibling = os.path.join(os.path.dirname(prefix), "ckpt-1")
    assert (f"rebuild with `ckpt-rescue rebuild {prefix} --template {sibling}` or "
            f"`ckpt-rescue rebuild {prefix} --registry FILE --arch model_a`") in outcome.reason

    # The hint works when followed: the registered model's shapes give TensorFlow's own index.
    chosen = rebuild(context(prefix, registry_layouts=layouts, arch="model_a"))
    assert chosen.status == REBUILT and chosen.index_bytes == original


def _tf1_model(directory: str, step: int, shape: tuple) -> str:
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.get_variable("w", list(shape), initializer=v1.random_normal_initializer(seed=step))
        global_step = v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(global_step.assign(step))
            return saver.save(session, os.path.join(directory, "model.ckpt"), global_step=step)


def test_a_transposed_tf1_sibling_and_the_orphans_own_meta_graph_are_refused_naming_both(tmp_path):
    """TF1: model.ckpt-100 from another graph (w [16,8]) beside model.ckpt-200 whose .meta says [8,16]."""
    _tf1_model(str(tmp_path), 100, (16, 8))
    prefix = _tf1_model(str(tmp_path), 200, (8, 16))
    orphan(prefix)
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "sibling model.ckpt-100" in outcome.reason and "TF1 graph model.ckpt-200.meta" in outcome.reason
    assert "w float32[16, 8]" in outcome.reason and "w float32[8, 16]" in outcome.reason

    os.remove(prefix + ".meta")          # the sibling alone, another graph's values: refused (issue 14.2)
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "sibling model.ckpt-100's values are unlike this checkpoint's" in outcome.reason
    assert "w float32[16, 8]" in outcome.reason and outcome.evidence.unconfirmed_layout == ["w"]
    assert any("cannot tell [16, 8] from [8, 16]" in c for c in outcome.evidence.cannot_confirm)


def test_a_registry_that_agrees_with_the_sibling_confirms_the_shapes(tmp_path):
    prefix, healthy = _transposed_run(str(tmp_path))
    layouts = _register(tmp_path, "model_a", healthy)
    values = tensor_values(prefix)
    original = orphan(prefix)
    os.remove(index_filename(os.path.join(os.path.dirname(prefix), "ckpt-1")))   # B's index gone: no sibling
    outcome = assert_rebuilt_identically(context(prefix, registry_layouts=layouts), None, original, values)
    assert any("shapes as the model declares them (registered `model_a`)" in c for c in outcome.evidence.confirmed)


def test_a_transposed_sibling_of_another_model_alone_is_refused_naming_the_tensors(tmp_path, capsys):
    """Issue 14.2: the sibling is another model's (its values unrelated): the data cannot tell the shapes, and
    nothing shows the sibling to be of this run, so the layout it alone gives is refused, naming the tensors."""
    prefix, _ = _transposed_run(str(tmp_path))
    orphan(prefix)
    outcome = rebuild(context(prefix))
    assert outcome.status == UNRECOVERABLE
    assert "sibling ckpt-1's values are unlike this checkpoint's" in outcome.reason
    assert "model/w/.ATTRIBUTES/VARIABLE_VALUE float32[16, 8]" in outcome.reason
    ambiguous = [c for c in outcome.evidence.cannot_confirm if "cannot tell" in c]
    assert ambiguous and "shapes taken from sibling ckpt-1" in ambiguous[0] and "[16, 8] from [8, 16]" in ambiguous[0]

    # The CLI says the same, and writes nothing.
    assert main(["rebuild", prefix, "--no-tf-check", "--output", str(tmp_path / "out.index")]) == 1
    err = capsys.readouterr().err
    assert "values are unlike this checkpoint's" in err and not (tmp_path / "out.index").exists()
    assert "!!  shapes taken from sibling ckpt-1 alone" in err


def test_cli_lists_the_evidence_of_a_rebuild_and_of_a_refusal(family_copy, capsys):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    _flip_in_graph(family.prefix, *FLIPS["variable name"])
    assert main(["rebuild", family.prefix, "--no-tf-check"]) == 1
    err = capsys.readouterr().err
    assert "object graph differs from the one sibling ckpt-2 holds" in err
    assert "  ok  sibling ckpt-2: " in err      # what did fit is still said

    family = family_copy("keras3_adam")
    orphan(family.prefix)
    assert main(["rebuild", family.prefix]) == 0
    out = capsys.readouterr().out
    assert "object graph identical to the one sibling ckpt-2 and sibling ckpt-1 hold" in out
    assert "evidence: " in out and " of " in out and "confirmed by a reference CRC" in out
    assert "cannot confirm: " in out


# --- 4. Evidence in the audit's records -----------------------------------------------------------

@pytest.mark.slow
def test_audit_records_carry_the_evidence_of_rebuilds_and_refusals(family_copy, tmp_path):
    from recovery.report.readback import read_records

    intact, damaged = family_copy("keras3_adam"), family_copy("mixed_dtypes")
    root = os.path.dirname(os.path.dirname(intact.prefix))
    assert root == os.path.dirname(os.path.dirname(damaged.prefix))
    orphan(intact.prefix)
    orphan(damaged.prefix)
    start, _ = _graph_payload_start(damaged.prefix)
    _flip(_data(damaged.prefix), start + _located_graph(damaged.prefix).payload.index(b"\x12\x05words") + 3)
    report = str(tmp_path) + "-report"      # outside the audited root
    assert main(["audit", root, "--min-age", "0", "--report-dir", report]) == 1
    records = {r.prefix: r for r in read_records(report)}

    rebuilt = records[intact.prefix]
    assert rebuilt.status == "rebuilt"
    assert rebuilt.evidence["reference_total"] == 16 and rebuilt.evidence["reference_matched"] >= 2
    assert OBJECT_GRAPH_KEY in rebuilt.evidence["matched_keys"]
    assert any("cannot tell" in c for c in rebuilt.evidence["cannot_confirm"])
    assert Evidence(**rebuilt.evidence).summary() in rebuilt.evidence["confirmed"][-1]

    refused = records[damaged.prefix]
    assert refused.status == "unrecoverable" and "object graph differs" in refused.reason
    assert "child `words`" in refused.reason and "`wo" in refused.reason
    assert refused.evidence["confirmed"]          # the fit that did succeed is still said
    assert not os.path.exists(index_filename(damaged.prefix))
