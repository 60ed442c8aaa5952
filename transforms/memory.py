"""The nightly memory on Beam (recovery/memory/): records of the rebuild and check stages compared with
the previous run and remembered in their directory's snapshot; the directories the previous run listed
that are gone tonight, found by a join of directory keys only (never of records)."""

import json
import logging
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from recovery import storage
from recovery.memory.carry import kept_as
from recovery.memory.changes import changed
from recovery.memory.directory import night_of_gone, stores_of
from recovery.memory.nightly import NightCounts, Nightly
from recovery.memory.rotation import stamped
from recovery.memory.snapshots import RECORDS_PART, VERIFIED_PART, key_of
from recovery.records import LISTING, REBUILT
from recovery.vault import ORIGIN_REBUILT, ShardRecord
from tfbundle import parse_data_filename

from .errors import failures_become_records

NIGHT, DIRECTORIES = "night", "directories"
REBUILD, CHECK, SALVAGE = "rebuild", "check", "salvage"   # the stages whose records are remembered
HELD_PER_FOLDER = 1000         # records held per snapshot folder before a part is written
log = logging.getLogger(__name__)


class DirectoryKey(NamedTuple):
    root: str            # as records name it
    directory: str       # as a user types it


beam.coders.registry.register_coder(DirectoryKey, beam.coders.RowCoder)


def directory_key(element) -> DirectoryKey:
    """The key of a listed directory (transforms.listing.DirectoryFiles) in the join with the previous run's."""
    fs, root_path = storage.url_to_fs(element.root)
    return DirectoryKey(storage.display(fs, root_path), storage.display(fs, element.directory))


def _emit(value, tag: str):
    return pvalue.TaggedOutput(tag, WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()]))


class Remember(beam.DoFn):
    """Records of the rebuild, check or salvage stage -> the same records with `change` and `since`; with a
    vault, written into their directory's snapshot (tonight's, or for a carried directory's verification
    the one it was carried from; a check's or salvage's over the record classification kept), and each
    index rebuilt kept in the vault. NIGHT: NightCounts."""

    def __init__(self, nightly: Nightly, stage: str):
        self.nightly = nightly
        self.stage = stage

    def setup(self):
        self._stores = None
        self._heads = {}

    def start_bundle(self):
        self._held = {}
        self._counts = NightCounts()

    def process(self, record):
        vault, keep_in, compare = self._stores or self._open()
        directory = record.directory
        earlier = compare.latest(directory, self.nightly.run_id, self.nightly.now) if compare and directory else None
        record = changed(record, earlier.current().get(key_of(record)) if earlier else None, self.nightly)
        if self.stage == CHECK:
            record = stamped(record, self.nightly.now_iso)
        if keep_in is not None and directory and record.kind != LISTING:
            if self.stage == REBUILD and vault is not None and record.index_path and (
                    record.status == REBUILT or record.staged):
                record = self._keep_rebuilt(vault, keep_in, record)
            self._hold(keep_in, record)
        yield record

    def _open(self):
        self._stores = stores_of(self.nightly)
        return self._stores

    def _hold(self, keep_in, record) -> None:
        if record.carried_from:
            folder, part = keep_in.named(record.directory, record.carried_from), VERIFIED_PART
        else:
            folder = keep_in.folder(record.directory, self.nightly.now, self.nightly.run_id)
            part = RECORDS_PART if self.stage == REBUILD else VERIFIED_PART
        if folder is None:
            return
        held = self._held.setdefault((folder, part), [])
        held.append(record)
        if len(held) >= HELD_PER_FOLDER:
            self._write(keep_in, folder, part, self._held.pop((folder, part)))

    def _write(self, keep_in, folder: str, part: str, records: list) -> None:
        try:
            keep_in.write_records(folder, records, part, when=self.nightly.now if part == VERIFIED_PART else None)
        except Exception as exc:  # noqa: BLE001 - tonight's records stand; the directory is judged again
            log.warning("the vault did not take %d record(s) of %s: %s", len(records), folder, exc)
            self._counts.vault_failed += 1

    def _keep_rebuilt(self, vault, keep_in, record):
        """Keep the index this run rebuilt (origin `rebuilt`, unless the vault holds these very bytes
        already), with the data files tonight's listing gave; the record names the vaulted copy, which a
        later night stages again when it carries the record."""
        try:
            fs, index_path = storage.url_to_fs(record.index_path)
            data = storage.read_bytes(fs, index_path)
            prefix_path = storage.split_prefix(record.prefix)[1]
            folder = keep_in.folder(record.directory, self.nightly.now, self.nightly.run_id)
            head = self._heads.get(folder) or self._heads.setdefault(folder, keep_in.read_head(folder))
            base = prefix_path.rsplit("/", 1)[0]
            shards = sorted(((parsed.shard, ShardRecord(name, size, identity)) for name, size, identity in head.files
                             if "/" not in name and (parsed := parse_data_filename(f"{base}/{name}")) is not None
                             and parsed.prefix == prefix_path), key=lambda pair: pair[0])
            kept = vault.keep(record.prefix, data, [s for _, s in shards], ORIGIN_REBUILT, self.nightly.now,
                              self.nightly.run_id)
        except Exception as exc:  # noqa: BLE001 - the rebuild stands whatever the vault does
            log.warning("the vault did not keep the rebuilt index of %s: %s", record.prefix, exc)
            self._counts.vault_failed += 1
            return record
        if kept.created:
            self._counts.kept += 1
            self._counts.kept_bytes += len(data)
        return kept_as(record, kept.entry)

    def finish_bundle(self):
        vault, keep_in, compare = self._stores or self._open()
        for (folder, part), records in self._held.items():
            self._write(keep_in, folder, part, records)
        self._held = {}
        if self._counts.any():
            yield _emit(self._counts, NIGHT)


class Forget(beam.DoFn):
    """DirectoryKey of a directory gone since the previous run -> its `deleted` records; NIGHT: NightCounts;
    DIRECTORIES: its line of directories.jsonl while its deletions are reported."""

    def __init__(self, nightly: Nightly):
        self.nightly = nightly

    @failures_become_records("comparison", where=lambda self, key: (key.root, storage.split_prefix(key.directory)[1]))
    def process(self, key: DirectoryKey):
        night = night_of_gone(key.root, key.directory, self.nightly)
        yield from night.records
        yield pvalue.TaggedOutput(NIGHT, night.counts)
        if night.line:
            yield pvalue.TaggedOutput(DIRECTORIES, night.line)


JoinKey = tuple[str, str]     # (root, directory) of a DirectoryKey, as the join compares them


def previous_directories(url: str, roots: list):
    """((root, directory), 1) for each line of the previous run's directories.jsonl under one of `roots`."""
    fs, path = storage.url_to_fs(url)
    wanted = set(roots)
    with fs.open(path, "rb") as f:
        for line in f:
            if line.strip():
                found = json.loads(line)
                if found.get("root") in wanted:
                    yield (found["root"], found["directory"]), 1


def _join_key(key: DirectoryKey) -> tuple[JoinKey, int]:
    return (key.root, key.directory), 1


def _gone(joined) -> list:
    key, sides = joined
    return [DirectoryKey(*key)] if list(sides["previous"]) and not list(sides["tonight"]) else []


class GoneDirectories(beam.PTransform):
    """Tonight's DirectoryKeys -> records of the previous run's directories that are gone (deleted), with
    NIGHT and DIRECTORIES outputs. `previous_url`: the previous run's directories.jsonl."""

    def __init__(self, nightly: Nightly, previous_url: str, roots: list):
        super().__init__()
        self.nightly = nightly
        self.previous_url = previous_url
        self.roots = list(roots)

    def expand(self, tonight):
        # Joined on plain strings: a worker decodes a DirectoryKey that crossed a process as another class
        # (Beam's own row type), whose encoding would then differ from the other side's for the same key.
        before = (tonight.pipeline
                  | "Previous directories file" >> beam.Create([self.previous_url])
                  | "Previous directories" >> beam.FlatMap(previous_directories, self.roots).with_output_types(
                      tuple[JoinKey, int]))
        seen = tonight | "Listed tonight" >> beam.Map(_join_key).with_output_types(tuple[JoinKey, int])
        gone = ({"previous": before, "tonight": seen}
                | "Join directories" >> beam.CoGroupByKey()
                | "Gone since" >> beam.FlatMap(_gone).with_output_types(DirectoryKey))
        # No reshuffle before Forget: the join's output is spread over the workers by directory already,
        # and one more would be a stage of its own every night.
        return gone | "Deleted records" >> beam.ParDo(Forget(self.nightly)).with_outputs(NIGHT, DIRECTORIES,
                                                                                           main="records")
