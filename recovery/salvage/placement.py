"""Where a layout puts each tensor in data that did not all arrive, and which layout salvage uses.

A rebuild accepts a layout only when it tiles every data file exactly. Salvage places the layout's
tensors from the start of each shard while the data lasts: a tensor is placed when it lies wholly
inside the bytes that arrived; the first one that does not (cut off by the end of the file, or a
string whose in-band checksum fails, so nothing after it has a known offset) ends the placement of
its shard. A layout is still refused where a rebuild would refuse it on what remains checkable:
more bytes than it describes, sources that disagree, a damaged object graph.
"""

import shlex
from dataclasses import dataclass, field

from tfbundle import DT_STRING, DT_VARIANT, OBJECT_GRAPH_KEY, FormatError, dtype, numeric_size

from .. import storage
from ..agreement import check_object_graph, cross_checked, first_disagreement
from ..counters import check_counter
from ..fitting import PlacedTensor, fit_candidates, measure_here
from ..layout import Layout, Refusal
from ..rebuild import NO_SOURCE, RebuildPlan
from ..sources import SOURCES
from ..sources.registry_source import RegistrySource
from ..sources.vault import vault_own_index
from .damaged import DamagedContext, Refused
from .vaulted import vaulted_own_index


@dataclass
class Placement:
    source: object               # the recovery.sources.Source that offered the layout
    layout: Layout
    placed: list                 # fitting.PlacedTensor wholly inside the data, in data order
    unplaced: list               # (TensorSpec, why) for the tensors that could not be placed
    exact_shards: set = field(default_factory=set)   # shards the layout tiles to their last byte
    stopped: dict = field(default_factory=dict)      # shard -> (key, why, why for those after) where placement ended
    checks: list = field(default_factory=list)


@dataclass
class ChosenLayout:
    """The layout salvage uses, what confirmed it, and what the damage left impossible to check."""

    placement: Placement
    checks: list
    cannot_check: list
    doubt: str = ""              # why placed tensors are only unconfirmed (a counter that contradicts the name)


class RegisteredAsIs(RegistrySource):
    """The registry, when the object graph that would order a registered TF2 layout did not arrive:
    every entry is offered in its own (registered) data order, with its CRCs and object graph."""

    def layouts(self, ctx):
        if ctx.fitted_sources and not ctx.arch and not getattr(ctx.registry, "resolved", True):
            # Only a cross-check here, and resolving builders costs seconds of TensorFlow: skipped, and said.
            ctx.notes.append("the registry was not consulted (a layout already fit; pass --arch NAME to cross-check "
                             "against a registered model)")
            return
        registry = ctx.registry or {}
        names = [ctx.arch] if ctx.arch else list(registry)
        for name in names:
            if name not in registry:
                yield Refusal(self.name, f"no architecture `{name}` is registered")
                continue
            found = registry[name]
            label = f"registered `{name}`"
            if found.num_shards != ctx.expected_shards:
                yield Refusal(label, f"was saved in {found.num_shards} shard(s); this checkpoint has "
                                     f"{ctx.expected_shards}")
                continue
            yield Layout(list(found.tensors), found.num_shards, label, "registry", notes=[
                f"keys and order as {label} holds them: the object graph that orders them did not arrive"],
                reference_crcs=dict(found.reference_crcs), reference_graph=found.reference_graph)


def salvage_sources(ctx: DamagedContext) -> list:
    """The rebuild's sources, in its order (the chosen one first under --template/--arch); without the
    checkpoint's own object graph the registry offers its layouts as registered, and the vault also offers
    this prefix's own index for data files cut short (vaulted.py)."""
    sources = [RegisteredAsIs() if s.chosen_by == "arch" and ctx.object_graph is None
               else vaulted_own_index if s is vault_own_index else s for s in SOURCES]
    if ctx.template or ctx.arch:
        option = "template" if ctx.template else "arch"
        sources = [s for s in sources if s.chosen_by == option] + [s for s in sources if s.own_declaration]
    return sources


def place(ctx: DamagedContext, source, layout: Layout) -> "Placement | Refusal":
    """Place the layout's tensors from the start of each shard while the data lasts."""
    if layout.num_shards != ctx.expected_shards:
        return Refusal(layout.source, f"describes {layout.num_shards} data shard(s); this checkpoint has "
                                      f"{ctx.expected_shards}")
    found = Placement(source, layout, [], [])
    for shard, specs in enumerate(layout.by_shard()):
        if shard not in ctx.shards:
            found.unplaced += [(spec, f"shard {shard} ({ctx.shard_name(shard)}) is missing") for spec in specs]
            continue
        size = ctx.shard_size(shard)
        offset = _place_shard(ctx, shard, specs, found)
        if shard in found.stopped:
            continue
        if offset < size:
            return Refusal(layout.source, f"accounts for {offset} bytes of shard {shard} but the file has {size}: "
                                          "more bytes than it describes (another model, or other shapes)")
        found.exact_shards.add(shard)
    found.checks.append(f"{layout.source}: {len(found.placed)} of {len(layout.tensors)} tensors lie wholly inside "
                        f"the data that arrived ({sum(ctx.shard_size(s) for s in ctx.shards)} bytes)")
    return found


def _place_shard(ctx: DamagedContext, shard: int, specs: list, found: Placement) -> int:
    """Place one shard's tensors; returns the offset where placement ended."""
    offset, size = 0, ctx.shard_size(shard)
    with storage.open_source(ctx.fs, ctx.shard_path(shard), size) as data:
        for spec in specs:
            if shard in found.stopped:
                found.unplaced.append((spec, found.stopped[shard][2]))
                continue
            try:
                spec, length, note = measure_here(data, offset, spec)
            except FormatError as exc:
                damaged, why = _unmeasurable(spec, offset, size, shard, str(exc))
                found.unplaced.append((spec, why))
                after = (f"follows {spec.key} in shard {shard}, whose bytes are damaged, so it has no known offset"
                         if damaged else f"none of its bytes arrived: shard {shard} ends at byte {size}")
                found.stopped[shard] = (spec.key, why, after)
                continue
            if note:
                found.checks.append(note)
            found.placed.append(PlacedTensor(spec, offset, length))
            offset += length
    return offset


def _unmeasurable(spec, offset: int, size: int, shard: int, error: str) -> tuple:
    """(damaged, why) the tensor at `offset` could not be placed: damaged, or cut off by the end of the file."""
    if "checksum does not match" in error:   # tfbundle.tensors: a string/variant's own checksum failed
        return True, f"its in-band checksum fails at byte {offset} of shard {shard} ({error}): its bytes are damaged"
    if offset >= size:
        return False, f"none of its bytes arrived: shard {shard} ends at byte {size}"
    needs = "" if spec.dtype in (DT_STRING, DT_VARIANT) else f" {numeric_size(dtype(spec.dtype), spec.stored_shape)}"
    return False, f"only {size - offset} of its{needs} bytes arrived: shard {shard} ends at byte {size}, inside it"


def choose_layout(ctx: DamagedContext, output_args: str) -> ChosenLayout:
    """The best source's placement, cross-checked as a rebuild would on what remains checkable; raises
    Refused when no source places anything, sources disagree, or the object graph is damaged.
    `output_args` (`--output NEW`) completes the salvage commands a refusal suggests."""
    placements, refusals = fit_candidates(ctx, salvage_sources(ctx), place)
    if not placements:
        reason = NO_SOURCE if not refusals else "no source fits: " + " | ".join(str(r) for r in refusals[:4])
        raise Refused(reason)
    best = placements[0]
    disagreement = first_disagreement(placements, ctx.display_prefix)
    if disagreement:
        raise Refused(_as_salvage(disagreement, ctx, output_args))
    plan = RebuildPlan(ctx.prefix, ctx.display_prefix, best.layout, best.placed,
                       [ctx.shard_path(s) for s in range(ctx.expected_shards)],
                       [ctx.shard_size(s) for s in range(ctx.expected_shards)], list(best.checks))
    cross_checked(plan, placements)
    damaged = check_object_graph(ctx, plan, [p.layout for p in placements])
    if damaged:
        raise Refused(f"the object graph is damaged: {damaged}", plan.checks)
    doubt = check_counter(ctx, plan) or ""
    cannot = list(plan.cannot_confirm) + _impossible_checks(ctx, best)
    cannot += [n for n in best.layout.notes + ctx.notes if n not in cannot]
    return ChosenLayout(best, list(plan.checks), cannot, doubt)


def _as_salvage(disagreement: str, ctx: DamagedContext, output_args: str) -> str:
    """A rebuild's disagreement, its commands made salvage's: with the output, and the registry in use
    where the rebuild's message can only say `--registry FILE`."""
    quoted = shlex.quote(ctx.display_prefix)
    registry = f"--registry {shlex.quote(ctx.registry_path)} " if ctx.registry_path else "--registry FILE "
    return (disagreement.replace("rebuild with", "salvage with")
            .replace(f"`ckpt-rescue rebuild {quoted} ", f"`ckpt-rescue salvage {quoted} {output_args} ")
            .replace("--registry FILE ", registry))


def _impossible_checks(ctx: DamagedContext, placement: Placement) -> list:
    """The checks a rebuild makes that this damage leaves impossible, named."""
    cannot = []
    for shard, (key, why, _) in sorted(placement.stopped.items()):
        cannot.append(f"shard {shard}: the sizes cannot be checked to tile the file: placement ended at {key} ({why})")
    for shard in ctx.missing_shards:
        cannot.append(f"shard {shard} ({ctx.shard_name(shard)}) is missing: the tensors it held are lost")
    holds_graph = OBJECT_GRAPH_KEY in placement.layout.keys()
    if holds_graph and ctx.graph_tensor is None:
        cannot.append(f"the checkpoint's own object graph (the last tensor of its data) did not arrive: keys and order "
                      f"come from {placement.layout.source}, not from the checkpoint itself")
    return cannot
