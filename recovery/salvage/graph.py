"""The object graph a salvaged TF2 checkpoint carries, so `tf.train.Checkpoint(...).read()` restores it.

The checkpoint's own graph when it arrived intact; otherwise one a sibling, template or registered
layout holds: byte-identical to the lost one where a reference CRC of the lost graph says so, else
one whose keys equal the layout's (said so). Attributes of the tensors that are not salvaged are
removed from it: TensorFlow's restore looks up every attribute of a matched object and fails on a
key the bundle lacks, even under expect_partial(). Everything else in the graph is left as it was.
"""

from dataclasses import dataclass, field

from tfbundle import DT_STRING, FormatError, checksummer, crc_mask, parse_object_graph
from tfbundle.crc import mask, u32le, value
from tfbundle.protos.trackable_object_graph_pb2 import TrackableObjectGraph
from tfbundle.varint import encode_varint

from ..layout import expand_attribute_key, keys_mismatch


@dataclass
class CarriedGraph:
    payload: bytes                      # the TrackableObjectGraph as the salvaged checkpoint holds it
    origin: str                         # where it came from, in words
    notes: list = field(default_factory=list)
    removed: list = field(default_factory=list)   # attribute keys removed: their tensors are not salvaged

    def tensor_bytes(self) -> bytes:
        """The scalar string tensor that holds it: varint(length), masked CRC of the length, the bytes."""
        length = len(self.payload)
        return encode_varint(length) + u32le(mask(value(u32le(length)))) + self.payload

    def root_children(self) -> list:
        """Local names of the root's children (`model`, `optimizer`, ...): the arguments of the Checkpoint."""
        graph = TrackableObjectGraph.FromString(self.payload)
        return [ref.local_name.decode("utf-8", "replace") for ref in graph.nodes[0].children] if graph.nodes else []


def tensor_crc(data: bytes) -> int:
    """Masked CRC of a scalar string tensor's bytes, as its index entry holds it."""
    summer = checksummer(DT_STRING, ())
    summer.feed(data)
    return crc_mask(summer.crc)


def stand_in(candidates: list, layout, lost_crc: int | None,
             crc_from: str = "the lost graph's") -> "CarriedGraph | None":
    """A graph to carry when the checkpoint's own did not arrive: from `candidates` ((label, payload)),
    one byte-identical to the lost graph (its CRC equals `lost_crc`, a reference of the lost one, which
    `crc_from` names), else one whose keys equal the layout's; None when no candidate fits."""
    same_keys = None
    for label, payload in candidates:
        graph = CarriedGraph(payload, "")
        if lost_crc is not None and tensor_crc(graph.tensor_bytes()) == lost_crc:
            graph.origin = f"{label}'s, byte-identical to the lost one (its CRC equals {crc_from})"
            return graph
        if same_keys is None and _keys_fit(payload, layout):
            keys_from = "the layout's" if label == layout.source else f"{layout.source}'s"
            same_keys = CarriedGraph(payload, f"{label}'s, whose keys equal {keys_from}", notes=[
                "only its keys are checked against the lost one's: the names it gives the objects may differ"])
    return same_keys


def _keys_fit(payload: bytes, layout) -> bool:
    try:
        graph = parse_object_graph(payload)
    except FormatError:
        return False
    missing, extra = keys_mismatch(layout, graph)
    return not missing and not extra


def without_lost(graph: CarriedGraph, all_keys: list, kept_keys: set) -> CarriedGraph:
    """The graph with every attribute removed whose tensors are not all kept (a legacy saveable's several
    tensors count as one attribute). Unchanged, byte for byte, when nothing is removed."""
    proto = TrackableObjectGraph.FromString(graph.payload)
    attribute_keys = frozenset(a.checkpoint_key.decode("utf-8", "surrogateescape")
                               for node in proto.nodes for a in node.attributes)
    available, removed = set(all_keys), []
    for node in proto.nodes:
        keep = []
        for attribute in node.attributes:
            key = attribute.checkpoint_key.decode("utf-8", "surrogateescape")
            stored = expand_attribute_key(key, available, attribute_keys)
            if stored and all(k in kept_keys for k in stored):
                keep.append(attribute)
            else:
                removed.append(key)
        if len(keep) != len(node.attributes):
            del node.attributes[:]
            node.attributes.extend(keep)
    if not removed:
        return graph
    return CarriedGraph(proto.SerializeToString(), graph.origin, graph.notes + [
        f"{len(removed)} attribute(s) of tensors not salvaged removed from the object graph (restore would look "
        "for them); the rest of the graph is unchanged, and its CRC is new"], removed)
