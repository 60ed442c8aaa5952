"""Which layouts the sources offer for an orphan, and which of them fit its bytes exactly.

The engine sees sources only through `recovery.sources.Source`; their order is `SOURCES`.
"""

import dataclasses
from dataclasses import dataclass

from tfbundle import DT_STRING, DT_VARIANT, FormatError, measure
from tfbundle.tensors import count_variant_elements, probe_string_count

from . import storage
from .context import OrphanContext
from .layout import Layout, Refusal, TensorSpec, reference_key
from .sources import SOURCES, Source


@dataclass
class PlacedTensor:
    spec: TensorSpec
    offset: int
    size: int


@dataclass
class Fit:
    """A layout placed on the orphan's bytes, tiling every data file exactly."""

    source: Source             # the source that offered the layout: the cross-checks ask it about it
    layout: Layout
    placed: list               # PlacedTensor in data order (shard, offset)
    checks: list               # what fitting confirmed, in words


def candidate_layouts(ctx: OrphanContext, sources=None):
    """(source, layout or refusal) for everything the sources offer, best source first.

    A source the user chose (--template, --arch) comes first; the sources that carry the model's
    declared shapes still cross-check it.
    """
    if sources is None:
        sources = chosen_sources(ctx) if (ctx.template or ctx.arch) else SOURCES
    for source in sources:
        try:
            offered = source(ctx)
        except (FormatError, OSError, ValueError) as exc:
            if storage.is_transient(exc):
                raise   # the store did not answer: stop with `error`, never fall through to a weaker source
            offered = [Refusal(source.name, f"failed: {exc}")]
        for found in offered:
            yield source, found


def fit_candidates(ctx: OrphanContext, sources=None, fitter=None) -> tuple:
    """(fits, refusals): every layout the sources offer, placed on the orphan's bytes by `fitter` (`fit`
    by default; it returns a fit or a Refusal), best source first; an exact source's fit ends the search
    (the index of these very bytes: nothing can improve on it). `ctx.fitted_sources` names the fits."""
    fits, refusals = [], []
    ctx.fitted_sources = []
    for source, candidate in candidate_layouts(ctx, sources):
        found = candidate if isinstance(candidate, Refusal) else (fitter or fit)(ctx, source, candidate)
        if isinstance(found, Refusal):
            refusals.append(found)
            continue
        fits.append(found)
        ctx.fitted_sources.append(candidate.source)
        if source.exact(candidate):
            break
    return fits, refusals


def chosen_sources(ctx: OrphanContext) -> list:
    """--template or --arch first, then the checkpoint's own SavedModel and .meta, as cross-checks.

    Not the registry under --template, nor siblings under --arch: those are what the user chose
    between when sources disagreed.
    """
    option = "template" if ctx.template else "arch"
    return ([s for s in SOURCES if s.chosen_by == option]
            + [s for s in SOURCES if s.own_declaration])


def fit(ctx: OrphanContext, source: Source, layout: Layout) -> "Fit | Refusal":
    """Place the layout's tensors on the orphan's bytes; refuse unless they tile every file exactly."""
    notes = []
    if layout.num_shards != ctx.num_shards:
        return Refusal(layout.source, f"describes {layout.num_shards} data shard(s); this checkpoint has "
                                      f"{ctx.num_shards}")
    placed = []
    for shard, (specs, data_file) in enumerate(zip(layout.by_shard(), ctx.data_files)):
        offset = 0
        with storage.open_source(ctx.fs, data_file.path, data_file.size) as data:
            for spec in specs:
                try:
                    spec, size, note = measure_here(data, offset, spec)
                except FormatError as exc:
                    return Refusal(layout.source, f"does not fit shard {shard}: at tensor {spec.describe()} "
                                                  f"(byte {offset}): {exc}")
                if note:
                    notes.append(note)
                placed.append(PlacedTensor(spec, offset, size))
                offset += size
        if offset != data_file.size:
            more_or_less = "fewer" if offset < data_file.size else "more"
            return Refusal(layout.source, f"accounts for {offset} bytes of shard {shard} but the file has "
                                          f"{data_file.size} ({abs(data_file.size - offset)} bytes {more_or_less}): "
                                          "the shapes or dtypes differ from what was saved")
    if source.exact(layout):
        moved = misplaced(layout, placed)
        if moved:
            return Refusal(layout.source, f"is the index of these very bytes, but {moved}: it is not copied exactly, "
                                          "so nothing is written")
    checks = [f"{layout.source}: {len(placed)} tensors tile all {ctx.num_shards} data file(s) exactly "
              f"({sum(d.size for d in ctx.data_files)} bytes)"] + notes
    if ctx.object_graph is not None:
        checks.append("keys equal the checkpoint's own object graph")
    return Fit(source, layout, placed, checks)


def misplaced(layout: Layout, placed: list) -> str:
    """"" when every tensor lies where the layout's own index put it (shard, offset, size; an empty
    tensor's offset too); else the first that does not, in words."""
    for p in placed:
        recorded = layout.placements.get(reference_key(p.spec))
        if recorded is not None and recorded != (p.spec.shard, p.offset, p.size):
            shard, offset, size = recorded
            return (f"it puts {p.spec.describe()} at byte {offset} of shard {shard} ({size} bytes) and the data at "
                    f"byte {p.offset} of shard {p.spec.shard} ({p.size} bytes)")
    return ""


def measure_here(source, offset: int, spec: TensorSpec) -> tuple:
    """(spec, size, note) of the tensor at `offset`, with element counts a layout from another
    checkpoint cannot know read from this one's bytes.

    A rank-1 variant (a tf.data iterator's state) changes length between saves: its elements are
    counted by their checksums. A rank-1 string tensor whose count does not verify here (a table's
    keys) gets the first count whose length checksum does. The note says when the count changed.
    """
    rank_one = spec.slice is None and len(spec.shape) == 1
    if rank_one and spec.dtype == DT_VARIANT:
        count, size = count_variant_elements(source, offset)
    elif rank_one and spec.dtype == DT_STRING:
        try:
            return spec, measure(source, offset, spec.dtype, spec.shape), ""
        except FormatError:
            count = probe_string_count(source, offset)
            size = measure(source, offset, spec.dtype, (count,))
    else:
        return spec, measure(source, offset, spec.dtype, spec.stored_shape), ""
    if count == spec.shape[0]:
        return spec, size, ""
    return (dataclasses.replace(spec, shape=(count,)), size,
            f"{spec.key}: {count} element(s) in this checkpoint's bytes (the layout said {spec.shape[0]}); "
            "verified by in-band checksums")
