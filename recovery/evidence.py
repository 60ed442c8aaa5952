"""What a rebuilt index rests on, and what it cannot prove.

A rebuilt index's CRCs are computed from the bytes that are there, so they make TensorFlow's later
checks pass whatever those bytes hold. Only references computed before any damage say something
about the data: a CRC a source holds for the same tensor, the object graph a source knows, a step
counter that matches the name, a SavedModel fingerprint. `Evidence` lists them, with what remains
unproven, for every rebuilt (and, as far as it got, every refused) checkpoint.
"""

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field

from tfbundle import FormatError, parse_object_graph

MAX_MATCHED_KEYS = 100   # matched_keys names at most this many: records stay small for 4000-tensor models


@dataclass
class Evidence:
    confirmed: list[str]                 # checks that confirmed the layout and the data, in words
    cannot_confirm: list[str]            # what the data cannot tell, and what no reference covers
    reference_matched: int = 0           # tensors whose computed CRC equals a CRC a source holds for them
    reference_total: int = 0             # tensors in the rebuilt index
    matched_keys: list[str] = field(default_factory=list)   # the first MAX_MATCHED_KEYS of those
    # tensors whose shape, dtype and boundaries rest on other checkpoints alone (plausibility.py); then
    # cannot_confirm's first line names them too
    unconfirmed_layout: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.reference_matched} of {self.reference_total} tensors confirmed by a reference CRC"

    def leading(self) -> tuple[list, list]:
        """(the line a person must read first: what rests on other checkpoints alone, if anything; the other
        cannot-confirm lines)"""
        if self.unconfirmed_layout and self.cannot_confirm:
            return self.cannot_confirm[:1], self.cannot_confirm[1:]
        return [], list(self.cannot_confirm)


# --- The object graph against a reference ---------------------------------------------------------

_UNIQUIFIER = re.compile(r"_\d+$")


def _without_uniquifiers(name: str) -> str:
    return "/".join(_UNIQUIFIER.sub("", part) for part in name.split("/"))


@dataclass
class GraphDifference:
    legitimate: bool
    where: str            # the first differing node/attribute, or the byte offset


def compare_object_graphs(reference: bytes, orphan: bytes) -> GraphDifference | None:
    """None when the payloads are equal; else where they first differ, and whether TensorFlow makes
    that difference itself.

    The one difference TensorFlow makes without a change of keys: variable names (`full_name`) that
    Keras and TensorFlow uniquify per process (`adam` in one process, `adam_1` in one that built a
    second optimizer first), renamed consistently across the whole graph. Anything else (a child's
    name or id, a key, a slot, one name renamed alone, a byte that does not parse) is damage or
    another model.
    """
    if reference == orphan:
        return None
    try:
        ref_graph, graph = parse_object_graph(reference), parse_object_graph(orphan)
    except FormatError as exc:
        return GraphDifference(False, f"{_first_byte(reference, orphan)}; it does not parse ({exc})")
    return _compare_graphs(ref_graph, graph, lambda: _first_byte(reference, orphan))


def compare_declared_graph(reference: bytes, orphan: bytes) -> tuple:
    """(GraphDifference or None, names left out): the orphan's object graph against the one a registry
    builder's model makes, TensorFlow having saved it when the registry was resolved.

    Besides what compare_object_graphs accepts, a save of the same model may add or leave out edges
    that lead to no values (functions a training step or an export attaches: `train_function`,
    `signatures`) and, at the root, `save_counter` (`Checkpoint.save()` adds it, `write()` does not)
    and `root` (the edge `tf.train.Checkpoint(root)` makes to itself). Such an edge that only one of
    the graphs has is left out; everything else, those edges where both have them included, is
    compared node for node. The names left out are returned, for the evidence.
    """
    if reference == orphan:
        return None, []
    try:
        ref_graph, graph = parse_object_graph(reference), parse_object_graph(orphan)
    except FormatError as exc:
        return GraphDifference(False, f"{_first_byte(reference, orphan)}; it does not parse ({exc})"), []
    ref_optional, optional = _optional_edges(ref_graph), _optional_edges(graph)
    left_out = (set(ref_optional) ^ set(optional))
    ref_graph, graph = _without(ref_graph, ref_optional, left_out), _without(graph, optional, left_out)
    names = sorted({name for _, name in left_out})
    if ref_graph == graph:
        return None, names
    return _compare_graphs(ref_graph, graph, lambda: "a field of an object that holds values"), names


ROOT_EDGES = ("save_counter", "root")   # what Checkpoint.save() and tf.train.Checkpoint(root) add at the root


def _optional_edges(graph) -> dict:
    """(path of the parent, name) -> (parent id, child id) of every edge a save of the same model may add or
    leave out: to objects that hold no values, and the root's ROOT_EDGES."""
    nodes = graph.nodes
    holds = {i for i, n in enumerate(nodes) if n.attributes or n.slot_variables or n.registered_saver}
    for _ in nodes:   # a node holds values when a child does
        grown = holds | {i for i, n in enumerate(nodes) if any(c in holds for c, _ in n.children)}
        if grown == holds:
            break
        holds = grown
    paths, order = {0: ()}, [0]
    for node_id in order:
        for child, name in nodes[node_id].children:
            if 0 <= child < len(nodes) and child not in paths:
                paths[child] = (*paths[node_id], name)
                order.append(child)
    return {(paths[parent], name): (parent, child) for parent in order for child, name in nodes[parent].children
            if child not in holds or (parent == 0 and name in ROOT_EDGES)}


def _without(graph, optional: dict, left_out: set):
    """The graph without the `left_out` edges, renumbered in TensorFlow's order (breadth first from the
    root, then slot variables), so that graphs equal but for those edges compare equal."""
    nodes = graph.nodes
    dropped = {optional[key] for key in left_out if key in optional}
    order, kept = [0], {0}
    for node_id in order:
        for child, _ in nodes[node_id].children:
            if (node_id, child) not in dropped and 0 <= child < len(nodes) and child not in kept:
                kept.add(child)
                order.append(child)
    for node in nodes:
        for _, _, slot in node.slot_variables:
            if slot not in kept and 0 <= slot < len(nodes):
                kept.add(slot)
                order.append(slot)
    new_id = {old: new for new, old in enumerate(order)}
    return dataclasses.replace(graph, nodes=[dataclasses.replace(
        nodes[old],
        children=[(new_id.get(c, -1), name) for c, name in nodes[old].children if (old, c) not in dropped],
        slot_variables=[(new_id.get(o, -1), name, new_id.get(s, -1)) for o, name, s in nodes[old].slot_variables])
        for old in order])


def _compare_graphs(ref_graph, graph, where_else) -> GraphDifference:
    """Where two parsed graphs differ, and whether TensorFlow makes that difference itself (see
    compare_object_graphs); `where_else()` names the place when no field this reader parses differs."""
    if len(ref_graph.nodes) != len(graph.nodes):
        return GraphDifference(False, f"the reference has {len(ref_graph.nodes)} objects, this data "
                                      f"{len(graph.nodes)}")
    renamed, names = [], []
    for node_id, (ref_node, node) in enumerate(zip(ref_graph.nodes, graph.nodes)):
        if ref_node.children != node.children:
            ref_child, child = _first_pair(ref_node.children, node.children)
            return GraphDifference(False, f"object {node_id}: child {_child(ref_child)} in the reference, "
                                          f"{_child(child)} here")
        if ref_node.slot_variables != node.slot_variables:
            ref_slot, slot = _first_pair(ref_node.slot_variables, node.slot_variables)
            return GraphDifference(False, f"object {node_id}: slot variable {ref_slot} in the reference, {slot} here")
        if ref_node.registered_saver != node.registered_saver:
            return GraphDifference(False, f"object {node_id}: registered saver `{ref_node.registered_saver}` in the "
                                          f"reference, `{node.registered_saver}` here")
        if len(ref_node.attributes) != len(node.attributes):
            return GraphDifference(False, f"object {node_id}: {len(ref_node.attributes)} attribute(s) in the "
                                          f"reference, {len(node.attributes)} here")
        for ref_attr, attr in zip(ref_node.attributes, node.attributes):
            names.append((ref_attr.full_name, attr.full_name))
            if ref_attr == attr:
                continue
            for name in ("name", "checkpoint_key", "optional_restore"):
                if getattr(ref_attr, name) != getattr(attr, name):
                    return GraphDifference(False, f"object {node_id} attribute `{ref_attr.checkpoint_key}`: {name} "
                                                  f"`{getattr(ref_attr, name)}` in the reference, "
                                                  f"`{getattr(attr, name)}` here")
            if _without_uniquifiers(ref_attr.full_name) != _without_uniquifiers(attr.full_name):
                return GraphDifference(False, f"object {node_id} attribute `{ref_attr.checkpoint_key}`: variable name "
                                              f"`{ref_attr.full_name}` in the reference, `{attr.full_name}` here")
            renamed.append((ref_attr.full_name, attr.full_name))
    if not renamed:
        # Equal as far as this reader parses them: the difference is in a field it does not read.
        return GraphDifference(False, f"{where_else()}, in a field ckpt-rescue does not parse")
    inconsistent = _inconsistent_renaming(names)
    if inconsistent:
        return GraphDifference(False, inconsistent)
    ref_name, name = renamed[0]
    return GraphDifference(True, f"only variable names differ, by the suffix TensorFlow adds to uniquify names "
                                 f"within one process (`{ref_name}` there, `{name}` here; {len(renamed)} name(s))")


def _inconsistent_renaming(names: list) -> str:
    """"" when one renaming of name components (`adam` -> `adam_1`) turns every reference name into
    this graph's; else the first name it does not explain.

    Uniquification renames a whole scope: every variable under `adam/` becomes `adam_1/...`. A flipped
    digit renames one name only, so it breaks the renaming the other names agree on.
    """
    targets: dict = {}
    for ref_name, name in names:
        ref_parts, parts = ref_name.split("/"), name.split("/")
        if len(ref_parts) != len(parts):
            return f"variable name `{ref_name}` in the reference, `{name}` here"
        for ref_part, part in zip(ref_parts, parts):
            targets.setdefault(ref_part, Counter())[part] += 1
    usual = {ref_part: counts.most_common(1)[0][0] for ref_part, counts in targets.items()}
    for ref_name, name in names:
        for ref_part, part in zip(ref_name.split("/"), name.split("/")):
            if part != usual[ref_part]:
                return (f"variable name `{ref_name}` in the reference, `{name}` here, while other names rename "
                        f"`{ref_part}` to `{usual[ref_part]}`")
    return ""


def _first_byte(a: bytes, b: bytes) -> str:
    offset = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"payload byte {offset} of {len(b)} (reference has {len(a)})"


def _first_pair(a: list, b: list):
    for x, y in zip(a, b):
        if x != y:
            return x, y
    return (a[len(b)] if len(a) > len(b) else None), (b[len(a)] if len(b) > len(a) else None)


def _child(child) -> str:
    return "none" if child is None else f"`{child[1]}` -> object {child[0]}"
