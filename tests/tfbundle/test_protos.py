"""The project's own .proto files: TensorFlow's field numbers and wire types, their own names, and
decoding that turns a field with the wrong wire type into a FormatError naming the field."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_paths import REPO
from source_helpers import local_source

from recovery.protos import read_meta_graph, saved_model_pb2, saved_objects
from recovery.sources.savedmodel import savedmodel_layouts
from recovery.tasks import OrphanTask
from tfbundle import BundleHeader, FormatError, locate_object_graph, parse_object_graph, read_index
from tfbundle.protos import tensor_bundle_pb2, trackable_object_graph_pb2
from tfbundle.table import build_table, read_table
from tfbundle.varint import encode_varint

ROOT = str(REPO)
GENERATED = sorted(glob.glob(os.path.join(ROOT, "tfbundle", "protos", "*_pb2.py")) +
                   glob.glob(os.path.join(ROOT, "recovery", "protos", "*_pb2.py")))
PROTO_FILES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "*", "protos", "*.proto")))
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def tag(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def reencoded(message, field: str, wrong: bytes):
    """`message` with `field` cleared and `wrong` (a field with a wrong wire type) in its place,
    kept by the parser among the unknown fields and written back by SerializeToString()."""
    message.ClearField(field)
    message.MergeFromString(wrong)
    return message


# --- the generated modules ------------------------------------------------------------------------

def test_generated_modules_import_only_google_protobuf_and_each_other():
    assert len(GENERATED) == len(PROTO_FILES) == 4
    for path in GENERATED:
        imported = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        assert imported and all(m.startswith("google.protobuf") or m == "tfbundle.protos" for m in imported), path


def test_committed_modules_are_what_make_protos_generates(tmp_path):
    """The committed *_pb2.py are exactly protoc's output for the committed .proto files."""
    pytest.importorskip("grpc_tools")
    from importlib.metadata import version

    pinned = re.search(r"^GRPCIO_TOOLS := (\S+)$", open(os.path.join(ROOT, "Makefile")).read(), re.M)[1]
    if version("grpcio-tools") != pinned:
        pytest.skip(f"`make protos` uses grpcio-tools {pinned}; another protoc writes other headers")
    for path in PROTO_FILES:
        os.makedirs(tmp_path / os.path.dirname(path), exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), tmp_path / path)
    result = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--pyi_out=.",
                             *PROTO_FILES], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for path in PROTO_FILES:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            generated = path[: -len(".proto")] + suffix
            with open(tmp_path / generated) as fresh, open(os.path.join(ROOT, generated)) as committed:
                assert fresh.read() == committed.read(), f"{generated} is stale: run `make protos`"


IMPORT_BOTH = """
import sys
order = sys.argv[1].split(",")
for name in order:
    if name == "ours":
        from tfbundle.protos import tensor_bundle_pb2, trackable_object_graph_pb2
        from recovery.protos import checkpoint_state_pb2, saved_model_pb2
    else:
        from tensorflow.core.protobuf import tensor_bundle_pb2 as tf_bundle, saved_model_pb2 as tf_saved_model
        from tensorflow.core.protobuf import trackable_object_graph_pb2 as tf_graph
        from tensorflow.python.training import checkpoint_state_pb2 as tf_state
entry = tf_bundle.BundleEntryProto(dtype=1, offset=7, size=12, crc32c=99)
entry.shape.dim.add(size=3)
ours = tensor_bundle_pb2.BundleEntryProto.FromString(entry.SerializeToString())
assert (ours.dtype, ours.offset, ours.size, ours.crc32c, ours.shape.dim[0].size) == (1, 7, 12, 99, 3)
assert ours.DESCRIPTOR.full_name != entry.DESCRIPTOR.full_name
print("ok")
"""


@pytest.mark.tf
@pytest.mark.parametrize("order", ["ours,tensorflow", "tensorflow,ours"])
def test_tensorflow_and_our_modules_load_in_one_process(order):
    """Our descriptors have their own package and file names, so they never collide with TensorFlow's."""
    result = subprocess.run([sys.executable, "-c", IMPORT_BOTH, order], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


# Fields our files declare that the TensorFlow installed for the tests no longer has.
REMOVED_UPSTREAM = {"tensorflow.TrackableObjectGraph.TrackableObject.SerializedTensor.optional_restore"}
# Same wire format: our type may stand for TensorFlow's (an open enum as int32; text, or a message
# we do not decode, as bytes).
WIRE_EQUIVALENT = {("int32", "enum"), ("bytes", "string"), ("bytes", "message")}


def _our_messages():
    from recovery.protos import checkpoint_state_pb2

    for module in (tensor_bundle_pb2, trackable_object_graph_pb2, saved_model_pb2, checkpoint_state_pb2):
        stack = list(module.DESCRIPTOR.message_types_by_name.values())
        while stack:
            descriptor = stack.pop()
            stack.extend(descriptor.nested_types)
            yield descriptor


@pytest.mark.tf
def test_field_numbers_and_wire_types_are_tensorflows():
    """Every field we declare has TensorFlow's number, name, wire format, repetition and presence."""
    from google.protobuf import descriptor_pool
    from google.protobuf.descriptor import FieldDescriptor
    from tensorflow.core.framework import graph_pb2, tensor_pb2, variable_pb2  # noqa: F401
    from tensorflow.core.protobuf import (  # noqa: F401
        fingerprint_pb2,
        meta_graph_pb2,
        saver_pb2,
        tensor_bundle_pb2,
        trackable_object_graph_pb2,
    )
    from tensorflow.core.protobuf import saved_model_pb2 as tf_saved_model_pb2  # noqa: F401
    from tensorflow.python.training import checkpoint_state_pb2  # noqa: F401

    type_names = {v: k[len("TYPE_"):].lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}
    pool = descriptor_pool.Default()
    checked = 0
    for ours in _our_messages():
        assert ours.full_name.startswith(("ckpt_rescue.tfbundle.", "ckpt_rescue.recovery."))
        tf_name = "tensorflow." + ours.full_name.split(".", 2)[2]
        theirs = pool.FindMessageTypeByName(tf_name)
        for field in ours.fields:
            name = f"{tf_name}.{field.name}"
            if name in REMOVED_UPSTREAM:
                assert field.number not in theirs.fields_by_number
                continue
            tf_field = theirs.fields_by_name[field.name]
            assert field.number == tf_field.number, name
            ours_type, tf_type = type_names[field.type], type_names[tf_field.type]
            assert ours_type == tf_type or (ours_type, tf_type) in WIRE_EQUIVALENT, f"{name}: {ours_type} {tf_type}"
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                assert field.message_type.name == tf_field.message_type.name, name
            assert field.is_repeated == tf_field.is_repeated, name
            assert field.is_packed == tf_field.is_packed, name   # how a repeated scalar is written
            if not field.is_repeated:
                assert field.has_presence == tf_field.has_presence, name   # whether a zero is written
            checked += 1
    assert checked >= 60
    ours_versions = saved_model_pb2.SaverDef.CheckpointFormatVersion
    assert dict(ours_versions.items()) == dict(saver_pb2.SaverDef.CheckpointFormatVersion.items())


# --- wrong wire types in real TensorFlow files ----------------------------------------------------

def _damaged_index(index_bytes: bytes, damage) -> tuple[bytes, bytes]:
    """Re-encode the first entry with a nonzero offset via `damage(entry)`; return (key, new index)."""
    items, _ = read_table(index_bytes)
    for i, (key, value) in enumerate(items[1:], 1):
        entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
        if entry.offset and len(entry.shape.dim):
            items[i] = (key, damage(entry).SerializeToString())
            return key, build_table(items)
    raise AssertionError("no entry with an offset and a shape")


WIRE_TYPE_DAMAGE = {
    "offset as length-delimited": (lambda e: reencoded(e, "offset", tag(4, LENGTH) + b"\x02\x01\x02"),
                                   "BundleEntryProto.offset (number 4) is encoded as length-delimited; "
                                   "TensorFlow writes it as varint"),
    "crc32c as varint": (lambda e: reencoded(e, "crc32c", tag(6, VARINT) + encode_varint(e.crc32c)),
                         "BundleEntryProto.crc32c (number 6) is encoded as varint; TensorFlow writes it as fixed32"),
    "dim size as fixed64": (lambda e: reencoded(e.shape.dim[0], "size", tag(1, FIXED64) + bytes(8)) and e,
                            "TensorShapeProto.Dim.size (number 1) is encoded as fixed64"),
    "a field TensorFlow does not have": (lambda e: reencoded(e, "dtype", tag(9, VARINT) + b"\x01"),
                                         "BundleEntryProto has a field number 9 (varint)"),
}


@pytest.mark.tf
@pytest.mark.parametrize("damage", sorted(WIRE_TYPE_DAMAGE))
def test_a_wrong_wire_type_in_a_real_index_is_a_format_error_naming_the_field(pristine_family, damage):
    family = pristine_family("keras3_adam")
    with open(family.prefix + ".index", "rb") as f:
        original = f.read()
    assert len(read_index(original).entries) > 3     # the legitimate index reads
    reencode, words = WIRE_TYPE_DAMAGE[damage]
    key, damaged = _damaged_index(original, reencode)
    with pytest.raises(FormatError) as caught:
        read_index(damaged)
    assert words in str(caught.value)


@pytest.mark.tf
def test_a_wrong_wire_type_in_the_header_is_a_format_error(pristine_family):
    family = pristine_family("keras3_adam")
    with open(family.prefix + ".index", "rb") as f:
        items, _ = read_table(f.read())
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(items[0][1])
    assert header.num_shards == 1
    items[0] = (b"", reencoded(header, "num_shards", tag(1, LENGTH) + b"\x01\x01").SerializeToString())
    with pytest.raises(FormatError, match=r"BundleHeaderProto\.num_shards \(number 1\) is encoded as length"):
        read_index(build_table(items))


@pytest.mark.tf
def test_each_prefix_keeps_its_own_record_beside_an_index_with_a_wrong_wire_type(family_copy):
    """Issue 7.7: the damaged index makes its prefix a stage-only orphan; its healthy siblings stay healthy."""
    from source_helpers import classify_local, tf_restores_all

    from recovery.records import HEALTHY

    family = family_copy("keras3_adam")
    with open(family.prefix + ".index", "rb") as f:
        _, damaged = _damaged_index(f.read(), WIRE_TYPE_DAMAGE["offset as length-delimited"][0])
    with open(family.prefix + ".index", "wb") as f:
        f.write(damaged)
    results = classify_local(os.path.dirname(family.prefix))
    task = results[family.prefix]
    assert isinstance(task, OrphanTask) and task.stage_only
    assert task.finding.startswith("index unreadable") and "BundleEntryProto.offset" in task.finding
    assert family.siblings and all(results[s].status == HEALTHY for s in family.siblings)
    assert tf_restores_all(family.siblings[0]) and not tf_restores_all(family.prefix)


@pytest.mark.tf
def test_a_wrong_wire_type_in_the_object_graph_is_a_format_error(pristine_family):
    family = pristine_family("keras3_adam")
    with local_source(family.prefix + ".data-00000-of-00001") as source:
        payload = locate_object_graph(source).payload
    assert parse_object_graph(payload).checkpoint_keys()      # the graph TensorFlow wrote reads
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(payload)
    reference = next(ref for node in graph.nodes for ref in node.children)
    reencoded(reference, "node_id", tag(1, FIXED32) + b"\x01\x00\x00\x00")
    with pytest.raises(FormatError, match=r"ObjectReference\.node_id \(number 1\) is encoded as fixed32; "
                                          r"TensorFlow writes it as varint"):
        parse_object_graph(graph.SerializeToString())


@pytest.mark.tf
def test_a_wrong_wire_type_in_saved_model_pb_refuses_the_source(family_copy):
    from source_helpers import context, orphan

    family = family_copy("savedmodel")
    path = os.path.join(family.savedmodel_dir, "saved_model.pb")
    with open(path, "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    variable = next(n.variable for n in model.meta_graphs[0].object_graph_def.nodes if n.HasField("variable"))
    reencoded(variable, "shape", tag(2, VARINT) + b"\x03")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    with pytest.raises(FormatError, match=r"SavedVariable\.shape \(number 2\) is encoded as varint"):
        with open(path, "rb") as f:
            saved_objects(f.read())
    orphan(family.prefix)
    [refusal] = savedmodel_layouts(context(family.prefix))
    assert "unreadable" in refusal.reason and "SavedVariable.shape" in refusal.reason


@pytest.mark.tf
def test_a_wrong_wire_type_in_a_meta_graph_is_a_format_error(family_copy):
    family = family_copy("tf1_saver")
    with open(family.meta_path, "rb") as f:
        data = f.read()
    assert read_meta_graph(data).saver is not None       # the graph TensorFlow wrote reads
    meta = saved_model_pb2.MetaGraphDef.FromString(data)
    reencoded(meta.graph_def.node[0], "op", tag(2, VARINT) + b"\x07")
    with pytest.raises(FormatError, match=r"NodeDef\.op \(number 2\) is encoded as varint"):
        read_meta_graph(meta.SerializeToString())


def test_bytes_that_are_no_message_are_a_format_error():
    with pytest.raises(FormatError, match="not a valid SavedModel"):
        saved_objects(b"\x12\xff\xff\xff\x0f")     # meta_graphs claims 4 GiB


# --- the header, encoded as TensorFlow's protobuf encodes it --------------------------------------

INT32 = st.integers(-(2 ** 31), 2 ** 31 - 1)


@pytest.mark.tf
@settings(max_examples=100, deadline=None)
@given(st.builds(BundleHeader, num_shards=INT32, endianness=st.integers(0, 1), producer=INT32, min_consumer=INT32,
                 bad_consumers=st.lists(INT32, max_size=4).map(tuple)))
def test_header_encoding_equals_tensorflows_serialization(header):
    """Including bad_consumers, which proto3 packs (the hand encoder before this wrote them unpacked)."""
    from tensorflow.core.protobuf import tensor_bundle_pb2 as tf_bundle

    proto = tf_bundle.BundleHeaderProto(num_shards=header.num_shards, endianness=header.endianness)
    proto.version.SetInParent()
    proto.version.producer, proto.version.min_consumer = header.producer, header.min_consumer
    proto.version.bad_consumers.extend(header.bad_consumers)
    serialized = proto.SerializeToString(deterministic=True)
    assert header.encode() == serialized
    assert BundleHeader.decode(serialized) == header
