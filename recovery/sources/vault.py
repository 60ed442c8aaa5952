"""Source 0, and two later ranks: the index vault (recovery/vault/, docs/vault.md).

- `vault_own_index`, first of all: this prefix's own index, kept while it was healthy, for these very
  data files (names, sizes and the store's identity equal). It is the lost index itself: exact, so it
  ends the search; finalize then holds every tensor's CRC and the rebuilt bytes to it.
- `vault_earlier_save`, after the part index: the newest own index kept for data files of the same
  names and sizes whose identity differs or is unknown, an earlier save of this prefix. Its CRCs
  are references, like a sibling's; as the prefix's own index it ranks above the siblings.
- `vault_siblings`, after the live siblings: the vaulted indexes of the directory's other prefixes
  that have no index now (lost too, or their files gone), offered and counted like siblings.

An own index kept for other bytes (other names or sizes: the prefix was re-saved) is not used; the
refusal and the evidence say why. Indexes ckpt-rescue itself rebuilt are never evidence of their
own bytes: they give a layout, and the result is compared with them.
"""

from tfbundle import OBJECT_GRAPH_KEY, FormatError, read_index

from .. import storage, stores
from ..context import OrphanContext
from ..layout import Layout, Refusal
from ..vault import (
    EARLIER_SAVE,
    ORIGIN_REBUILT,
    ORIGIN_SEEN_HEALTHY,
    OTHER_BYTES,
    SAME_FILES,
    VaultDamaged,
    relation,
    shard_records,
)
from ..vault.judgement import VaultedIndex
from .protocol import Source
from .sibling import MAX_OFFERED, MAX_SIBLINGS_READ, layout_for_orphan, nearness


def present_shards(ctx) -> list:
    """The prefix's data files as listed now, with the store's identity of each (what an entry is held to)."""
    return shard_records(ctx.prefix, ctx.directory_listing, stores.store_for_fs(ctx.fs))


def _own_entries(ctx: OrphanContext) -> list:
    """(entry, Relation) of every index the vault holds for this prefix, newest first."""
    if ctx.vault is None:
        return []
    present = present_shards(ctx)
    return [(entry, relation(entry, present)) for entry in ctx.vault.entries(ctx.display_prefix)]


def _name(prefix: str) -> str:
    return storage.prefix_name(storage.split_prefix(prefix)[1])


def vaulted_layout(ctx: OrphanContext, entry, label: str, kind: str) -> "Layout | Refusal":
    """The vaulted index as a layout for this orphan (its keys checked against the object graph)."""
    try:
        index = read_index(ctx.vault.read_index(entry))
    except VaultDamaged as exc:
        return Refusal(label, str(exc))
    except FileNotFoundError:
        return Refusal(label, "its vaulted copy is gone (pruned while this rebuild ran)")
    except FormatError as exc:
        return Refusal(label, f"the vaulted copy does not read as an index: {exc}")
    return layout_for_orphan(ctx, index, label, kind)


def _unless_graph_differs(ctx: OrphanContext, layout: Layout, entry) -> None:
    """An entry that kept the object graph's payload lends it to agreement.check_object_graph, which
    tells TensorFlow's own renaming from damage. One that kept only its CRC cannot: a graph that differs
    from it has its CRC dropped, and the evidence says the graph was not compared with this index."""
    reference = layout.reference_crcs.get((OBJECT_GRAPH_KEY, None))
    graph = ctx.graph_tensor
    if reference is None or graph is None or reference == (graph.size, graph.masked_crc):
        return
    if entry.graph_payload is not None:
        layout.reference_graph = entry.graph_payload
        return
    del layout.reference_crcs[(OBJECT_GRAPH_KEY, None)]
    layout.notes.append(f"the object graph ({graph.size} bytes, CRC {graph.masked_crc:#010x}) differs from the one "
                        f"{layout.source} records ({reference[0]} bytes, CRC {reference[1]:#010x}); the vault keeps "
                        "its CRC, not its bytes, so the two were not compared")


def _own_layout(ctx: OrphanContext, entry, found, label: str) -> "Layout | Refusal":
    layout = vaulted_layout(ctx, entry, label, "vault")
    if not isinstance(layout, Layout):
        return layout
    location = storage.display(ctx.vault.fs, entry.index_location)
    layout.vaulted = VaultedIndex(entry.seen_on, entry.index_sha256, entry.index_size, entry.origin, found.kind,
                                  location)
    if entry.origin == ORIGIN_REBUILT:
        layout.reference_crcs = {}       # computed by ckpt-rescue from the bytes then present: no evidence
        layout.notes.append(f"{label} was rebuilt by ckpt-rescue, not written by TensorFlow: its layout is used, its "
                            "CRCs are not evidence")
    elif found.kind != SAME_FILES:
        _unless_graph_differs(ctx, layout, entry)
    return layout


class VaultOwnIndex(Source):
    """The prefix's own index for these very data files: the lost index itself."""

    name = "vault"

    def layouts(self, ctx: OrphanContext):
        own = _own_entries(ctx)
        if own and own[0][1].kind == OTHER_BYTES:
            found = own[0][1]
            older = sum(1 for _, r in own[1:] if r.kind == OTHER_BYTES)
            also = f" (and {older} older vaulted index(es) of other bytes)" if older else ""
            ctx.notes.append(f"{found.why}; it was not used{also}")
            yield Refusal(self.name, found.why + also)
        for entry, found in own:
            if found.kind == SAME_FILES and entry.origin == ORIGIN_SEEN_HEALTHY:
                yield _own_layout(ctx, entry, found, f"vaulted index of {_name(entry.prefix)} as it was on "
                                                     f"{entry.seen_on}")
                return

    def exact(self, layout: Layout) -> bool:
        return True


class VaultEarlierSave(Source):
    """The prefix's own index of an earlier save with the same data file sizes (or one ckpt-rescue rebuilt)."""

    name = "vault (earlier save)"

    def layouts(self, ctx: OrphanContext):
        own = _own_entries(ctx)
        if any(found.kind == SAME_FILES and entry.origin == ORIGIN_SEEN_HEALTHY for entry, found in own):
            return     # the lost index itself is there (vault_own_index); it was offered, or refused for a reason
        for entry, found in own:
            if found.kind == EARLIER_SAVE or (found.kind == SAME_FILES and entry.origin == ORIGIN_REBUILT):
                what = "rebuilt by ckpt-rescue" if entry.origin == ORIGIN_REBUILT else "an earlier save"
                yield _own_layout(ctx, entry, found, f"vaulted index of {_name(entry.prefix)} from {entry.seen_on} "
                                                     f"({what})")
                return


class VaultSiblings(Source):
    """Vaulted indexes of other prefixes in the orphan's directory that have no index now."""

    name = "vault (siblings)"

    def layouts(self, ctx: OrphanContext):
        if ctx.vault is None:
            return
        directory = storage.display(ctx.fs, storage.prefix_directory(ctx.prefix))
        live = {storage.display(ctx.fs, item["name"][: -len(".index")]) for item in ctx.directory_listing
                if item["name"].endswith(".index") and item.get("type") != "directory"}
        kept = ctx.vault.directory_entries(directory)
        others = sorted((prefix for prefix in kept if prefix != ctx.display_prefix and prefix not in live),
                        key=lambda prefix: nearness(ctx.display_prefix, prefix))
        offered = 0
        for prefix in others[:MAX_SIBLINGS_READ]:
            entry = kept[prefix][0]
            rebuilt = ", rebuilt by ckpt-rescue" if entry.origin == ORIGIN_REBUILT else ""
            label = f"vaulted index of sibling {_name(prefix)} as of {entry.seen_on}{rebuilt}"
            found = vaulted_layout(ctx, entry, label, "sibling")
            if isinstance(found, Layout):
                _unless_graph_differs(ctx, found, entry)
                offered += 1
            yield found
            if offered >= MAX_OFFERED:
                return


vault_own_index = VaultOwnIndex()
vault_earlier_save = VaultEarlierSave()
vault_siblings = VaultSiblings()
