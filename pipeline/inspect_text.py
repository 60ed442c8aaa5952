"""How `inspect`'s findings look: text for a person, one JSON object for a script.

The findings themselves (recovery/inspection.py, recovery/diagnosis.py) are data; `inspect`,
`rebuild` and `register` all show a wrong path's diagnosis through `render`.
"""

import dataclasses
import json
import shlex

from recovery.diagnosis import Diagnosis
from recovery.inspection import Healthy, Orphan, Unreadable
from tfbundle import OBJECT_GRAPH_KEY


def to_json(result) -> str:
    fields = {k: v for k, v in dataclasses.asdict(result).items() if k not in ("kind", "exit_code")}
    return json.dumps({"kind": result.kind, "exit_code": result.exit_code, **fields}, indent=1)


def render(result, command: str | None = "inspect", options: tuple = ()) -> str:
    """Text for a person; a diagnosis suggests `ckpt-rescue COMMAND PREFIX` (the command that was run).
    `options` (records.carried_options) go into every command it suggests, so that one works as printed."""
    if result.kind == "diagnosis":
        return "\n".join(_render_diagnosis(result, command, options)) + "\n"
    if result.kind == "orphan":
        return "\n".join(_render_orphan(result, options)) + "\n"
    return "\n".join(_RENDERERS[result.kind](result)) + "\n"


def _render_healthy(r: Healthy) -> list[str]:
    lines = [f"checkpoint {r.prefix}: healthy" + (" but with problems" if r.problems else ""),
             f"index      {r.index_path} ({r.index_size} bytes, {r.index_blocks} block(s))",
             f"header     {r.num_shards} shard(s), version {r.producer} (min consumer {r.min_consumer}), "
             f"{r.endianness}-endian"]
    lines += [f"data       {d.path} ({d.size} bytes)" for d in r.data_files]
    lines += [f"PROBLEM    {p}" for p in r.problems]
    lines.append(tensor_count(r.tensors) + ":")
    rows = [("key", "dtype", "shape", "shard", "offset", "size", "crc32c")]
    for t in r.tensors:
        shape = "[" + ", ".join(map(str, t.shape)) + "]"
        if t.slices:
            rows.append((t.key, t.dtype, shape, "-", "-", str(t.size), f"partitioned, {len(t.slices)} slices"))
            rows += [(f"  slice {s.extents}", "", "", str(s.shard), str(s.offset), str(s.size), f"{s.crc32c:08x}")
                     for s in t.slices]
        else:
            rows.append((t.key, t.dtype, shape, str(t.shard), str(t.offset), str(t.size), f"{t.crc32c:08x}"))
    return lines + _table(rows)


def tensor_count(tensors) -> str:
    """How many tensors, said the way every report counts them: a rebuild's evidence, the page and the
    audit count stored tensors (each slice of a partitioned variable once, its whole-tensor entry not)."""
    partitioned = [t for t in tensors if t.slices]
    if not partitioned:
        return f"{len(tensors)} tensor(s)"
    slices = sum(len(t.slices) for t in partitioned)
    stored = len(tensors) - len(partitioned) + slices
    return (f"{len(tensors)} tensor(s), {len(partitioned)} of them partitioned into {slices} slices: {stored} stored "
            f"tensors (as an audit counts them), {len(tensors) + slices} index entries besides the header")


def _render_orphan(r: Orphan, options: tuple = ()) -> list[str]:
    lines = [f"checkpoint {r.prefix}: ORPHAN (data files, no index)"]
    lines += [f"data       {d.path} ({d.size} bytes)" for d in r.data_files]
    lines += [f"PROBLEM    {p}" for p in r.problems]
    graph = r.object_graph
    if graph is None:
        lines.append("no object graph (TF1 Saver checkpoint, or not a TensorFlow data file)")
        if r.meta_graph:
            lines.append(f"the TF1 graph {r.meta_graph} says its Saver wrote {len(r.meta_keys)} tensor(s), "
                         "in data order:")
            lines += [f"  {key}" for key in r.meta_keys]
    else:
        lines.append(f"object graph at the end of {graph.data_file}: offset {graph.offset}, {graph.size} bytes, "
                     f"{graph.nodes} node(s)")
        lines.append(f"{len(graph.keys)} checkpoint key(s) in data order, then {OBJECT_GRAPH_KEY}:")
        lines += [f"  {key}" for key in graph.keys]
    lines.append(_next_step(r, options))
    return lines


def _next_step(r: Orphan, options: tuple = ()) -> str:
    """The rebuild command that can work here (with the options that made the finding), or why none can yet."""
    if not r.readable:
        return "nothing can be rebuilt while its data cannot be read (above); fix that first"
    if r.index_occupant:
        output = r.prefix + ".index.rebuilt"
        return (f"to rebuild the index (its name is taken by {r.index_occupant}, which is never replaced): "
                f"{shlex.join(['ckpt-rescue', 'rebuild', r.prefix, *options, '--output', output])}; then move "
                f"{shlex.quote(r.prefix + '.index')} aside and rename the new file to it")
    return f"to rebuild the index: {shlex.join(['ckpt-rescue', 'rebuild', r.prefix, *options])}"


def _render_unreadable(r: Unreadable) -> list[str]:
    return [f"checkpoint {r.prefix}: the index cannot be read",
            f"index      {r.index_path}: {r.error}",
            f"first bytes {r.first_bytes}"]


def _render_diagnosis(r: Diagnosis, command: str | None = "inspect", options: tuple = ()) -> list[str]:
    lines = [f"{r.target}: {r.problem}"]
    if r.file:
        lines.append(f"file        {r.file}")
    if r.first_bytes is not None:
        lines.append(f"first bytes {r.first_bytes or '(empty file)'}")
    lines += [f"  {c}" for c in r.candidates]
    if r.suggestion and command:
        lines.append(f"try: {shlex.join(['ckpt-rescue', command, r.suggestion, *options])}")
    return lines


def _table(rows) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


_RENDERERS = {"healthy": _render_healthy, "unreadable-index": _render_unreadable}
