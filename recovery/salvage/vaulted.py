"""What the index vault (recovery/vault/, docs/vault.md) tells salvage: this prefix's own index as an
audit saw it healthy, the best reference a damaged prefix can have.

A rebuild uses a vaulted index only for the very files it described (recovery/sources/vault.py): a
data file cut short has another size, so there it is "other bytes". Salvage asks a narrower question,
which tensors are still the ones that index describes, so here an index whose data files have the same
names, none of them longer now and some shorter or missing, is this prefix's own index cut short:
- its CRCs are references (references.VaultedIndexes): a tensor whose bytes are present and whose CRC
  equals the vaulted one is proven. They are exact (a mismatch is damage) only for the very files the
  index described (same sizes and store identity); for files cut short they prove what matches;
- its layout is offered first (`VaultedOwnIndex`), placed while the data lasts.
An index ckpt-rescue itself rebuilt is never a reference: its CRCs came from the bytes then present.
"""

from .. import storage
from ..layout import Layout, Refusal
from ..sources import vault as sources_vault
from ..vault import ORIGIN_SEEN_HEALTHY, OTHER_BYTES, SAME_FILES, relation
from ..vault.judgement import VaultedIndex

CUT = "cut-short"      # the same data file names, none longer now, some shorter or missing
MAX_OWN_READ = 4       # own vaulted indexes read for references, newest first


def own_entries(ctx) -> list:
    """(entry, kind, why) of every index the vault holds for this prefix, newest first; `kind` is the
    vault's relation (SAME_FILES, EARLIER_SAVE, OTHER_BYTES) or CUT."""
    if ctx.vault is None:
        return []
    present = sources_vault.present_shards(ctx)
    found = []
    for entry in ctx.vault.entries(ctx.display_prefix):
        found_relation = relation(entry, present)
        kind, why = found_relation.kind, found_relation.why
        if kind == OTHER_BYTES and _cut_short(entry, present):
            kind, why = CUT, (f"the index vaulted on {entry.seen_on} describes these data files before they were cut "
                              "short or lost (the same names, none longer now)")
        found.append((entry, kind, why))
    return found


def _cut_short(entry, present: list) -> bool:
    then = {s.name: s.size for s in entry.shards}
    return (bool(present) and all(s.name in then and s.size <= then[s.name] for s in present)
            and (len(present) < len(then) or any(s.size < then[s.name] for s in present)))


def label(entry) -> str:
    return f"vaulted index of {storage.prefix_name(storage.split_prefix(entry.prefix)[1])} as it was on {entry.seen_on}"


def vaulted_layout(ctx, entry, kind: str) -> "Layout | Refusal":
    """The vaulted index as a layout for this prefix (its keys checked against the object graph, if it arrived)."""
    layout = sources_vault.vaulted_layout(ctx, entry, label(entry), "vault")
    if isinstance(layout, Layout):
        layout.vaulted = VaultedIndex(entry.seen_on, entry.index_sha256, entry.index_size, entry.origin, kind,
                                      storage.display(ctx.vault.fs, entry.index_location))
    return layout


class VaultedOwnIndex(sources_vault.VaultOwnIndex):
    """The rebuild's first source, for salvage: also this prefix's own index for its data files cut short
    or lost, offered as a layout like any other (not exact: whether these bytes are the ones it described
    is what each tensor's CRC says)."""

    def layouts(self, ctx):
        own = own_entries(ctx)
        if own and own[0][1] == CUT and own[0][0].origin == ORIGIN_SEEN_HEALTHY:
            ctx.notes.append(own[0][2])
            yield vaulted_layout(ctx, own[0][0], CUT)
            return
        yield from super().layouts(ctx)

    def exact(self, layout: Layout) -> bool:
        return getattr(layout.vaulted, "relation", None) == SAME_FILES


vaulted_own_index = VaultedOwnIndex()
