"""Source 1: the part indexes a crash during MergeV2Checkpoints left behind.

TF2 saves go through `P_temp/part-0000i-of-0000N` (`P.part-…` on S3, `P_temp_<hex>/part-…` from
old TF1) and then merge. A crash after the data renames leaves `P.data-*` with no `P.index`, but
the part indexes still describe those very bytes: they are the authoritative layout.
"""

from tfbundle import INDEX_SUFFIX, FormatError, naming, read_index

from .. import storage
from ..context import OrphanContext
from ..layout import Layout, Refusal, layout_from_index, reference_key
from .protocol import Source

SOURCE = "part index"


def _candidate_part_indexes(ctx: OrphanContext) -> dict[str, list[str]]:
    """Part index paths grouped by their temp location, each group sorted by part number."""
    groups: dict[str, list[str]] = {}
    base = ctx.prefix.rsplit("/", 1)[-1]
    for item in ctx.directory_listing:
        name = item["name"]
        leaf = name.rsplit("/", 1)[-1]
        if item.get("type") == "directory" and (leaf == base + "_temp" or leaf.startswith(base + "_temp_")):
            for child in storage.ls(ctx.fs, name):
                _add_if_part(groups, ctx.prefix, child["name"])
        else:
            _add_if_part(groups, ctx.prefix, name)  # S3 style: P.part-00000-of-00002.index beside P
    return {k: sorted(v) for k, v in groups.items()}


def _add_if_part(groups: dict, prefix: str, path: str) -> None:
    if not path.endswith(INDEX_SUFFIX):
        return
    part = naming.part_of(path[: -len(INDEX_SUFFIX)])
    if part and part[0] == prefix:
        groups.setdefault(storage.parent(path), []).append(path)


def _part_index_layouts(ctx: OrphanContext) -> list:
    results = []
    for location, paths in _candidate_part_indexes(ctx).items():
        label = f"{SOURCE} in {storage.display(ctx.fs, location)}"
        parts = [naming.part_of(p[: -len(INDEX_SUFFIX)]) for p in paths]
        expected = parts[0][2]
        if len(paths) != expected or any(p[2] != expected for p in parts):
            results.append(Refusal(label, f"found {len(paths)} of {expected} part indexes; a merge needs all"))
            continue
        tensors, crcs, placements, failed = [], {}, {}, None
        for shard, path in enumerate(paths):
            try:
                part = read_index(storage.read_bytes(ctx.fs, path))
            except (FormatError, OSError) as exc:
                failed = Refusal(label, f"{storage.display(ctx.fs, path)} is unreadable: {exc}")
                break
            if part.header.num_shards != 1:
                failed = Refusal(label, f"{storage.display(ctx.fs, path)} describes {part.header.num_shards} shards")
                break
            part_layout = layout_from_index(part, key_order=ctx.data_order_keys())
            crcs.update(part_layout.reference_crcs)
            for spec in part_layout.tensors:
                tensors.append(type(spec)(spec.key, spec.dtype, spec.shape, shard, spec.slice))
                _, offset, size = part_layout.placements[reference_key(spec)]
                placements[reference_key(spec)] = (shard, offset, size)
        if failed:
            results.append(failed)
            continue
        # The part indexes hold the CRCs of these very bytes: every tensor has an exact reference.
        # Offsets too, empty tensors' included: the rebuilt index is the merge of these, copied exactly.
        results.append(Layout(tensors, expected, label, "part-index", reference_crcs=crcs, placements=placements))
    return results


class PartIndexSource(Source):
    name = SOURCE

    def layouts(self, ctx: OrphanContext) -> list:
        return _part_index_layouts(ctx)

    def exact(self, layout: Layout) -> bool:
        return True


part_index_layouts = PartIndexSource()
