"""Checks on healthy checkpoints: bit rot (every tensor against its CRC) and rehearsal (could we
rebuild this index from the other sources if it were lost tomorrow? `git index-pack --verify`)."""

from dataclasses import dataclass

from tfbundle import (
    BundleIndex,
    FormatError,
    crc_mask,
    data_filename,
    decode_slice_key,
    index_filename,
    is_slice_key,
    read_index,
    scan_spans,
)
from tfbundle.tensors import checksummer

from . import storage
from .context import NotRebuildable, open_orphan
from .rebuild import RebuildOutcome, rebuild


def verify_data(fs, prefix: str, index: BundleIndex | None = None, on_bytes=None) -> list[str]:
    """Problems found streaming every data file against the index; [] when every tensor verifies."""
    if index is None:
        index = read_index(storage.read_bytes(fs, index_filename(prefix)))
    by_shard: dict[int, list] = {}
    for key, entry in index.data_entries():
        by_shard.setdefault(entry.shard_id, []).append((key, entry))
    problems = []
    for shard in sorted(by_shard):
        path = data_filename(prefix, shard, index.header.num_shards)
        entries = sorted(by_shard[shard], key=lambda kv: kv[1].offset)
        spans = [(e.offset, e.size, checksummer(e.dtype, e.shape, e.size, count_nonfinite=False)) for _, e in entries]
        try:
            with storage.open_source(fs, path) as source:
                if entries and source.size < max(e.offset + e.size for _, e in entries):
                    problems.append(f"{storage.display(fs, path)} is {source.size} bytes, shorter than its index says")
                    continue
                scan_spans(source, spans, on_bytes=on_bytes)
        except FileNotFoundError:
            problems.append(f"{storage.display(fs, path)} is missing")
            continue
        except FormatError as exc:
            problems.append(f"shard {shard}: {exc}")
            continue
        for (key, entry), (_, _, summer) in zip(entries, spans):
            actual = crc_mask(summer.crc)
            if actual != entry.crc32c or not summer.done:
                where = f"shard {shard}, bytes {entry.offset}-{entry.offset + entry.size}"
                problems.append(f"tensor {_readable(key)!r} ({where}): checksum does not match "
                                f"(index {entry.crc32c:#010x}, data {actual:#010x})")
    return problems


def _readable(key: bytes) -> str:
    """A tensor's name as a person reads it: a slice key becomes `name[start:end, ...]`."""
    if not is_slice_key(key):
        return key.decode("utf-8", "surrogateescape")
    name, piece = decode_slice_key(key)
    dims = ", ".join(":" if e is None else f"{e[0]}:{e[0] + e[1]}" for e in piece.extents)
    return f"{name}[{dims}]"


@dataclass
class Rehearsal:
    verdict: str          # "byte-identical" | "differs" | "refused"
    detail: str
    outcome: RebuildOutcome | None = None


def rehearse(fs, prefix: str, listing=None, registry_layouts=None, sources=None, on_bytes=None) -> Rehearsal:
    """Rebuild a healthy checkpoint's index while ignoring it, and compare byte for byte."""
    own = storage.read_bytes(fs, index_filename(prefix))
    try:
        ctx = open_orphan(fs, prefix, listing, registry_layouts)
    except NotRebuildable as exc:
        return Rehearsal("refused", str(exc))
    outcome = rebuild(ctx, sources, on_bytes=on_bytes)
    if outcome.index_bytes is None:
        return Rehearsal("refused", outcome.reason, outcome)
    if outcome.index_bytes == own:
        return Rehearsal("byte-identical", f"rebuilt from {outcome.source}: identical to the existing index "
                                           f"({len(own)} bytes)", outcome)
    return Rehearsal("differs", _first_difference(own, outcome.index_bytes, outcome.source), outcome)


def _first_difference(own: bytes, rebuilt: bytes, source: str) -> str:
    try:
        mine, theirs = read_index(own), read_index(rebuilt)
    except FormatError as exc:
        return f"rebuilt from {source} but the existing index is unreadable: {exc}"
    for key in sorted(set(mine.entries) | set(theirs.entries)):
        a, b = mine.entries.get(key), theirs.entries.get(key)
        if a != b:
            return f"rebuilt from {source} differs at {key!r}: existing {a}, rebuilt {b}"
    return f"rebuilt from {source} has the same entries but different bytes ({len(own)} vs {len(rebuilt)})"
