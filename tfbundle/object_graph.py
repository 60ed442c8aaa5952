"""`_CHECKPOINTABLE_OBJECT_GRAPH`: find it at the end of a TF2 data file and list its keys.

The object graph is the last tensor of its shard: a scalar DT_STRING, laid out as
varint(L) | masked crc32c(u32le(L)) | L bytes of TrackableObjectGraph, ending exactly at EOF.
"""

from dataclasses import dataclass, field

from . import crc
from .errors import FormatError
from .protos.trackable_object_graph_pb2 import TrackableObjectGraph
from .schema import check, parse
from .source import ByteSource
from .varint import encode_varint

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
DEFAULT_MAX_SCAN = 256 << 20
# Every TF2 checkpoint key ends in `<attribute path>/.ATTRIBUTES/<name>`; the last nodes of a
# graph (its leaves, written last) are variables that carry such keys.
GRAPH_TAIL_MARKER = b"/.ATTRIBUTES/"


@dataclass
class SerializedTensor:
    name: str
    full_name: str
    checkpoint_key: str
    optional_restore: bool = False


@dataclass
class TrackableNode:
    children: list = field(default_factory=list)        # (node_id, local_name)
    attributes: list = field(default_factory=list)      # SerializedTensor
    slot_variables: list = field(default_factory=list)  # (original_node_id, slot_name, slot_node_id)
    registered_saver: str = ""


@dataclass
class ObjectGraph:
    nodes: list

    def checkpoint_keys(self) -> list[str]:
        """Attribute keys in the order TensorFlow writes their data: node order, then attribute order."""
        return [attr.checkpoint_key for node in self.nodes for attr in node.attributes]


@dataclass
class LocatedObjectGraph:
    offset: int        # where the string tensor starts in the data file
    size: int          # bytes of the whole tensor, through EOF
    payload: bytes
    graph: ObjectGraph

    @property
    def masked_crc(self) -> int:
        length = len(self.payload)
        length_check = crc.u32le(crc.mask(crc.value(crc.u32le(length))))
        raw = crc.extend(crc.extend(crc.value(crc.u32le(length)), length_check), self.payload)
        return crc.mask(raw)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def parse_object_graph(payload: bytes) -> ObjectGraph:
    """Decode a TrackableObjectGraph; a wrong wire type in any field read is a FormatError."""
    proto = check(parse(TrackableObjectGraph, payload))
    nodes = []
    for raw in proto.nodes:
        check(raw)
        node = TrackableNode(
            children=[(check(ref).node_id, _text(ref.local_name)) for ref in raw.children],
            attributes=[SerializedTensor(_text(check(a).name), _text(a.full_name), _text(a.checkpoint_key),
                                         a.optional_restore) for a in raw.attributes],
            slot_variables=[(check(s).original_variable_node_id, _text(s.slot_name), s.slot_variable_node_id)
                            for s in raw.slot_variables])
        if raw.HasField("registered_saver"):
            node.registered_saver = _text(check(raw.registered_saver).name)
        nodes.append(node)
    return ObjectGraph(nodes)


def _check_candidate(tail: bytes, tail_start: int, file_size: int, length: int):
    """Is there a complete scalar string of `length` bytes ending at EOF? Return its offset or None."""
    header = encode_varint(length)
    start = file_size - length - 4 - len(header)
    rel = start - tail_start
    if rel < 0:
        return None
    if tail[rel:rel + len(header)] != header:
        return None
    stored = int.from_bytes(tail[rel + len(header):rel + len(header) + 4], "little")
    return start if stored == crc.mask(crc.value(crc.u32le(length))) else None


def locate_object_graph(source: ByteSource, max_scan: int = DEFAULT_MAX_SCAN) -> LocatedObjectGraph | None:
    """Scan back from EOF for the trailing object graph; None when the file has none (TF1, or not a bundle).

    Reads a 1 MiB tail first. Only when that tail looks like the end of a TrackableObjectGraph
    (its checkpoint keys carry `/.ATTRIBUTES/`) but no graph starts inside it does the window grow
    (x8 up to `max_scan`): a TF2 model with a graph over 1 MiB is still found, and a TF1 file, whose
    tail is tensor bytes, costs one 1 MiB read per shard.
    """
    size = source.size
    limit = min(size, max_scan)
    window = min(size, 1 << 20)
    unexamined_below = size  # payload starts at or above this position were already tried
    while True:
        tail_start = size - window
        tail = source.read_at(tail_start, window)
        search_end = unexamined_below - tail_start
        while True:
            # A non-empty TrackableObjectGraph starts with the tag of `nodes` (field 1, length-delimited).
            rel = tail.rfind(b"\x0a", 0, search_end)
            if rel < 0:
                break
            search_end = rel
            length = size - (tail_start + rel)
            start = _check_candidate(tail, tail_start, size, length)
            if start is not None:
                found = _parse_located(tail, tail_start, start, size, length)
                if found:
                    return found
        if window >= limit or GRAPH_TAIL_MARKER not in tail:
            break
        # A payload starting within 14 bytes of the window edge had its header cut off: try it again.
        unexamined_below = tail_start + 14
        window = min(limit, window * 8)
    if size >= 5 and _check_candidate(source.read_at(size - 5, 5), size - 5, size, 0) is not None:
        return LocatedObjectGraph(size - 5, 5, b"", ObjectGraph([]))
    return None


def _parse_located(tail, tail_start, start, size, length):
    payload = tail[size - length - tail_start:]
    try:
        graph = parse_object_graph(payload)
    except FormatError:
        return None
    if not graph.nodes:
        return None
    return LocatedObjectGraph(start, size - start, payload, graph)
