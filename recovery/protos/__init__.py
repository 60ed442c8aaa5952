"""The TensorFlow protos that size a checkpoint's tensors from outside it, read without TensorFlow.

`saved_model.pb` (SavedObjectGraph: dtype and shape of every variable), a TF1 `.meta`
(MetaGraphDef: the Saver's SaveV2 ops and the variables they read) and `fingerprint.pb`
(the hash of the SavedModel's variables.index). Rebuild workers must not import TensorFlow, so
these are parsed with the project's own minimal .proto files (saved_model.proto here; field numbers
are TensorFlow's, and a test holds them to TensorFlow's descriptors). A file is parsed once, in C;
the wrappers below read fields where they lie and check the wire types of what they read.
"""

from dataclasses import dataclass, field

from tfbundle.protos.tensor_bundle_pb2 import TensorShapeProto
from tfbundle.schema import check, check_tree, parse

from . import saved_model_pb2 as pb

SAVER_V2 = pb.SaverDef.V2   # LEGACY (0) and V1 (1) savers write no .data files


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def parse_shape(proto: TensorShapeProto) -> tuple | None:
    """A TensorShapeProto as a tuple (-1 for an unknown dimension), or None for an unknown rank."""
    check_tree(proto)
    if proto.unknown_rank:
        return None
    return tuple(dim.size for dim in proto.dim)


def is_fully_defined(shape: tuple | None) -> bool:
    return shape is not None and all(size >= 0 for size in shape)


# --- SavedModel -----------------------------------------------------------------------------------

@dataclass
class SavedObject:
    kind: str                               # the SavedObject `kind` set: "variable", "resource", ...
    children: list                          # (node_id, local_name)
    dtype: int | None = None                # for variables
    shape: tuple | None = None              # for variables; None when the rank is unknown


def saved_objects(saved_model: bytes) -> list[SavedObject]:
    """The SavedObjectGraph nodes of a `saved_model.pb`'s first MetaGraph (the one tf.saved_model writes)."""
    model = check(parse(pb.SavedModel, saved_model))
    if not model.meta_graphs:
        return []
    object_graph = check(check(model.meta_graphs[0]).object_graph_def)
    objects = []
    for node in object_graph.nodes:
        check(node)
        obj = SavedObject(node.WhichOneof("kind") or "",
                          [(ref.node_id, _text(ref.local_name)) for ref in map(check, node.children)])
        if obj.kind == "variable":
            variable = check(node.variable)
            obj.dtype = variable.dtype
            obj.shape = parse_shape(variable.shape)
        objects.append(obj)
    return objects


def checkpoint_hash(fingerprint: bytes) -> int | None:
    """FingerprintDef.checkpoint_hash: Fingerprint64 of the SavedModel's variables.index; None if unset."""
    return check(parse(pb.FingerprintDef, fingerprint)).checkpoint_hash or None


# --- MetaGraphDef ---------------------------------------------------------------------------------

class GraphNode:
    """One NodeDef of a parsed graph, read in place: attributes are decoded only when asked for."""

    __slots__ = ("proto", "name", "op")

    def __init__(self, proto: pb.NodeDef):
        self.proto = check(proto)
        self.name = _text(proto.name)
        self.op = _text(proto.op)

    @property
    def inputs(self) -> list[str]:
        return [_text(i) for i in self.proto.input]

    @property
    def device(self) -> str:
        return _text(self.proto.device)

    def data_inputs(self) -> list[str]:
        """Input node names, without control inputs and output indices."""
        return [i.split(":")[0] for i in self.inputs if not i.startswith("^")]

    def attr(self, name: str) -> pb.AttrValue | None:
        """The AttrValue of `name` (the last one, as a map keeps it), or None."""
        key, found = name.encode("utf-8"), None
        for entry in self.proto.attr:
            if check(entry).key == key:
                found = entry.value
        return check(found) if found is not None else None

    def attr_type(self, name: str) -> int | None:
        value = self.attr(name)
        return value.type if value is not None and value.WhichOneof("value") == "type" else None

    def attr_types(self, name: str) -> list[int]:
        value = self.attr(name)
        if value is None or value.WhichOneof("value") != "list":
            return []
        return list(check(value.list).type)

    def attr_shape(self, name: str) -> tuple | None:
        value = self.attr(name)
        return parse_shape(value.shape) if value is not None and value.WhichOneof("value") == "shape" else None

    def const_strings(self) -> list[str]:
        return [_text(s) for s in self._const_tensor().string_val]

    def const_ints(self) -> list[int]:
        tensor = self._const_tensor()
        return list(tensor.int_val) + list(tensor.int64_val)

    def _const_tensor(self) -> pb.TensorProto:
        value = self.attr("value")
        if value is None or value.WhichOneof("value") != "tensor":
            return pb.TensorProto()
        return check_tree(value.tensor)


@dataclass
class SaverDef:
    filename_tensor_name: str
    save_tensor_name: str
    sharded: bool
    version: int


@dataclass
class SliceInfo:
    full_name: str
    full_shape: tuple
    var_offset: tuple
    var_shape: tuple


@dataclass
class VariableDef:
    variable_name: str                  # a tensor name, e.g. "dense/kernel:0"
    slice_info: SliceInfo | None = None

    @property
    def op_name(self) -> str:
        return self.variable_name.split(":")[0]


@dataclass
class MetaGraph:
    nodes: dict                                         # name -> GraphNode
    saver: SaverDef | None = None
    collections: dict = field(default_factory=dict)     # key -> CollectionDef message

    def variable_defs(self, collection: str = "variables") -> list[VariableDef]:
        found = self.collections.get(collection)
        if found is None or found.WhichOneof("kind") != "bytes_list":
            return []
        return [_variable_def(v) for v in check(found.bytes_list).value]


def _variable_def(raw: bytes) -> VariableDef:
    proto = check_tree(parse(pb.VariableDef, raw))
    slice_info = None
    if proto.HasField("save_slice_info_def"):
        info = proto.save_slice_info_def
        slice_info = SliceInfo(_text(info.full_name), tuple(info.full_shape), tuple(info.var_offset),
                               tuple(info.var_shape))
    return VariableDef(_text(proto.variable_name), slice_info)


def read_meta_graph(data: bytes) -> MetaGraph:
    meta = check(parse(pb.MetaGraphDef, data))
    nodes = {}
    for raw in check(meta.graph_def).node:
        node = GraphNode(raw)
        nodes[node.name] = node
    saver = None
    if meta.HasField("saver_def"):
        s = check(meta.saver_def)
        saver = SaverDef(_text(s.filename_tensor_name), _text(s.save_tensor_name), s.sharded, s.version)
    collections = {}
    for entry in meta.collection_def:
        collections[_text(check(entry).key)] = check(entry.value)
    return MetaGraph(nodes, saver, collections)
