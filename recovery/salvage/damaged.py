"""What salvage may look at for one damaged prefix: the data shards that arrived (some may be
missing, some cut short), and everything a rebuild looks at (`OrphanContext`).

A rebuild refuses a prefix with a missing shard before it starts (`context.check_complete`); salvage
works shard by shard, so it opens the prefix itself and keeps the numbers of the shards present.
"""

from dataclasses import dataclass, field

from tfbundle import data_filename

from .. import storage
from ..context import NotRebuildable, OrphanContext, data_files_of, find_object_graph


class Refused(Exception):
    """Nothing is salvaged: why, in words a person can act on (and the checks that did pass)."""

    def __init__(self, reason: str, checks=()):
        super().__init__(reason)
        self.reason, self.checks = reason, list(checks)
        self.bytes_read = 0     # data bytes read before refusing (the audit counts them as scanned)


class NotDamaged(Refused):
    """Asked only about damage (the audit's question), and none is seen: every tensor a layout places is
    there, so whatever refused the rebuild (a counter, Inf/NaN) is not something salvage can help with."""


@dataclass
class DamagedContext(OrphanContext):
    expected_shards: int = 0                      # data shards the file names (or the index) say there are
    shards: dict = field(default_factory=dict)    # shard number -> context.DataFile, for the shards present
    stale_index: bool = False                     # its own index describes an earlier save (references.StaleIndex)
    streamed: object = None                       # scan.Streamed: what a rebuild already read of these shards
    damaged_only: bool = False                    # go on only where damage is seen (NotDamaged otherwise)
    registry_path: str = ""                       # the registry file the layouts came from, for suggested commands
    bytes_read: int = 0                           # data bytes this salvage read (not those taken from `streamed`)

    def shard_path(self, shard: int) -> str:
        return data_filename(self.prefix, shard, self.expected_shards)

    def shard_size(self, shard: int) -> int:
        found = self.shards.get(shard)
        return found.size if found is not None else 0

    def shard_name(self, shard: int) -> str:
        return storage.display(self.fs, self.shard_path(shard))

    @property
    def missing_shards(self) -> list:
        return [shard for shard in range(self.expected_shards) if shard not in self.shards]


def open_damaged(fs, prefix: str, listing: list | None = None, registry_layouts=None, arch=None, template=None,
                 num_shards: int | None = None, vault=None) -> DamagedContext:
    """The damaged prefix as it is now. `num_shards`: what its own index says, when it has one; else
    the data file names say it (and must agree). Raises NotRebuildable when nothing says it."""
    if listing is None:
        listing = storage.ls(fs, storage.prefix_directory(prefix))
    files = data_files_of(prefix, listing)
    if num_shards is not None:
        files = [f for f in files if f.num_shards == num_shards]
    else:
        counts = sorted({f.num_shards for f in files})
        if not counts:
            raise NotRebuildable(f"no data files for {storage.display(fs, prefix)}: nothing arrived to salvage")
        if len(counts) > 1:
            raise NotRebuildable(f"data files of {storage.display(fs, prefix)} disagree on the shard count: {counts}")
        num_shards = counts[0]
    found = find_object_graph(fs, files) if files else None
    return DamagedContext(fs=fs, prefix=prefix, display_prefix=storage.display(fs, prefix), data_files=files,
                          directory_listing=listing, object_graph=found[1].graph if found else None,
                          graph_tensor=found[1] if found else None, registry=registry_layouts, arch=arch,
                          template=template, vault=vault, expected_shards=num_shards,
                          shards={f.shard: f for f in files})
