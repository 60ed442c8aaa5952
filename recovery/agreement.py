"""Do the layouts that fit agree with each other, and with the object graph the orphan holds?

The data holds sizes, not shapes: two fitting layouts that disagree cannot be told apart by it, and
a rebuilt index would give a damaged object graph a valid CRC. These checks refuse both.
"""

import shlex

from tfbundle import OBJECT_GRAPH_KEY, FormatError
from tfbundle.object_graph import parse_object_graph
from tfbundle.varint import decode_varint

from . import storage
from .context import OrphanContext
from .evidence import compare_declared_graph, compare_object_graphs
from .healthy import read_object_graph
from .layout import Layout
from .plausibility import rests_on_other_checkpoints, unconfirmed_layout_line


def first_disagreement(fits: list, display_prefix: str) -> str:
    """Why the fitted layouts cannot all be right, naming both sources and the first differing tensors; or ""."""
    first = fits[0]
    for other in fits[1:]:
        different = _differing_keys(first, other)
        if not different:
            continue
        prefix = shlex.quote(display_prefix)
        choices = [f"`ckpt-rescue rebuild {prefix} {c}`"
                   for c in (first.source.choice(first.layout), other.source.choice(other.layout)) if c]
        hint = f": if one is the model's, rebuild with {' or '.join(choices)}" if choices else ""
        return (f"sources disagree: {first.layout.source} and {other.layout.source} both fit these bytes but describe "
                f"{different}; the data holds sizes, not shapes, so it cannot tell which is right{hint}")
    return ""


def _differing_keys(a, b) -> str:
    """"" when both place the same tensors at the same offsets; else the first differences, both ways."""
    def placement(p):
        return (p.spec.key, p.spec.dtype, p.spec.shape, p.spec.slice, p.spec.shard, p.offset, p.size)

    if [placement(p) for p in a.placed] == [placement(p) for p in b.placed]:
        return ""
    diffs = [(x, y) for x, y in zip(a.placed, b.placed) if placement(x) != placement(y)][:2]
    if not diffs:
        return f"{len(a.placed)} and {len(b.placed)} tensors"
    return "; ".join(f"{x.spec.describe()} at byte {x.offset} vs {y.spec.describe()} at byte {y.offset}"
                     for x, y in diffs)


def cross_checked(plan, fits: list) -> None:
    """Say which sources agree, and what the data cannot tell when the layout rests on other checkpoints alone."""
    sources = list(dict.fromkeys(f.layout.source for f in fits))
    if len(sources) > 1:
        plan.checks.append(f"{len(sources)} sources agree on every key, dtype, shape and offset: {', '.join(sources)}")
    declared = [f.layout.source for f in fits if f.source.declares_shapes(f.layout)]
    if declared:
        plan.checks.append(f"shapes as the model declares them ({declared[0]})")
    plan.rests_on = rests_on_other_checkpoints(fits)
    line = unconfirmed_layout_line(plan, plan.rests_on) if plan.rests_on else ""
    if line:
        plan.cannot_confirm.insert(0, line)


def check_object_graph(ctx: OrphanContext, plan, layouts: list) -> str | None:
    """The orphan's object graph against every graph a source knows: a refusal reason or None.

    A rebuilt index would give a damaged graph a valid CRC, so a graph that differs from a
    reference is refused, unless the difference is one TensorFlow makes itself (see
    evidence.compare_object_graphs), which is then named.
    """
    graph = ctx.graph_tensor
    if graph is None:
        return _unreadable_graph(ctx, plan)
    checked, identical = False, []
    for layout in layouts:
        if layout.graph_declared and layout.reference_graph is not None:
            checked = True
            refused = _against_declared_graph(plan, layout, graph)
            if refused:
                return refused
            continue
        reference = layout.reference_crcs.get((OBJECT_GRAPH_KEY, None))
        if reference is None:
            continue
        checked = True
        size, crc = reference
        if (size, crc) == (graph.size, graph.masked_crc):
            identical.append(layout.source)
            continue
        payload = layout.reference_graph if layout.reference_graph is not None else _reference_graph(layout)
        if payload is None:
            return (f"the object graph ({graph.size} bytes, CRC {graph.masked_crc:#010x}) differs from the one "
                    f"{layout.source} holds ({size} bytes, CRC {crc:#010x}): damaged data or another model; a rebuilt "
                    "index would bless it with a fresh CRC")
        difference = compare_object_graphs(payload, graph.payload)
        if difference is None:
            difference_where = "the same payload under a different CRC: the reference's own bytes are damaged"
            return f"the object graph cannot be checked against {layout.source}: {difference_where}"
        if not difference.legitimate:
            return (f"the object graph differs from the one {layout.source} holds, at {difference.where}: damaged data "
                    "or another model; a rebuilt index would bless it with a fresh CRC")
        plan.checks.append(f"object graph equals the one {layout.source} holds except where TensorFlow itself makes "
                           f"them differ: {difference.where}")
        plan.cannot_confirm.append(f"the object graph's variable names ({difference.where}): no reference holds "
                                   "these exact bytes")
    if identical:
        holds = "holds" if len(identical) == 1 else "hold"
        plan.checks.append(f"object graph identical to the one {' and '.join(identical)} {holds} "
                           f"({graph.size} bytes, CRC {graph.masked_crc:#010x})")
    if not checked and plan.layout.expected_fingerprint is None:
        plan.cannot_confirm.append("the object graph's bytes: no source holds a CRC or a copy of this graph")
    return None


def _against_declared_graph(plan, layout: Layout, graph) -> str | None:
    """The orphan's graph against the one a registry builder's model makes: a refusal reason or None."""
    difference, left_out = compare_declared_graph(layout.reference_graph, graph.payload)
    if difference is not None and not difference.legitimate:
        return (f"the object graph differs from the one the builder of {layout.source} makes, at {difference.where}: "
                "damaged data or another model; a rebuilt index would bless it with a fresh CRC")
    also = f" except where TensorFlow itself makes them differ: {difference.where}" if difference else ""
    plan.checks.append(f"object graph equals the one the builder of {layout.source} makes{also}")
    if difference:
        plan.cannot_confirm.append(f"the object graph's variable names ({difference.where}): no reference holds "
                                   "these exact bytes")
    if left_out:
        plan.cannot_confirm.append(f"the object graph's edges only one of the two graphs has ({', '.join(left_out[:6])}"
                                   "): they lead to no values or are the root's save_counter, which saves of one "
                                   "model may add or leave out, so they were not compared")
    return None


def _unreadable_graph(ctx: OrphanContext, plan) -> str | None:
    """A TF2 layout ends the data with its object graph; where no graph could be read, why: or None (TF1).

    Every TF2 save writes a parseable TrackableObjectGraph as its last tensor, so one that does not
    parse at the place the layout puts it is damage (a flipped bit in a tag or a length), not a
    difference any source could explain.
    """
    placed = next((p for p in plan.placed if p.spec.key == OBJECT_GRAPH_KEY and not p.spec.slice), None)
    if placed is None:
        return None
    where = f"{placed.size} bytes at byte {placed.offset} of shard {placed.spec.shard}"
    try:
        with storage.open_source(ctx.fs, plan.shard_paths[placed.spec.shard]) as source:
            raw = source.read_at(placed.offset, placed.size)
        length, start = decode_varint(raw, 0)
        payload = raw[start + 4:start + 4 + length]
        if len(payload) != length:
            raise FormatError(f"its length field says {length} bytes but {len(payload)} follow")
        parse_object_graph(payload)
    except FormatError as exc:
        return (f"{plan.layout.source} puts the object graph at the end of the data ({where}), but those bytes do not "
                f"read as one ({exc}): damaged data; a rebuilt index would bless it with a fresh CRC")
    return (f"{plan.layout.source} puts the object graph at the end of the data ({where}) and it parses there, but "
            "the search from the end of the file did not find it; refusing rather than guessing")


def _reference_graph(layout: Layout) -> bytes | None:
    """The object-graph payload of the healthy checkpoint a layout came from (one small read)."""
    if not layout.origin:
        return None
    return read_object_graph(*layout.origin)
