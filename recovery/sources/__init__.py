"""Sources of truth for a lost index. Each is a function `(OrphanContext) -> list[Layout | Refusal]`.

They are tried best first (DESIGN §3); the first layout that fits the orphan's bytes wins.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataFile:
    path: str          # filesystem path, no scheme
    shard: int
    num_shards: int
    size: int | None   # as listed; None: ask the file


@dataclass
class OrphanContext:
    """What a source may look at: the orphan's files and its directory, as listed once."""

    fs: Any
    prefix: str                      # filesystem path of the checkpoint prefix, no scheme
    display_prefix: str              # as the user would type it (with gs:// etc.)
    data_files: list                 # DataFile, sorted by shard
    directory_listing: list          # fsspec ls(detail=True) dicts of the prefix's directory
    object_graph: Any = None         # tfbundle.ObjectGraph from the last shard; None for TF1 data
    graph_tensor: Any = None         # tfbundle LocatedObjectGraph (offset, size, payload, masked_crc) of that graph
    registry: Any = None             # name -> Layout (pipeline.builders.resolve_registry), or None
    arch: str | None = None          # --arch: use only this registry entry
    template: str | None = None      # --template PREFIX: use only this healthy checkpoint
    ignore_own_index: bool = False   # rehearsal: pretend P.index does not exist
    notes: list = field(default_factory=list)
    fitted_sources: list = field(default_factory=list)   # sources whose layout fit so far (set by the engine)

    @property
    def num_shards(self) -> int:
        return self.data_files[0].num_shards if self.data_files else 0
