"""Rebuild a lost index: choose a layout, fit it to the orphan's bytes, checksum, build, verify.

Three phases so a pipeline can spread one huge orphan over several workers:
  prepare(ctx)                       -> RebuildPlan (cheap reads) or an unrecoverable RebuildOutcome
  checksum_range(fs, plan, shard, start, end) -> RangeChecksums (the heavy streaming part)
  finalize(plan, [RangeChecksums])   -> RebuildOutcome with the index bytes, or a refusal
`rebuild(ctx)` runs all three in one process.
"""

import dataclasses
import struct
from dataclasses import dataclass, field

from tfbundle import (
    DT_STRING,
    DT_VARIANT,
    BundleEntry,
    BundleHeader,
    FormatError,
    crc_combine,
    crc_mask,
    data_filename,
    dtype,
    encode_slice_key,
    measure,
    read_index,
    scan_spans,
    write_index,
)
from tfbundle.scan import DEFAULT_CHUNK
from tfbundle.tensors import checksummer, count_variant_elements, probe_string_count

from . import storage
from .caches import SharedCache
from .context import step_of
from .layout import Layout, Refusal, TensorSpec
from .sources import OrphanContext

REBUILT, UNRECOVERABLE = "rebuilt", "unrecoverable"


@dataclass
class PlacedTensor:
    spec: TensorSpec
    offset: int
    size: int


@dataclass
class RebuildPlan:
    prefix: str                      # filesystem path of the prefix
    display_prefix: str
    layout: Layout
    placed: list                     # PlacedTensor in data order (shard, offset)
    shard_paths: list
    shard_sizes: list
    checks: list = field(default_factory=list)        # checks passed while preparing, in words
    refusals: list = field(default_factory=list)      # sources tried before this one and why they failed
    allow_nonfinite: bool = False


@dataclass
class RangeChecksums:
    shard: int
    start: int
    end: int
    pieces: list        # (tensor index in plan.placed, raw crc32c of its bytes within the range, length, nonfinite)
    error: str = ""     # an in-band checksum that failed, a short read


@dataclass
class RebuildOutcome:
    prefix: str                      # display prefix
    status: str                      # REBUILT or UNRECOVERABLE
    reason: str
    source: str = ""                 # the layout source used, e.g. "sibling ckpt-56"
    index_bytes: bytes | None = None
    checks: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    bytes_scanned: int = 0



def default_sources():
    """Sources best first (DESIGN §3). Imported here so each source module stays independent."""
    from .sources.part_index import part_index_layouts
    from .sources.sibling import sibling_layouts

    sources = [part_index_layouts, sibling_layouts]
    for module_name, function_name in (("savedmodel", "savedmodel_layouts"), ("meta_graph", "meta_graph_layouts"),
                                       ("registry_source", "registry_layouts")):
        try:
            module = __import__(f"recovery.sources.{module_name}", fromlist=[function_name])
        except ImportError:
            continue
        sources.append(getattr(module, function_name))
    return sources


def candidate_layouts(ctx: OrphanContext, sources=None):
    """Every layout and refusal the sources offer, best source first."""
    if ctx.template:
        from .sources.sibling import sibling_layouts
        sources = [sibling_layouts]
    elif ctx.arch:
        from .sources.registry_source import registry_layouts
        sources = [registry_layouts]
    for source in sources if sources is not None else default_sources():
        try:
            yield from source(ctx)
        except (FormatError, OSError, ValueError) as exc:
            if storage.is_transient(exc):
                raise   # the store did not answer: stop with `error`, never fall through to a weaker source
            yield Refusal(getattr(source, "__name__", "source"), f"failed: {exc}")


def fit(ctx: OrphanContext, layout: Layout) -> "RebuildPlan | Refusal":
    """Place the layout's tensors on the orphan's bytes; refuse unless they tile every file exactly."""
    _attach_savedmodel_fingerprint(ctx, layout)
    notes = []
    if layout.num_shards != ctx.num_shards:
        return Refusal(layout.source, f"describes {layout.num_shards} data shard(s); this checkpoint has "
                                      f"{ctx.num_shards}")
    placed = []
    for shard, (specs, data_file) in enumerate(zip(layout.by_shard(), ctx.data_files)):
        offset = 0
        with storage.open_source(ctx.fs, data_file.path, data_file.size) as source:
            for spec in specs:
                try:
                    spec, size, note = _measure_here(source, offset, spec)
                except FormatError as exc:
                    return Refusal(layout.source, f"does not fit shard {shard}: at tensor {spec.describe()} "
                                                  f"(byte {offset}): {exc}")
                if note:
                    notes.append(note)
                placed.append(PlacedTensor(spec, offset, size))
                offset += size
        if offset != data_file.size:
            more_or_less = "fewer" if offset < data_file.size else "more"
            return Refusal(layout.source, f"accounts for {offset} bytes of shard {shard} but the file has "
                                          f"{data_file.size} ({abs(data_file.size - offset)} bytes {more_or_less}): "
                                          "the shapes or dtypes differ from what was saved")
    checks = [f"{layout.source}: {len(placed)} tensors tile all {ctx.num_shards} data file(s) exactly "
              f"({sum(d.size for d in ctx.data_files)} bytes)"] + notes
    if ctx.object_graph is not None:
        checks.append("keys equal the checkpoint's own object graph")
    return RebuildPlan(ctx.prefix, ctx.display_prefix, layout, placed, [d.path for d in ctx.data_files],
                       [d.size for d in ctx.data_files], checks)



def _measure_here(source, offset: int, spec: TensorSpec) -> tuple:
    """(spec, size, note) of the tensor at `offset`, with element counts a layout from another
    checkpoint cannot know read from this one's bytes.

    A rank-1 variant (a tf.data iterator's state) changes length between saves: its elements are
    counted by their checksums. A rank-1 string tensor whose count does not verify here (a table's
    keys) gets the first count whose length checksum does. The note says when the count changed.
    """
    rank_one = spec.slice is None and len(spec.shape) == 1
    if rank_one and spec.dtype == DT_VARIANT:
        count, size = count_variant_elements(source, offset)
    elif rank_one and spec.dtype == DT_STRING:
        try:
            return spec, measure(source, offset, spec.dtype, spec.shape), ""
        except FormatError:
            count = probe_string_count(source, offset)
            size = measure(source, offset, spec.dtype, (count,))
    else:
        return spec, measure(source, offset, spec.dtype, spec.stored_shape), ""
    if count == spec.shape[0]:
        return spec, size, ""
    return (dataclasses.replace(spec, shape=(count,)), size,
            f"{spec.key}: {count} element(s) in this checkpoint's bytes (the layout said {spec.shape[0]}); "
            "verified by in-band checksums")


def _attach_savedmodel_fingerprint(ctx: OrphanContext, layout: Layout) -> None:
    """A SavedModel's variables get the exact fingerprint check whichever source gave the layout."""
    if layout.expected_fingerprint is not None:
        return
    from .sources.savedmodel import attach_fingerprint, savedmodel_dir_of

    export_dir = savedmodel_dir_of(ctx.prefix)
    if export_dir is not None:
        attach_fingerprint(ctx.fs, export_dir, layout)


def check_counter(ctx: OrphanContext, plan: RebuildPlan) -> str | None:
    """Where the name carries a step and the layout a counter, read it: a refusal reason or None.

    `CheckpointManager.save()` names ckpt-N after save_counter unless given checkpoint_number, so a
    mismatch alone is only a note; it refuses when the sibling the layout came from obeyed the rule.
    """
    step = step_of(ctx.prefix)
    if step is None:
        return None
    for placed in plan.placed:
        if placed.spec.key not in COUNTER_KEYS or placed.spec.slice or placed.spec.shape != ():
            continue
        shard = placed.spec.shard
        value = read_counter(ctx.fs, plan.shard_paths[shard], placed.offset, placed.spec.dtype)
        if value is None:
            continue
        name = placed.spec.key.split("/")[0]
        if value == step:
            plan.checks.append(f"{name} = {value}, the step in the name")
            return None
        plan.checks.append(f"note: {name} = {value} while the name says {step} (runs that pass "
                           "checkpoint_number= name files by step)")
        if plan.layout.origin and _origin_obeys_naming(plan.layout.origin, placed.spec.key):
            return (f"{name} is {value} but the name says {step}, while {plan.layout.source} follows that naming: "
                    "this data is not the checkpoint its name claims")
    return None


COUNTER_KEYS = ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", "global_step", "global_step/.ATTRIBUTES/VARIABLE_VALUE")


def read_counter(fs, path: str, offset: int, dtype_number: int) -> int | None:
    fmt = {"int64": "<q", "int32": "<i"}.get(dtype(dtype_number).name)
    if fmt is None:
        return None
    with storage.open_source(fs, path) as source:
        raw = source.read_at(offset, struct.calcsize(fmt))
    return struct.unpack(fmt, raw)[0] if len(raw) == struct.calcsize(fmt) else None


def _origin_obeys_naming(origin: tuple, key: str) -> bool:
    """Does the checkpoint a layout came from hold counter == step? Read once per process per origin."""
    fs, prefix = origin
    cache_key = (getattr(fs, "_fs_token", id(fs)), prefix, key)
    return _obeys_naming.get_or_compute(cache_key, lambda: _read_origin_counter(fs, prefix, key) == step_of(prefix))


_obeys_naming = SharedCache(4096)   # shared by the SDK harness's threads


def _read_origin_counter(fs, prefix: str, key: str) -> int | None:
    from .sources.sibling import read_index_cached

    try:
        index = read_index_cached(fs, prefix + ".index")
        entry = index.entries.get(key.encode())
        if entry is None:
            return None
        path = data_filename(prefix, entry.shard_id, index.header.num_shards)
        return read_counter(fs, path, entry.offset, entry.dtype)
    except (FormatError, OSError):
        return None


def prepare(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False) -> "RebuildPlan | RebuildOutcome":
    """Choose the first layout that fits the orphan's bytes; or an unrecoverable outcome with why."""
    refusals, fitted = [], []
    for candidate in candidate_layouts(ctx, sources):
        if isinstance(candidate, Refusal):
            refusals.append(candidate)
            continue
        plan = fit(ctx, candidate)
        if isinstance(plan, Refusal):
            refusals.append(plan)
            continue
        reason = check_counter(ctx, plan)
        if reason:
            refusals.append(Refusal(candidate.source, reason))
            continue
        fitted.append(plan)
        if candidate.kind in ("part-index", "sibling", "template", "savedmodel", "meta-graph"):
            break  # an exact source of this run: no need to look further
        if len({p.layout.source for p in fitted}) > 1:
            break
    if not fitted:
        return unrecoverable(ctx.display_prefix, refusals)
    if len(fitted) > 1 and fitted[0].layout.kind == "registry":
        different = _differing_keys(fitted[0], fitted[1])
        if different:
            names = ", ".join(p.layout.source for p in fitted)
            return unrecoverable(ctx.display_prefix, refusals, f"ambiguous: {names} all fit these bytes but disagree "
                                 f"on {different}; pass --arch NAME to choose")
    plan = fitted[0]
    plan.refusals = refusals
    plan.allow_nonfinite = allow_nonfinite
    return plan


def _differing_keys(a: RebuildPlan, b: RebuildPlan) -> str:
    left = [(p.spec.key, p.spec.dtype, p.spec.stored_shape, p.offset) for p in a.placed]
    right = [(p.spec.key, p.spec.dtype, p.spec.stored_shape, p.offset) for p in b.placed]
    if left == right:
        return ""
    diffs = [x[0] for x, y in zip(left, right) if x != y]
    return ", ".join(diffs[:3]) or "the tensor count"


def unrecoverable(display_prefix: str, refusals: list, reason: str = "") -> RebuildOutcome:
    if not reason:
        if not refusals:
            reason = ("no source of truth found: no part index, no healthy sibling, no SavedModel or .meta graph, "
                      "and no registered architecture; register one with `ckpt-rescue register NAME "
                      "--from-checkpoint PREFIX` or pass --template PREFIX")
        else:
            reason = "no source fits: " + " | ".join(str(r) for r in refusals[:4])
            if len(refusals) > 4:
                reason += f" | ... ({len(refusals) - 4} more)"
    return RebuildOutcome(display_prefix, UNRECOVERABLE, reason, refusals=refusals)


SPLIT_ALIGN = 64  # split points sit a multiple of this past a tensor's start, so no element is cut


def split_ranges(plan: RebuildPlan, max_range_bytes: int) -> list:
    """(shard, start, end) ranges of at most about `max_range_bytes`; never cutting a string or variant."""
    ranges = []
    for shard, size in enumerate(plan.shard_sizes):
        tensors = [p for p in plan.placed if p.spec.shard == shard]
        start = 0
        while size - start > max_range_bytes:
            target = start + max_range_bytes
            cut = _cut_point(tensors, target)
            if cut <= start:
                break
            ranges.append((shard, start, cut))
            start = cut
        ranges.append((shard, start, size))
    return ranges


def _cut_point(tensors: list, target: int) -> int:
    for placed in tensors:
        if placed.offset <= target < placed.offset + placed.size:
            if placed.spec.dtype in (DT_STRING, DT_VARIANT):
                return placed.offset + placed.size
            return placed.offset + (target - placed.offset) // SPLIT_ALIGN * SPLIT_ALIGN
    return target


def checksum_range(fs, plan: RebuildPlan, shard: int, start: int, end: int, chunk_size: int = DEFAULT_CHUNK,
                   on_bytes=None) -> RangeChecksums:
    """Stream one byte range of one shard, checksumming the part of every tensor inside it."""
    spans, indexes = [], []
    for i, placed in enumerate(plan.placed):
        if placed.spec.shard == shard and placed.offset < end and placed.offset + placed.size > start:
            summer = checksummer(placed.spec.dtype, placed.spec.stored_shape,
                                 min(end, placed.offset + placed.size) - max(start, placed.offset)
                                 if placed.spec.dtype not in (DT_STRING, DT_VARIANT) else None)
            spans.append((placed.offset, placed.size, summer))
            indexes.append(i)
    pieces, error = [], ""
    with storage.open_source(fs, plan.shard_paths[shard], plan.shard_sizes[shard]) as source:
        try:
            scan_spans(source, spans, chunk_size, start, end, on_bytes)
        except FormatError as exc:
            error = f"shard {shard} bytes {start}-{end}: {exc}"
    for i, (offset, size, summer) in zip(indexes, spans):
        if not summer.done and not error:
            error = f"tensor {plan.placed[i].spec.describe()} ended early at byte {offset + summer.consumed}"
        length = min(end, offset + size) - max(start, offset)
        pieces.append((i, summer.crc, length, getattr(summer, "nonfinite", 0)))
    return RangeChecksums(shard, start, end, pieces, error)


def build_entries(plan: RebuildPlan, crcs: list) -> dict:
    """Index entries exactly as BundleWriter + MergeBundles produce them for this placement."""
    entries = {}
    for placed, raw_crc in zip(plan.placed, crcs):
        spec = placed.spec
        entry = BundleEntry(spec.dtype, tuple(spec.stored_shape), spec.shard, placed.offset, placed.size,
                            crc_mask(raw_crc))
        if spec.slice is None:
            entries[spec.key] = entry
            continue
        entries[encode_slice_key(spec.key, spec.slice)] = entry
        full = entries.get(spec.key)
        if full is None:
            # MergeBundles gives the full entry the shard where the tensor was first seen.
            full = entries[spec.key] = BundleEntry(spec.dtype, tuple(spec.shape), spec.shard, slices=())
        full.slices = full.slices + (spec.slice,)
    return entries


def finalize(plan: RebuildPlan, ranges: list) -> RebuildOutcome:
    """Join range checksums, build the index, read it back, and refuse on any failed check."""
    errors = [r.error for r in ranges if r.error]
    if errors:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE,
                              f"{plan.layout.source} placed a string/variant tensor where its in-band checksum "
                              f"fails: {errors[0]}", plan.layout.source, checks=plan.checks, refusals=plan.refusals,
                              bytes_scanned=_scanned(ranges))
    pieces: dict[int, list] = {}
    for rng in sorted(ranges, key=lambda r: (r.shard, r.start)):
        for i, raw, length, nonfinite in rng.pieces:
            pieces.setdefault(i, []).append((raw, length, nonfinite))
    crcs, nonfinite = [], []
    for i, placed in enumerate(plan.placed):
        parts = pieces.get(i)
        if parts is None:
            if placed.size:
                return RebuildOutcome(plan.display_prefix, UNRECOVERABLE, f"no checksum for {placed.spec.describe()}",
                                      plan.layout.source, checks=plan.checks, refusals=plan.refusals)
            parts = [(0, 0, 0)]
        raw = parts[0][0]
        for more, length, _ in parts[1:]:
            raw = crc_combine(raw, more, length)
        crcs.append(raw)
        bad = sum(p[2] for p in parts)
        if bad:
            nonfinite.append(f"{placed.spec.key} ({bad} Inf/NaN)")
    checks = list(plan.checks)
    if nonfinite and not plan.allow_nonfinite:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE,
                              f"{plan.layout.source} fits the sizes but reads non-finite floats in {len(nonfinite)} "
                              f"tensor(s): {', '.join(nonfinite[:3])}; a misplaced layout looks like this. If the run "
                              "really diverged, rebuild with --allow-nonfinite", plan.layout.source, checks=checks,
                              refusals=plan.refusals, bytes_scanned=_scanned(ranges))
    checks.append("every float tensor is finite" if not nonfinite else f"non-finite floats allowed: {nonfinite[:3]}")
    strings = sum(1 for p in plan.placed if p.spec.dtype in (DT_STRING, DT_VARIANT))
    if strings:
        checks.append(f"in-band checksums of {strings} string/variant tensor(s) verify at their offsets")
    header = BundleHeader(num_shards=plan.layout.num_shards)
    entries = build_entries(plan, crcs)
    index_bytes = write_index(header, entries)
    reread = read_index(index_bytes)
    if {k: e.encode() for k, e in reread.entries.items()} != {
            (k.encode() if isinstance(k, str) else k): e.encode() for k, e in entries.items()}:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE, "the built index does not read back as written",
                              plan.layout.source, checks=checks, refusals=plan.refusals)
    checks.append(f"index reads back: {len(reread.entries)} entries, {len(index_bytes)} bytes")
    if plan.layout.expected_fingerprint is not None:
        import farmhash

        actual, expected = farmhash.fingerprint64(index_bytes), plan.layout.expected_fingerprint
        if actual != expected:
            return RebuildOutcome(plan.display_prefix, UNRECOVERABLE,
                                  f"fingerprint.pb says the true index hashes to {expected:#018x} but the rebuilt "
                                  f"one hashes to {actual:#018x}", plan.layout.source, checks=checks,
                                  refusals=plan.refusals)
        checks.append(f"Fingerprint64 equals fingerprint.pb's checkpoint_hash ({actual:#018x}): exact")
    return RebuildOutcome(plan.display_prefix, REBUILT, f"rebuilt from {plan.layout.source}", plan.layout.source,
                          index_bytes, checks, plan.refusals, _scanned(ranges))


def _scanned(ranges: list) -> int:
    return sum(r.end - r.start for r in ranges)


def rebuild(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False, on_bytes=None) -> RebuildOutcome:
    """All three phases in this process, one sequential pass per data file."""
    plan = prepare(ctx, sources, allow_nonfinite)
    if isinstance(plan, RebuildOutcome):
        return plan
    ranges = [checksum_range(ctx.fs, plan, shard, 0, size, on_bytes=on_bytes)
              for shard, size in enumerate(plan.shard_sizes)]
    return finalize(plan, ranges)
