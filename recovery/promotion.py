"""Putting a report's staged indexes in place, from wherever the report is now: `ckpt-rescue promote`
(and promote.sh, which hands itself to it). The staged files are found relative to the report directory
given, not where the audit wrote them, so a report copied or downloaded elsewhere still promotes; the
targets are the audited locations, or where `--root-map OLD=NEW` says they are now.

Every write is the store's own create-only write (recovery/storage.write_new: a hard link locally,
ifGenerationMatch=0 on GCS, If-None-Match: * on S3), after checking that the data files beside the
target still have the sizes the staged index needs. Nothing is ever overwritten: `replace` (a person's
call, for an index the audit found unreadable or stale) first copies the existing index aside create-only
(`P.index.stale`, `P.index.unreadable`), removes it only once the copy reads back the same, then creates
the staged one.
"""

import dataclasses
import posixpath

from tfbundle import FormatError, data_filename, index_filename

from . import storage
from .records import REBUILT, STALE, Record
from .report.promote import promote_line
from .sizes import read_sized_index, shard_sizes
from .stores import names

# What happened to one staged index; promote.sh prints the same words.
PROMOTED, WOULD_PROMOTE, PRESENT, LEFT, FAILED = "promoted", "would promote", "present", "left", "failed"
REPLACED, WOULD_REPLACE = "replaced", "would replace"


@dataclasses.dataclass(frozen=True)
class Staged:
    """One staged index of a report: where it is now, and where it goes."""

    record: Record
    staged: str          # the staged file, as a URL or local path under the report directory given
    target: str          # the index to create, after --root-map

    @property
    def prefix(self) -> str:
        return self.target[: -len(".index")]

    @property
    def aside(self) -> str:
        """Where `replace` keeps the index found there: `P.index.stale` or `P.index.unreadable`; a name
        past the file name limit keeps its head and a hash (stores/names.py)."""
        directory, name = posixpath.split(self.target + (".stale" if self.record.status == STALE else ".unreadable"))
        return posixpath.join(directory, names.fitted(name))


@dataclasses.dataclass(frozen=True)
class Outcome:
    staged: Staged
    result: str          # one of PROMOTED, WOULD_PROMOTE, PRESENT, LEFT, FAILED
    why: str = ""

    def line(self) -> str:
        """The line a person reads (promote.sh prints the same for the same outcome)."""
        target, staged = self.staged.target, self.staged.staged
        if self.result == PROMOTED:
            return f"promoted: {target}"
        if self.result == WOULD_PROMOTE:
            return f"would promote: {staged} -> {target}"
        if self.result == REPLACED:
            return f"replaced: {target} (the index that was there is kept as {self.staged.aside})"
        if self.result == WOULD_REPLACE:
            return f"would replace: {target} (keeping the index there as {self.staged.aside}) with {staged}"
        if self.result == PRESENT:
            return f"left alone (an index is already there): {target}"
        if self.result == LEFT:
            return (f"not promoted (its own index is there and is {self.staged.record.status}: replacing it is a "
                    f"person's call; see its record's command): {target}")
        return f"FAILED (nothing overwritten): {staged} -> {target}: {self.why}"


class RootMap:
    """`--root-map OLD=NEW`: targets under OLD are looked for under NEW (a tree copied, mounted elsewhere,
    or moved to another bucket). OLD matches whole path segments; the first OLD that matches wins."""

    def __init__(self, pairs=()):
        self.pairs = [(old.rstrip("/"), new.rstrip("/")) for old, new in pairs]

    @staticmethod
    def parse(text: str) -> tuple[str, str]:
        old, sep, new = text.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--root-map takes OLD=NEW (the audited root and where it is now), not {text!r}")
        return old, new

    def apply(self, path: str) -> str:
        for old, new in self.pairs:
            if path == old or path.startswith(old + "/"):
                return new + path[len(old):]
        return path


def staged_indexes(report_dir: str, summary: dict, records, root_map: RootMap) -> list[Staged]:
    """Every staged index of the report at `report_dir` (where it is now; summary.json says where it was
    written), with its staged file found relative to `report_dir`."""
    written_at = summary.get("report_dir", "").rstrip("/")
    here = report_dir.rstrip("/")
    found = []
    for record in records:
        if not record.staged or not record.index_path:
            continue
        staged = record.index_path
        if written_at and staged.startswith(written_at + "/"):
            staged = here + staged[len(written_at):]
        found.append(Staged(record, staged, root_map.apply(index_filename(record.prefix))))
    return sorted(found, key=lambda item: promote_line(item.record))     # promote.sh's order


def promote(staged: Staged, dry_run: bool = False, replace: bool = False) -> Outcome:
    """Create the target index from the staged one, create-only, when the data beside it is what the
    staged index describes; with `dry_run`, every check and no write. `replace`: an index the audit found
    unreadable or stale is first kept aside (`_move_aside`), never overwritten."""
    fs, target = storage.url_to_fs(staged.target)
    found = storage.fresh_exists(fs, target)
    if found and (staged.record.status == REBUILT or not replace):
        return Outcome(staged, PRESENT if staged.record.status == REBUILT else LEFT)
    try:
        staged_fs, staged_path = storage.url_to_fs(staged.staged)
        index_bytes = storage.read_bytes(staged_fs, staged_path)
    except FileNotFoundError:
        return Outcome(staged, FAILED, "the staged index is not in this report directory (was it copied whole, "
                                       "with rebuilt/?)")
    problem = data_problem(fs, target[: -len(".index")], index_bytes)
    if problem:
        return Outcome(staged, FAILED, problem)
    if found:
        there = storage.read_bytes(fs, target)
        if there == index_bytes:                 # replaced already (a second run of the same command)
            return Outcome(staged, PRESENT)
        problem = _move_aside(fs, target, storage.url_to_fs(staged.aside)[1], there, dry_run)
        if problem:
            return Outcome(staged, FAILED, problem)
    if dry_run:
        return Outcome(staged, WOULD_REPLACE if found else WOULD_PROMOTE)
    try:
        storage.write_new(fs, target, index_bytes)
    except FileExistsError:
        return Outcome(staged, PRESENT if staged.record.status == REBUILT else LEFT)
    except (FileNotFoundError, PermissionError) as exc:
        return Outcome(staged, FAILED, f"cannot write there ({exc})")
    if storage.read_bytes(fs, target) != index_bytes:
        return Outcome(staged, FAILED, "the index reads back differently from what was written")
    return Outcome(staged, REPLACED if found else PROMOTED)


def _move_aside(fs, target: str, aside: str, found: bytes, dry_run: bool) -> str:
    """Keep the index at `target` (`found`, its bytes) as `aside`, create-only and read back, then remove
    it; why not, or "". An `aside` that exists is an earlier copy a person has not looked at: left alone."""
    if storage.fresh_exists(fs, aside):
        return f"{storage.display(fs, aside)} exists (an earlier copy?): look at it and move it away first"
    if dry_run:
        return ""
    try:
        storage.write_new(fs, aside, found)
    except FileExistsError:
        return f"{storage.display(fs, aside)} appeared meanwhile: nothing moved"
    if storage.read_bytes(fs, aside) != found or storage.read_bytes(fs, target) != found:
        return f"{storage.display(fs, target)} changed while it was copied aside: nothing removed, look at both"
    fs.rm_file(target)
    return ""


def data_problem(fs, prefix: str, index_bytes: bytes) -> str:
    """Why the data beside `prefix` is not what the index describes (a shard missing, another size), or ""."""
    try:
        index = read_sized_index(index_bytes)
    except FormatError as exc:
        return f"the staged index is unreadable ({exc})"
    directory = storage.parent(prefix)
    try:
        listed = {item["name"]: item.get("size") for item in storage.ls(fs, directory)}
    except FileNotFoundError:
        return f"no such directory: {storage.display(fs, directory)} (moved? see --root-map)"
    num_shards = index.header.num_shards or 1
    for shard in shard_sizes(index, lambda s: listed.get(data_filename(prefix, s, num_shards))):
        name = posixpath.basename(data_filename(prefix, shard.shard, num_shards))
        if shard.missing:
            return f"{name} is not there (moved? see --root-map)"
        if shard.size != shard.needed:
            return (f"{name} is {shard.size} bytes, the staged index describes {shard.needed}: the data changed "
                    "since the audit; audit it again")
    return ""


def tally(outcomes: list[Outcome], dry_run: bool) -> str:
    """The closing line: how many of each (promote.sh prints the same)."""
    count = {kind: sum(o.result == kind for o in outcomes) for kind in (PROMOTED, WOULD_PROMOTE, PRESENT, LEFT,
                                                                          FAILED, REPLACED, WOULD_REPLACE)}
    done = f"{count[WOULD_PROMOTE]} would be promoted" if dry_run else f"{count[PROMOTED]} promoted"
    replaced = count[WOULD_REPLACE] if dry_run else count[REPLACED]
    if replaced:
        done += f", {replaced} {'would be ' if dry_run else ''}replaced (the old kept aside)"
    return (f"{'dry run' if dry_run else 'done'}: {done}, {count[PRESENT]} already had an index (left alone), "
            f"{count[LEFT]} need a person, {count[FAILED]} failed")
