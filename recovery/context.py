"""Gather what a rebuild may look at for one prefix: its data files, directory and object graph."""

import posixpath
from dataclasses import dataclass, field
from typing import Any

from tfbundle import (
    OBJECT_GRAPH_KEY,
    FormatError,
    index_filename,
    locate_object_graph,
    parse_data_filename,
    shard_coverage,
)

from . import storage


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
    vault: Any = None                # recovery.vault.Vault to ask first (--vault), or None
    notes: list = field(default_factory=list)             # what a source could not consult, for cannot_confirm
    # sibling prefix -> why it is no evidence here (a rehearsal: an index ckpt-rescue itself rebuilt)
    not_independent: dict = field(default_factory=dict)
    fitted_sources: list = field(default_factory=list)   # sources whose layout fit so far (set by the engine)

    def data_order_keys(self) -> list | None:
        """The object graph's keys in the order their data was written (the graph itself last), or None (TF1)."""
        if self.object_graph is None:
            return None
        return [*self.object_graph.checkpoint_keys(), OBJECT_GRAPH_KEY]

    @property
    def num_shards(self) -> int:
        return self.data_files[0].num_shards if self.data_files else 0


class NotRebuildable(Exception):
    """The prefix cannot be rebuilt at all (no data files, a shard missing): say why."""


def list_directory(fs, directory: str) -> list[dict]:
    return storage.ls(fs, directory)


def data_files_of(prefix: str, listing: list[dict]) -> list[DataFile]:
    """The data files of `prefix` in a listing (`storage.ls`): regular files only."""
    found = []
    for item in listing:
        if item.get("type", "file") != "file":
            continue
        name = parse_data_filename(item["name"])
        if name and name.prefix == prefix:
            found.append(DataFile(item["name"], name.shard, name.num_shards, int(item["size"])))
    return sorted(found, key=lambda d: d.shard)


def unread_files_of(prefix: str, listing: list[dict]) -> list[str]:
    """"NAME is WHAT" for each entry of a listing (`storage.ls`) named like the index or a data file of
    `prefix` that is not a regular file (a FIFO, a directory, a dangling link): never read."""
    found = []
    for item in listing:
        name = item["name"].rstrip("/")
        data = parse_data_filename(name)
        if item.get("type", "file") != "file" and (name == index_filename(prefix) or (data and data.prefix == prefix)):
            what = "a directory" if item.get("type") == "directory" else item.get("what") or "not a regular file"
            found.append(f"{posixpath.basename(name)} is {what}, not a file: not read")
    return sorted(found)


def check_complete(prefix_display: str, files: list[DataFile]) -> None:
    if not files:
        raise NotRebuildable(f"no data files for {prefix_display}")
    coverage = shard_coverage(files)
    if len(coverage.counts) > 1:
        raise NotRebuildable(f"data files of {prefix_display} disagree on the shard count: {list(coverage.counts)}")
    expected, missing = coverage.counts[0], coverage.missing
    if missing:
        raise NotRebuildable(f"{len(missing)} of {expected} data shards are missing "
                             f"(shard {', '.join(map(str, missing[:8]))}): an index cannot describe data that is gone")


def open_orphan(fs, prefix: str, listing: list[dict] | None = None, registry_layouts=None, arch=None,
                template=None, vault=None) -> OrphanContext:
    """Context for rebuilding `prefix` (a filesystem path). Raises NotRebuildable with the reason."""
    directory = storage.prefix_directory(prefix)
    if listing is None:
        listing = list_directory(fs, directory)
    display = storage.display(fs, prefix)
    files = data_files_of(prefix, listing)
    check_complete(display, files)
    found = find_object_graph(fs, files)
    graph = found[1].graph if found else None
    return OrphanContext(fs=fs, prefix=prefix, display_prefix=display, data_files=files,
                         directory_listing=listing, object_graph=graph, graph_tensor=found[1] if found else None,
                         registry=registry_layouts,
                         arch=arch, template=template, vault=vault)


def find_object_graph(fs, files: list[DataFile]):
    """(data file, LocatedObjectGraph) for the shard that ends with the object graph, or None (TF1).

    It ends the last shard of its task, so shards are tried from the last one back.
    """
    for data_file in reversed(files):
        try:
            with storage.open_source(fs, data_file.path, data_file.size) as source:
                located = locate_object_graph(source)
        except (FileNotFoundError, FormatError):
            located = None
        if located is not None:
            return data_file, located
    return None


