"""CRCs recorded before any damage, for salvage: every place that holds one for a tensor of this prefix.

A tensor's bytes are proven intact when their CRC (and size) equals one of these for the same key
and slice; a CRC computed from the bytes present proves nothing. `REFERENCE_SOURCES` is the list a
salvage consults, in order; a new place that holds CRCs (the index vault) joins it as one more
`ReferenceSource`. A reference is `exact` when it was recorded for these very bytes (a part index
of this save, the vault's copy of the index of these very files): then a mismatch is damage, not a
tensor that changed since.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tfbundle import FormatError, index_filename, read_index

from .. import storage
from ..context import OrphanContext
from ..healthy import read_object_graph
from ..layout import Layout, layout_from_index
from ..sources import SOURCES
from ..sources.vault import vault_siblings
from ..vault import ORIGIN_SEEN_HEALTHY, SAME_FILES
from .vaulted import MAX_OWN_READ, own_entries, vaulted_layout


@dataclass(frozen=True)
class Reference:
    size: int
    crc: int            # masked, as an index stores it
    source: str         # for people: "sibling ckpt-2", "part index in ...", "the old index of this prefix"
    exact: bool = False  # recorded for these very bytes: a mismatch means they were damaged
    own: bool = False    # recorded in this prefix's own index (the vault's copy): its lost object graph's CRC


class ReferenceSource(ABC):
    name: str = ""

    @abstractmethod
    def references(self, ctx: OrphanContext) -> list:
        """((key, slice), Reference) for every tensor this source holds a CRC of."""

    def object_graphs(self, ctx: OrphanContext) -> list:
        """(label, payload) of every object graph this source holds whole: a stand-in for a lost one."""
        return []


def _from_layouts(layouts, exact: bool) -> list:
    return [(key, Reference(size, crc, layout.source, exact))
            for layout in layouts for key, (size, crc) in layout.reference_crcs.items()]


def _layouts(source, ctx: OrphanContext) -> list:
    try:
        return [found for found in source(ctx) if isinstance(found, Layout)]
    except (FormatError, OSError, ValueError) as exc:
        if storage.is_transient(exc):
            raise
        return []


def _source_named(name: str):
    return next(s for s in SOURCES if s.name == name)


def sibling_layouts(ctx: OrphanContext) -> list:
    """The layouts of the nearest healthy checkpoints of the same run, with their origin."""
    return _layouts(_source_named("sibling"), ctx)


class PartIndexes(ReferenceSource):
    """`P_temp/part-*.index` of this very save: the CRCs TensorFlow computed while writing these bytes."""
    name = "part index"

    def references(self, ctx):
        return _from_layouts(_layouts(_source_named("part index"), ctx), exact=True)


class HealthySiblings(ReferenceSource):
    """The nearest healthy checkpoints of the same run (or --template): equal CRCs for unchanged tensors."""
    name = "sibling"

    def references(self, ctx):
        return _from_layouts(sibling_layouts(ctx), exact=False)

    def object_graphs(self, ctx):
        found = []
        for layout in sibling_layouts(ctx):
            payload = read_object_graph(*layout.origin) if layout.origin else None
            if payload is not None:
                found.append((layout.source, payload))
        return found


class RegisteredLayouts(ReferenceSource):
    """Layouts captured with `register --from-checkpoint` keep that checkpoint's CRCs and object graph.
    Builder entries hold neither, and are not resolved for this (TensorFlow costs seconds)."""
    name = "registry"

    def _registered(self, ctx) -> list:
        registry = ctx.registry or {}
        if not getattr(registry, "resolved", True):
            return []
        names = [ctx.arch] if ctx.arch in registry else list(registry)
        return [(name, registry[name]) for name in names]

    def references(self, ctx):
        return [(key, Reference(size, crc, f"registered `{name}`"))
                for name, layout in self._registered(ctx) for key, (size, crc) in layout.reference_crcs.items()]

    def object_graphs(self, ctx):
        return [(f"registered `{name}`", layout.reference_graph) for name, layout in self._registered(ctx)
                if layout.reference_graph is not None]


class VaultedIndexes(ReferenceSource):
    """The index vault: this prefix's own index as audits saw it healthy (exact for the very files it
    described, else what still matches, e.g. in a file cut short), and vaulted siblings that lost theirs."""
    name = "vault"

    def references(self, ctx):
        found = []
        for entry, kind, _ in own_entries(ctx)[:MAX_OWN_READ]:
            if entry.origin != ORIGIN_SEEN_HEALTHY:
                continue      # rebuilt by ckpt-rescue: its CRCs came from the bytes then present
            layout = vaulted_layout(ctx, entry, kind)
            if isinstance(layout, Layout):
                found += [(key, Reference(size, crc, layout.source, exact=kind == SAME_FILES, own=True))
                          for key, (size, crc) in layout.reference_crcs.items()]
        return found + _from_layouts(_layouts(vault_siblings, ctx), exact=False)


class StaleIndex(ReferenceSource):
    """The index an earlier save left at this prefix, when the data beside it is a later save's: equal
    CRCs for the tensors that did not change between the two. Consulted only once its own index has
    been found not to describe the data (salvage.plan decides)."""
    name = "old index"

    def references(self, ctx):
        if not getattr(ctx, "stale_index", False):
            return []
        try:
            index = read_index(storage.read_bytes(ctx.fs, index_filename(ctx.prefix)))
        except (FormatError, FileNotFoundError):
            return []
        return _from_layouts([layout_from_index(index, "the old index of this prefix")], exact=False)


# In order: the CRCs of these very bytes first, then those of other saves.
REFERENCE_SOURCES: list = [PartIndexes(), VaultedIndexes(), StaleIndex(), HealthySiblings(), RegisteredLayouts()]


def gather_references(ctx: OrphanContext, sources=None) -> dict:
    """(key, slice) -> [Reference], from every source in `sources` (REFERENCE_SOURCES by default)."""
    found: dict = {}
    for source in REFERENCE_SOURCES if sources is None else sources:
        for key, reference in source.references(ctx):
            if reference not in found.setdefault(key, []):
                found[key].append(reference)
    return found


def gather_object_graphs(ctx: OrphanContext, sources=None) -> list:
    """(label, payload) of every whole object graph the sources hold, in source order."""
    return [graph for source in (REFERENCE_SOURCES if sources is None else sources)
            for graph in source.object_graphs(ctx)]
