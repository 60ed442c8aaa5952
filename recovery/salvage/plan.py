"""Salvage, planned: which tensors of a damaged checkpoint can be kept, on what evidence, and why the
others are lost. Nothing is written here (output.py writes; assess.py summarises for the audit).

Two ways in:
- its own index survived (a shard cut short, a page zeroed, a shard missing): the index's CRCs are
  the references, and a tensor is kept when its bytes are all there and its CRC verifies;
- its index is lost (or unreadable, or describes an earlier save): the layout comes from the sources
  a rebuild uses, placed from the start of each shard while the data lasts (placement.py), and every
  tensor is judged on its bytes and the reference CRCs (references.py, verdicts.py).
"""

from dataclasses import dataclass, field

from tfbundle import OBJECT_GRAPH_KEY, FormatError, encode_slice_key, index_filename, read_index
from tfbundle.varint import decode_varint

from .. import storage
from ..context import NotRebuildable
from ..counters import COUNTER_KEYS
from ..fitting import PlacedTensor
from ..layout import layout_from_index, reference_key
from . import verdicts as judge
from .anchors import anchored_shards, without_anchor
from .damaged import DamagedContext, NotDamaged, Refused, open_damaged
from .graph import CarriedGraph, stand_in, without_lost
from .placement import choose_layout
from .references import Reference, gather_object_graphs, gather_references
from .scan import Streamed, read_shard
from .verdicts import LOST, PLACED, PROVEN, UNCONFIRMED

OWN_INDEX = "its own index"


@dataclass
class SalvagePlan:
    ctx: DamagedContext
    source: str                   # what gave the layout: OWN_INDEX, "sibling ckpt-2", "registered `mlp`", ...
    tensors: list                 # judge.TensorVerdict in data order, the object graph apart
    graph: CarriedGraph | None    # the object graph the output carries; None for a TF1 (name-based) checkpoint
    checks: list = field(default_factory=list)
    cannot_check: list = field(default_factory=list)
    include_unconfirmed: bool = False

    @property
    def display_prefix(self) -> str:
        return self.ctx.display_prefix

    def having(self, *states) -> list:
        return [t for t in self.tensors if t.state in states]

    @property
    def kept(self) -> list:
        """The tensors the salvaged checkpoint holds, in data order."""
        return self.having(PROVEN, PLACED, *((UNCONFIRMED,) if self.include_unconfirmed else ()))


def plan_salvage(fs, prefix: str, listing: list | None = None, registry_layouts=None, arch: str | None = None,
                 template: str | None = None, include_unconfirmed: bool = False,
                 output_args: str = "--output NEW_PREFIX", vault=None, registry_path: str = "",
                 streamed: Streamed | None = None, damaged_only: bool = False) -> SalvagePlan:
    """What a salvage of `prefix` (a filesystem path) would keep; raises Refused with the reason.

    `output_args` completes the commands a refusal suggests (`--output NEW`), `registry_path` names the
    registry in them; `vault`: the index vault (recovery.vault.Vault), whose copies of this prefix's
    index are references (vaulted.py); `streamed`: what a rebuild already read of these shards;
    `damaged_only`: raise NotDamaged, reading as little as possible, unless damage is seen."""
    if listing is None:
        listing = storage.ls(fs, storage.prefix_directory(prefix))
    index, unreadable = _own_index(fs, prefix, listing)
    try:
        ctx = open_damaged(fs, prefix, listing, registry_layouts, arch, template,
                           num_shards=(index.header.num_shards or 1) if index else None, vault=vault)
    except NotRebuildable as exc:
        raise Refused(str(exc)) from None
    ctx.streamed, ctx.damaged_only, ctx.registry_path = streamed, damaged_only, registry_path
    try:
        return _plan(ctx, index, unreadable, output_args, include_unconfirmed)
    except Refused as exc:
        exc.bytes_read = ctx.bytes_read
        raise


def _plan(ctx: DamagedContext, index, unreadable: str, output_args: str, include_unconfirmed: bool) -> SalvagePlan:
    if index is None:
        if unreadable:
            ctx.notes.append(unreadable)
        return _finish(_by_layout(ctx, output_args), include_unconfirmed)
    planned, carried_graph = _by_index(ctx, index)
    if ctx.stale_index:
        try:
            return _finish(_by_layout(ctx, output_args), include_unconfirmed)
        except Refused as exc:
            planned.cannot_check.append(f"no layout for the later save is available ({exc.reason}): only the tensors "
                                        "that did not change since the index was written are kept")
    planned.graph = carried_graph()
    return _finish(planned, include_unconfirmed)


def _own_index(fs, prefix: str, listing: list):
    """(BundleIndex, "") when the prefix's own index reads, (None, why) when it does not, (None, "") when absent."""
    path = index_filename(prefix)
    if not any(item["name"] == path and item.get("type", "file") == "file" for item in listing):
        return None, ""
    try:
        return read_index(storage.read_bytes(fs, path)), ""
    except FileNotFoundError:
        return None, ""
    except FormatError as exc:
        return None, f"its own index is unreadable ({exc}), so it is not used"


def _by_index(ctx: DamagedContext, index) -> tuple:
    """Its own index gives the layout, the offsets and the references: every tensor is verified or lost.
    Returns the plan and how to get its object graph: that may refuse, so it waits until the index is
    known not to be stale (a stale index's graph CRC is an earlier save's)."""
    layout = layout_from_index(index, OWN_INDEX, "index")
    entries = [(spec, index.entries[_entry_key(spec)]) for spec in layout.tensors]
    reads, findings = {}, {}
    for shard in sorted(ctx.shards):
        size = ctx.shard_size(shard)
        inside = [i for i, (spec, e) in enumerate(entries) if spec.shard == shard and e.offset + e.size <= size]
        got, findings[shard], read = read_shard(ctx.fs, ctx.shard_path(shard), size, shard,
                                                [PlacedTensor(entries[i][0], entries[i][1].offset,
                                                              entries[i][1].size) for i in inside], ctx.streamed)
        ctx.bytes_read += read
        reads.update(zip(inside, got))
    ctx.stale_index = any(spec.key in COUNTER_KEYS and reads.get(i) and not reads[i].failed
                          and reads[i].crc != entry.crc32c for i, (spec, entry) in enumerate(entries))
    tensors, graph_verdict = [], None
    for i, (spec, entry) in enumerate(entries):
        verdict = judge.against_index(spec, entry, reads.get(i), findings.get(spec.shard, []),
                                      _absent(ctx, spec, entry))
        if spec.key == OBJECT_GRAPH_KEY:
            graph_verdict = verdict
        else:
            tensors.append(verdict)
    arrived = any(reads.get(i) for i, (spec, _) in enumerate(entries) if spec.key == OBJECT_GRAPH_KEY)
    carried_graph = lambda: _graph_by_index(ctx, layout, graph_verdict, arrived) if graph_verdict else None
    checks = [f"{OWN_INDEX} reads ({len(index.entries)} entries, {ctx.expected_shards} shard(s)): its CRCs are the "
              "references, and a tensor is kept only when all its bytes are there and its CRC verifies"]
    cannot = [f"shard {s} ({ctx.shard_name(s)}) is missing: the tensors it held are lost" for s in ctx.missing_shards]
    if ctx.stale_index:
        ctx.notes.append("its own index describes an earlier save (the step counter's bytes differ from the CRC it "
                         "records: a save to a reused prefix that stopped before writing its index); its CRCs prove "
                         "only the tensors that did not change since")
        cannot.append(ctx.notes[-1])
    return SalvagePlan(ctx, OWN_INDEX, tensors, None, checks, cannot), carried_graph


def _entry_key(spec) -> bytes:
    return encode_slice_key(spec.key, spec.slice) if spec.slice else spec.key.encode("utf-8", "surrogateescape")


def _absent(ctx: DamagedContext, spec, entry) -> str:
    if spec.shard not in ctx.shards:
        return f"shard {spec.shard} ({ctx.shard_name(spec.shard)}) is missing"
    size = ctx.shard_size(spec.shard)
    if entry.offset >= size:
        return f"none of its bytes arrived: shard {spec.shard} ends at byte {size}"
    return f"only {size - entry.offset} of its {entry.size} bytes arrived: shard {spec.shard} ends at byte {size}"


def _graph_by_index(ctx: DamagedContext, layout, verdict, arrived: bool) -> CarriedGraph:
    """The graph its own index verifies; refused when its bytes arrived damaged; else a stand-in."""
    if verdict.state == PROVEN:
        with storage.open_source(ctx.fs, ctx.shard_path(verdict.spec.shard)) as source:
            raw = source.read_at(verdict.offset, verdict.size)
        length, start = decode_varint(raw, 0)
        return CarriedGraph(raw[start + 4:start + 4 + length], "the checkpoint's own (its CRC in the index verifies)")
    if arrived:
        raise Refused(f"the object graph is damaged: {verdict.why}; a salvaged checkpoint could not be restored "
                      "through it")
    lost = layout.reference_crcs.get((OBJECT_GRAPH_KEY, None))
    return _stand_in(ctx, layout, lost[1] if lost else None, verdict.why)


def _stand_in(ctx: DamagedContext, layout, lost, why: str) -> CarriedGraph:
    """A graph another source holds, for one that did not arrive (graph.stand_in says which); or Refused.
    `lost`: the lost graph's CRC as its own index recorded it (an int), or a references.Reference of it."""
    candidates = gather_object_graphs(ctx)
    if layout.reference_graph is not None:
        candidates.insert(0, (layout.source, layout.reference_graph))
    candidates.sort(key=lambda found: found[0] != layout.source)    # the layout's own source first
    if isinstance(lost, Reference):
        found = stand_in(candidates, layout, lost.crc, "the lost graph's" if lost.exact else
                         f"the one {lost.source} records")
    else:
        found = stand_in(candidates, layout, lost)
    if found is None:
        raise Refused(f"the object graph is lost ({why}) and no healthy sibling, --template or registered layout "
                      "(captured with `ckpt-rescue register NAME --from-checkpoint PREFIX`) holds one with these keys; "
                      "without it tf.train.Checkpoint cannot restore a salvaged checkpoint: pass --template "
                      "HEALTHY_PREFIX")
    found.notes.insert(0, f"the checkpoint's own is lost ({why})")
    return found


def _by_layout(ctx: DamagedContext, output_args: str) -> SalvagePlan:
    """No usable index: a source's layout, placed while the data lasts, judged tensor by tensor."""
    chosen = choose_layout(ctx, output_args)
    placement, layout = chosen.placement, chosen.placement.layout
    if ctx.damaged_only and ctx.streamed is None and not (placement.stopped or ctx.missing_shards):
        raise NotDamaged(f"{layout.source} places every tensor inside the data: no shard is cut short or missing")
    references = gather_references(ctx)
    reads, findings = {}, {}
    for shard in sorted(ctx.shards):
        here = [p for p in placement.placed if p.spec.shard == shard]
        got, findings[shard], read = read_shard(ctx.fs, ctx.shard_path(shard), ctx.shard_size(shard), shard, here,
                                                ctx.streamed)
        ctx.bytes_read += read
        reads.update((reference_key(p.spec), (p, r)) for p, r in zip(here, got))
    lost_here = dict((reference_key(spec), why) for spec, why in placement.unplaced)
    tensors, graph_placed = [], None
    for spec in layout.tensors:
        key = reference_key(spec)
        refs = references.get(key, [])
        if key not in reads:
            verdict = judge.unplaced(spec, lost_here.get(key, "not placed"), refs)
        else:
            placed, read = reads[key]
            anchor = None if spec.shard in placement.exact_shards else _zeros_before(findings[spec.shard], placed)
            verdict = judge.from_placement(placed, read, refs, findings[spec.shard], anchor, chosen.doubt,
                                           layout.source)
        if spec.key == OBJECT_GRAPH_KEY:
            graph_placed = verdict
        else:
            tensors.append(verdict)
    anchors = anchored_shards(ctx, placement, tensors + ([graph_placed] if graph_placed else []))
    checks = chosen.checks + [f"shard {shard} was cut short; {anchors[shard]}: the layout is anchored to its bytes"
                              for shard in sorted(placement.stopped) if shard in anchors]
    tensors = without_anchor(tensors, anchors, layout.source)
    graph = None
    if OBJECT_GRAPH_KEY in layout.keys():
        graph = _graph_by_layout(ctx, layout, references, graph_placed)
    return SalvagePlan(ctx, layout.source, tensors, graph, checks, chosen.cannot_check)


def _zeros_before(findings: list, placed) -> object:
    return next((f for f in findings if f.end <= placed.offset), None)


def _graph_by_layout(ctx: DamagedContext, layout, references: dict, verdict) -> CarriedGraph:
    if ctx.graph_tensor is not None:
        return CarriedGraph(ctx.graph_tensor.payload, "the checkpoint's own (it arrived whole at the end of its data)")
    recorded = sorted((r for r in references.get((OBJECT_GRAPH_KEY, None), []) if r.exact or r.own),
                      key=lambda r: not r.exact)     # of these very bytes first, then this prefix's own index
    return _stand_in(ctx, layout, recorded[0] if recorded else None, verdict.why if verdict else "it did not arrive")


def _finish(plan: SalvagePlan, include_unconfirmed: bool) -> SalvagePlan:
    """Whole variables only (TF2), nothing salvaged without proof, and the graph without the lost."""
    plan.include_unconfirmed = include_unconfirmed
    if plan.graph is not None:
        plan.tensors = judge.whole_variables_only(plan.tensors)
    if plan.ctx.damaged_only and not plan.having(LOST):
        raise NotDamaged(f"none of its {len(plan.tensors)} tensors is lost: their bytes are all there, none damaged")
    if not [t for t in plan.having(PROVEN, PLACED) if t.nbytes]:
        first = next((t for t in plan.tensors if t.state == LOST), None)
        doubted = plan.having(UNCONFIRMED)
        empty = len([t for t in plan.tensors if not t.nbytes and t.state == PROVEN])
        raise Refused(f"nothing provable: none of its {len(plan.tensors)} tensors is proven by a reference CRC or "
                      f"placed inside the data that arrived ({len(plan.having(LOST))} lost"
                      + (f", {len(doubted)} unconfirmed" if doubted else "")
                      + (f", {empty} of no bytes, which verify anywhere" if empty else "") + ")"
                      + (f"; first unconfirmed: {doubted[0].spec.describe()}: {doubted[0].why}" if doubted else "")
                      + (f"; first lost: {first.spec.describe()}: {first.why}" if first else ""), plan.checks)
    if plan.graph is not None:
        keys = [t.spec.key for t in plan.tensors] + [OBJECT_GRAPH_KEY]
        plan.graph = without_lost(plan.graph, keys, {t.spec.key for t in plan.kept})
    return plan
