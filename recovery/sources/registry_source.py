"""Source 5: a registered architecture (builder or captured layout), resolved beforehand into a Layout.

`ctx.registry` maps names to layouts (pipeline.builders.resolve_registry). For a TF2 orphan only the
dtypes and shapes are taken from a single-shard registered layout: the order comes from the
orphan's own object graph, so a model whose children were attached in another order still fits.
Sharded or sliced layouts, and TF1 layouts (no object graph to order by), are offered as they are.
With no `--arch`, every entry whose keys match is offered; the engine accepts only one that fits.
For a SavedModel's variables, fingerprint.pb still checks whatever the registry offers.
"""

from tfbundle import OBJECT_GRAPH_KEY, dtype

from ..context import OrphanContext
from ..layout import SAVE_COUNTER_KEY, Layout, Refusal, describe_key_mismatch, keys_mismatch, layout_from_specs
from .protocol import Source

SOURCE = "registry"
DT_INT64 = dtype("int64").number


def _registry_layouts(ctx: OrphanContext) -> list:
    if ctx.fitted_sources and not ctx.arch and not getattr(ctx.registry, "resolved", True):
        # Only a cross-check here, and resolving builders costs seconds of TensorFlow: skipped, and said.
        ctx.notes.append("the registry was not consulted (a layout already fit; pass --arch NAME to cross-check "
                         "against a registered model)")
        return []
    registered = ctx.registry or {}
    if ctx.arch and ctx.arch not in registered:
        known = ", ".join(sorted(registered)) or "none: no registry entries are loaded"
        return [Refusal(SOURCE, f"no architecture `{ctx.arch}` is registered (known: {known})")]
    names = [ctx.arch] if ctx.arch else list(registered)
    results = [match_registered(ctx, name, registered[name]) for name in names]
    matching = [r for r in results if isinstance(r, Layout)]
    if matching or len(results) <= 1:
        return matching or results
    compared = [r for r in results if r.missing or r.extra]
    if not compared:
        # No entry got as far as comparing keys (e.g. random bytes, no object graph): naming one
        # "nearest" would send a person after the wrong model. Say why they all failed instead.
        why = dict.fromkeys(r.reason for r in results)
        return [Refusal(SOURCE, f"none of the {len(results)} registered architectures can be compared with this "
                                f"data: {' | '.join(list(why)[:3])}")]
    # Nearest: shares the most of this checkpoint's keys, then has the fewest it lacks.
    nearest = min(compared, key=lambda r: (len(r.missing), len(r.extra)))
    return [Refusal(SOURCE, f"none of the {len(results)} registered architectures matches this checkpoint; "
                            f"nearest: {nearest.reason}", nearest.missing, nearest.extra)]


class RegistrySource(Source):
    name = SOURCE
    chosen_by = "arch"

    def layouts(self, ctx: OrphanContext) -> list:
        return _registry_layouts(ctx)

    def declares_shapes(self, layout: Layout) -> bool:
        return True

    def choice(self, layout: Layout) -> str:
        return f"--registry FILE --arch {layout.source.split('`')[1]}" if "`" in layout.source else ""


registry_layouts = RegistrySource()


def match_registered(ctx: OrphanContext, name: str, registered: Layout) -> "Layout | Refusal":
    """The registered layout as this orphan would hold it, or why it cannot be."""
    label = f"registered `{name}`"
    object_based = OBJECT_GRAPH_KEY in registered.keys()
    if ctx.object_graph is None:
        if object_based:
            return Refusal(label, "is a TF2 object-based layout, but this data ends without an object graph "
                                  "(TF1 Saver data, or a TF2 data file cut short)")
        return _as_is(ctx, label, registered)
    if not object_based:
        return Refusal(label, "is a TF1 (name-based) layout, but this data is a TF2 object-based checkpoint")
    if registered.num_shards > 1 or any(t.slice for t in registered.tensors):
        missing, extra = keys_mismatch(registered, ctx.object_graph)
        if missing or extra:
            return Refusal(label, describe_key_mismatch(label, missing, extra), missing, extra)
        return _as_is(ctx, label, registered)
    if ctx.num_shards > 1:
        return Refusal(label, f"is a single-shard layout, but this checkpoint has {ctx.num_shards} shards (sliced by "
                              "a sharding policy?): register a sharded checkpoint of the same run with "
                              "--from-checkpoint")
    specs = {t.key: (t.dtype, t.shape) for t in registered.tensors}
    # `Checkpoint.save()` adds save_counter to whatever root it saves; it is always an int64 scalar.
    specs.setdefault(SAVE_COUNTER_KEY, (DT_INT64, ()))
    return _with_references(layout_from_specs(ctx.object_graph, specs, label, "registry"), registered)


def _as_is(ctx: OrphanContext, label: str, registered: Layout) -> "Layout | Refusal":
    if registered.num_shards != ctx.num_shards:
        return Refusal(label, f"was saved in {registered.num_shards} shard(s); this checkpoint has {ctx.num_shards}")
    return _with_references(Layout(list(registered.tensors), registered.num_shards, label, "registry"), registered)


def _with_references(found: "Layout | Refusal", registered: Layout) -> "Layout | Refusal":
    """A layout captured from a checkpoint keeps that checkpoint's CRCs and object graph as references."""
    if isinstance(found, Layout):
        found.reference_crcs = dict(registered.reference_crcs)
        found.reference_graph = registered.reference_graph
        found.graph_declared = registered.graph_declared
    return found
