"""Rebuild a lost index: choose a layout, fit it to the orphan's bytes, checksum, build, verify.

Three phases so a pipeline can spread one huge orphan over several workers:
  prepare(ctx)                       -> RebuildPlan (cheap reads) or an unrecoverable RebuildOutcome
  checksum_range(fs, plan, shard, start, end) -> RangeChecksums (the heavy streaming part)
  finalize(plan, [RangeChecksums])   -> RebuildOutcome with the index bytes, or a refusal
`rebuild(ctx)` runs all three in one process.
"""

import dataclasses
import shlex
import struct
from dataclasses import dataclass, field

from tfbundle import (
    DT_STRING,
    DT_VARIANT,
    OBJECT_GRAPH_KEY,
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
from tfbundle.object_graph import parse_object_graph
from tfbundle.scan import DEFAULT_CHUNK
from tfbundle.tensors import checksummer, count_variant_elements, probe_string_count
from tfbundle.varint import decode_varint

from . import storage, zeros
from .caches import SharedCache
from .context import step_of
from .evidence import MAX_MATCHED_KEYS, Evidence, compare_object_graphs, shape_ambiguity
from .layout import Layout, Refusal, TensorSpec, reference_key
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
    cannot_confirm: list = field(default_factory=list)  # what the data and the sources cannot tell, in words
    # (key, slice) -> [(size, masked crc, source)]: CRCs the agreeing sources hold for the same tensors
    references: dict = field(default_factory=dict)
    allow_zeros: bool = False


@dataclass
class RangeChecksums:
    shard: int
    start: int
    end: int
    pieces: list        # (tensor index in plan.placed, raw crc32c of its bytes within the range, length, nonfinite)
    error: str = ""     # an in-band checksum that failed, a short read
    zero_runs: list = field(default_factory=list)     # (start, end) zero runs, see zeros.ZeroScanner.runs
    zero_tensors: list = field(default_factory=list)  # indexes in plan.placed whose bytes in the range are all zero


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
    evidence: Evidence | None = None  # what confirmed the layout and data, what cannot be confirmed


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
    """Every layout and refusal the sources offer, best source first.

    A source the user chose (--template, --arch) comes first; the sources that carry the model's
    declared shapes still cross-check it.
    """
    if sources is None and (ctx.template or ctx.arch):
        sources = _chosen_sources(ctx)
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


def _chosen_sources(ctx: OrphanContext) -> list:
    """--template or --arch first, then the checkpoint's own SavedModel and .meta, as cross-checks.

    Not the registry under --template, nor siblings under --arch: those are what the user chose
    between when sources disagreed.
    """
    from .sources.sibling import sibling_layouts

    own = [s for s in default_sources() if s.__name__ in ("savedmodel_layouts", "meta_graph_layouts")]
    if ctx.template:
        return [sibling_layouts] + own
    return [s for s in default_sources() if s.__name__ == "registry_layouts"] + own


# Sources whose shapes are the model's own declaration, not what one other checkpoint happened to hold.
DECLARED_SHAPE_KINDS = ("savedmodel", "meta-graph", "registry")
COUNTER_KEYS = ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", "global_step", "global_step/.ATTRIBUTES/VARIABLE_VALUE")
SAVE_COUNTER = COUNTER_KEYS[0]
RUN_SIBLINGS_READ = 2


def check_counter(ctx: OrphanContext, plan: RebuildPlan) -> str | None:
    """Where the name carries a step and the data a counter, compare them: a refusal reason or None.

    The same rule whatever source gave the layout (a sibling, --template, a registered layout):
    - TF1 Savers name `model.ckpt-N` after the global_step they are given: a global_step that
      contradicts the name refuses, unless the run's other checkpoints disagree with their names too
      (a run that names by epoch).
    - TF2 `CheckpointManager` names ckpt-N after save_counter unless given checkpoint_number=, so a
      mismatch refuses only when another checkpoint of the same run obeys the naming.
    - An asynchronous TF2 save stores save_counter = 0 whatever the step: accepted, with a note,
      unless another checkpoint of the same run holds a counter equal to its step.
    """
    step = step_of(ctx.prefix)
    if step is None:
        return None
    counters = _orphan_counters(ctx, plan)
    if not counters:
        plan.cannot_confirm.append(f"the step {step} in the name: the data holds no save_counter or global_step "
                                   "to compare it with")
        return None
    for key, value in counters:
        if value == step:
            plan.checks.append(f"{_counter_name(key)} = {value}, the step in the name")
            return None
    shown = ", ".join(f"{_counter_name(k)} = {v}" for k, v in counters)
    obeying, disobeying = _run_naming(ctx, [k for k, _ in counters])
    unknown_step = f"the step: {shown} while the name says {step}; nothing else in the data says which step this is"
    if ctx.object_graph is None:   # TF1 Saver data
        if disobeying and not obeying:
            plan.checks.append(f"note: {shown} while the name says {step}, as in {disobeying[0]} of the same run "
                               "(a run that names its checkpoints by something else)")
            plan.cannot_confirm.append(unknown_step)
            return None
        also = f"; {obeying[0]} of the same run holds its own step" if obeying else ""
        return (f"{shown} but the name says {step}: a TF1 Saver names model.ckpt-N after the global_step it saves, so "
                f"this data is not the checkpoint its name claims (damaged, zeroed or mixed up){also}")
    values = dict(counters)
    if values.get(SAVE_COUNTER) == 0:
        if obeying:
            return (f"save_counter is 0 but the name says {step}, while {obeying[0]} of the same run holds its own "
                    "step: asynchronous saves store 0 in every checkpoint of a run, so this data is not the "
                    "checkpoint its name claims")
        plan.checks.append(f"note: save_counter = 0 while the name says {step}: asynchronous saves "
                           "(CheckpointOptions(experimental_enable_async_checkpoint=True)) store 0 whatever the step")
        plan.cannot_confirm.append(f"the step: save_counter is 0, as an asynchronous save stores it; nothing else in "
                                   f"the data says this is step {step}")
        return None
    if obeying:
        return (f"{shown} but the name says {step}, while {obeying[0]} of the same run holds its own step: this data "
                "is not the checkpoint its name claims")
    plan.checks.append(f"note: {shown} while the name says {step} (runs that pass checkpoint_number= name files by "
                       "step)")
    plan.cannot_confirm.append(unknown_step)
    return None


def _counter_name(key: str) -> str:
    return key.split("/")[0]


def _orphan_counters(ctx: OrphanContext, plan: RebuildPlan) -> list:
    """(key, value) of every scalar step counter in the orphan's data, in COUNTER_KEYS order."""
    found = []
    for key in COUNTER_KEYS:
        for placed in plan.placed:
            spec = placed.spec
            if spec.key == key and not spec.slice and spec.shape == ():
                value = read_counter(ctx.fs, plan.shard_paths[spec.shard], placed.offset, spec.dtype)
                if value is not None:
                    found.append((key, value))
    return found


def _run_naming(ctx: OrphanContext, keys: list) -> tuple[list, list]:
    """The nearest healthy checkpoints of the same run (same name stem, same directory): those whose
    counter equals the step in their name, and those whose counter does not. Cached per process."""
    own = ctx.prefix.rsplit("/", 1)[-1]
    stem = own.rsplit("-", 1)[0]
    step = step_of(ctx.prefix)
    from .sources.sibling import indexed_siblings

    others = []
    for prefix, _ in indexed_siblings(ctx):
        leaf = prefix.rsplit("/", 1)[-1]
        other_step = step_of(prefix)
        if other_step is not None and leaf.rsplit("-", 1)[0] == stem:
            others.append((abs(other_step - step), -other_step, prefix))
    obeying, disobeying = [], []
    for _, _, prefix in sorted(others)[:RUN_SIBLINGS_READ]:
        values = [v for v in (_origin_counter(ctx.fs, prefix, key) for key in keys) if v is not None]
        if not values:
            continue
        label = prefix.rsplit("/", 1)[-1]
        (obeying if step_of(prefix) in values else disobeying).append(label)
    return obeying, disobeying


def read_counter(fs, path: str, offset: int, dtype_number: int) -> int | None:
    fmt = {"int64": "<q", "int32": "<i"}.get(dtype(dtype_number).name)
    if fmt is None:
        return None
    with storage.open_source(fs, path) as source:
        raw = source.read_at(offset, struct.calcsize(fmt))
    return struct.unpack(fmt, raw)[0] if len(raw) == struct.calcsize(fmt) else None


def _origin_counter(fs, prefix: str, key: str) -> int | None:
    """The counter a healthy checkpoint holds under `key`. Read once per process per checkpoint."""
    cache_key = (getattr(fs, "_fs_token", id(fs)), prefix, key)
    return _counters.get_or_compute(cache_key, lambda: _read_origin_counter(fs, prefix, key))


_counters = SharedCache(4096)   # shared by the SDK harness's threads


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


def check_object_graph(ctx: OrphanContext, plan: RebuildPlan, layouts: list) -> str | None:
    """The orphan's object graph against every graph a source knows: a refusal reason or None.

    A rebuilt index would give a damaged graph a valid CRC, so a graph that differs from a
    reference is refused, unless the difference is one TensorFlow makes itself (see
    evidence.compare_object_graphs), which is then named.
    """
    graph = ctx.graph_tensor
    if graph is None:
        return _unreadable_graph(ctx, plan)
    checked, identical = False, []
    for layout in layouts:
        reference = layout.reference_crcs.get((OBJECT_GRAPH_KEY, None))
        if reference is None:
            continue
        checked = True
        size, crc = reference
        if (size, crc) == (graph.size, graph.masked_crc):
            identical.append(layout.source)
            continue
        payload = layout.reference_graph if layout.reference_graph is not None else _reference_graph(layout)
        if payload is None:
            return (f"the object graph ({graph.size} bytes, CRC {graph.masked_crc:#010x}) differs from the one "
                    f"{layout.source} holds ({size} bytes, CRC {crc:#010x}): damaged data or another model; a rebuilt "
                    "index would bless it with a fresh CRC")
        difference = compare_object_graphs(payload, graph.payload)
        if difference is None:
            difference_where = "the same payload under a different CRC: the reference's own bytes are damaged"
            return f"the object graph cannot be checked against {layout.source}: {difference_where}"
        if not difference.legitimate:
            return (f"the object graph differs from the one {layout.source} holds, at {difference.where}: damaged data "
                    "or another model; a rebuilt index would bless it with a fresh CRC")
        plan.checks.append(f"object graph equals the one {layout.source} holds except where TensorFlow itself makes "
                           f"them differ: {difference.where}")
        plan.cannot_confirm.append(f"the object graph's variable names ({difference.where}): no reference holds "
                                   "these exact bytes")
    if identical:
        holds = "holds" if len(identical) == 1 else "hold"
        plan.checks.append(f"object graph identical to the one {' and '.join(identical)} {holds} "
                           f"({graph.size} bytes, CRC {graph.masked_crc:#010x})")
    if not checked and plan.layout.expected_fingerprint is None:
        plan.cannot_confirm.append("the object graph's bytes: no source holds a CRC or a copy of this graph")
    return None


def _unreadable_graph(ctx: OrphanContext, plan: RebuildPlan) -> str | None:
    """A TF2 layout ends the data with its object graph; where no graph could be read, why: or None (TF1).

    Every TF2 save writes a parseable TrackableObjectGraph as its last tensor, so one that does not
    parse at the place the layout puts it is damage (a flipped bit in a tag or a length), not a
    difference any source could explain.
    """
    placed = next((p for p in plan.placed if p.spec.key == OBJECT_GRAPH_KEY and not p.spec.slice), None)
    if placed is None:
        return None
    where = f"{placed.size} bytes at byte {placed.offset} of shard {placed.spec.shard}"
    try:
        with storage.open_source(ctx.fs, plan.shard_paths[placed.spec.shard]) as source:
            raw = source.read_at(placed.offset, placed.size)
        length, start = decode_varint(raw, 0)
        payload = raw[start + 4:start + 4 + length]
        if len(payload) != length:
            raise FormatError(f"its length field says {length} bytes but {len(payload)} follow")
        parse_object_graph(payload)
    except FormatError as exc:
        return (f"{plan.layout.source} puts the object graph at the end of the data ({where}), but those bytes do not "
                f"read as one ({exc}): damaged data; a rebuilt index would bless it with a fresh CRC")
    return (f"{plan.layout.source} puts the object graph at the end of the data ({where}) and it parses there, but "
            "the search from the end of the file did not find it; refusing rather than guessing")


def _reference_graph(layout: Layout) -> bytes | None:
    """The object-graph payload of the healthy checkpoint a layout came from (one small read)."""
    if not layout.origin:
        return None
    from .sources.sibling import read_index_cached

    fs, prefix = layout.origin
    try:
        index = read_index_cached(fs, prefix + ".index")
        entry = index.entries.get(OBJECT_GRAPH_KEY.encode())
        if entry is None:
            return None
        path = data_filename(prefix, entry.shard_id, index.header.num_shards)
        with storage.open_source(fs, path) as source:
            raw = source.read_at(entry.offset, entry.size)
        length, start = decode_varint(raw, 0)
        payload = raw[start + 4:start + 4 + length]
        return payload if len(payload) == length else None
    except (FormatError, OSError):
        return None


def prepare(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False,
            allow_zeros: bool = False) -> "RebuildPlan | RebuildOutcome":
    """Fit every source that applies and cross-check them; the first that fits gives the layout.

    A part index is exact for its own save and ends the search. Otherwise every layout that fits
    must agree on keys, dtypes, shapes and order with the others, or nothing is rebuilt: the data
    holds sizes, not shapes, so two fitting sources that disagree cannot be told apart by it.
    """
    refusals, fitted = [], []
    ctx.fitted_sources = []
    for candidate in candidate_layouts(ctx, sources):
        if isinstance(candidate, Refusal):
            refusals.append(candidate)
            continue
        plan = fit(ctx, candidate)
        if isinstance(plan, Refusal):
            refusals.append(plan)
            continue
        fitted.append(plan)
        ctx.fitted_sources.append(candidate.source)
        if candidate.kind == "part-index":
            break  # the index of these very bytes: nothing can improve on it
    if not fitted:
        return unrecoverable(ctx.display_prefix, refusals)
    plan = fitted[0]
    partial = Evidence(confirmed=list(plan.checks), cannot_confirm=[])
    disagreement = _first_disagreement(fitted)
    if disagreement:
        return unrecoverable(ctx.display_prefix, refusals, disagreement, partial)
    _cross_checked(plan, fitted)
    for reason in (check_object_graph(ctx, plan, [p.layout for p in fitted]), check_counter(ctx, plan)):
        if reason:
            refusals.append(Refusal(plan.layout.source, reason))
            partial = Evidence(confirmed=_confirmations(plan.checks), cannot_confirm=list(plan.cannot_confirm))
            return unrecoverable(ctx.display_prefix, refusals, f"{plan.layout.source} fits, but {reason}", partial)
    for other in fitted:
        for spec_key, (size, crc) in other.layout.reference_crcs.items():
            plan.references.setdefault(spec_key, []).append((size, crc, other.layout.source))
    for note in [*plan.layout.notes, *ctx.notes]:
        if note not in plan.cannot_confirm:
            plan.cannot_confirm.append(note)
    plan.refusals = refusals
    plan.allow_nonfinite = allow_nonfinite
    plan.allow_zeros = allow_zeros
    return plan


def _first_disagreement(fitted: list) -> str:
    """Why the fitted layouts cannot all be right, naming both sources and the first differing tensors; or ""."""
    first = fitted[0]
    for other in fitted[1:]:
        different = _differing_keys(first, other)
        if not different:
            continue
        prefix = shlex.quote(first.prefix if not first.display_prefix else first.display_prefix)
        choices = [f"`ckpt-rescue rebuild {prefix} {c}`" for c in (_choice(first.layout), _choice(other.layout)) if c]
        hint = f": if one is the model's, rebuild with {' or '.join(choices)}" if choices else ""
        return (f"sources disagree: {first.layout.source} and {other.layout.source} both fit these bytes but describe "
                f"{different}; the data holds sizes, not shapes, so it cannot tell which is right{hint}")
    return ""


def _choice(layout: Layout) -> str:
    """The option that makes `layout` the chosen source (cross-checked then only against the
    checkpoint's own SavedModel or .meta), or "" for those."""
    if layout.kind in ("sibling", "template") and layout.origin:
        fs, prefix = layout.origin
        return f"--template {storage.display(fs, prefix)}"
    if layout.kind == "registry" and "`" in layout.source:
        return f"--registry FILE --arch {layout.source.split('`')[1]}"
    return ""


def _cross_checked(plan: RebuildPlan, fitted: list) -> None:
    """Say which sources agree, and what the data cannot tell when no source declares the shapes."""
    sources = list(dict.fromkeys(p.layout.source for p in fitted))
    if len(sources) > 1:
        plan.checks.append(f"{len(sources)} sources agree on every key, dtype, shape and offset: {', '.join(sources)}")
    kinds = {p.layout.kind for p in fitted}
    declared = [p.layout.source for p in fitted if p.layout.kind in DECLARED_SHAPE_KINDS
                and not (p.layout.kind == "meta-graph" and p.layout.origin)]   # another step's .meta: not this one's
    if declared:
        plan.checks.append(f"shapes as the model declares them ({declared[0]})")
    elif "part-index" not in kinds:
        ambiguity = shape_ambiguity(plan.placed, " and ".join(sources))
        if ambiguity:
            plan.cannot_confirm.append(ambiguity)


def _confirmations(checks: list) -> list:
    return [c for c in checks if not c.startswith("note:")]


def _differing_keys(a: RebuildPlan, b: RebuildPlan) -> str:
    """"" when both place the same tensors at the same offsets; else the first differences, both ways."""
    def placement(p):
        return (p.spec.key, p.spec.dtype, p.spec.shape, p.spec.slice, p.spec.shard, p.offset, p.size)

    if [placement(p) for p in a.placed] == [placement(p) for p in b.placed]:
        return ""
    diffs = [(x, y) for x, y in zip(a.placed, b.placed) if placement(x) != placement(y)][:2]
    if not diffs:
        return f"{len(a.placed)} and {len(b.placed)} tensors"
    return "; ".join(f"{x.spec.describe()} at byte {x.offset} vs {y.spec.describe()} at byte {y.offset}"
                     for x, y in diffs)


NO_SOURCE = ("no source of truth found: no part index, no healthy sibling, no SavedModel or .meta graph, and no "
             "registered architecture")


def no_source_hint(display_prefix: str, command: str) -> str:
    """What a person can do when nothing describes the layout; each command offers only its own flags."""
    if command == "audit":
        return (f"to fix: `ckpt-rescue rebuild {shlex.quote(display_prefix)} --template HEALTHY_PREFIX` with a "
                "healthy checkpoint of the same model, or register the model once (`ckpt-rescue register NAME "
                "--from-checkpoint HEALTHY_PREFIX --registry FILE`) and re-run the audit with --registry FILE")
    return ("to fix: pass --template HEALTHY_PREFIX (a healthy checkpoint of the same model), or register the model "
            "once with `ckpt-rescue register NAME --from-checkpoint HEALTHY_PREFIX` and run this rebuild again")


def unrecoverable(display_prefix: str, refusals: list, reason: str = "", evidence: Evidence | None = None
                  ) -> RebuildOutcome:
    if not reason:
        if not refusals:
            reason = NO_SOURCE   # the fix depends on the command that was run: see no_source_hint()
        else:
            reason = "no source fits: " + " | ".join(str(r) for r in refusals[:4])
            if len(refusals) > 4:
                reason += f" | ... ({len(refusals) - 4} more)"
    return RebuildOutcome(display_prefix, UNRECOVERABLE, reason, refusals=refusals, evidence=evidence)


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
    """Stream one byte range of one shard, checksumming the part of every tensor inside it, and
    noting zero runs and all-zero tensors on the way (recovery/zeros.py says why)."""
    spans, indexes = [], []
    scanner = zeros.ZeroScanner(start, end)
    for i, placed in enumerate(plan.placed):
        if placed.spec.shard == shard and placed.offset < end and placed.offset + placed.size > start:
            summer = checksummer(placed.spec.dtype, placed.spec.stored_shape,
                                 min(end, placed.offset + placed.size) - max(start, placed.offset)
                                 if placed.spec.dtype not in (DT_STRING, DT_VARIANT) else None)
            spans.append((placed.offset, placed.size, zeros.ZeroWatch(summer, scanner)))
            indexes.append(i)
    pieces, error = [], ""
    with storage.open_source(fs, plan.shard_paths[shard], plan.shard_sizes[shard]) as source:
        try:
            scan_spans(source, spans, chunk_size, start, end, on_bytes, scanner.feed)
        except FormatError as exc:
            error = f"shard {shard} bytes {start}-{end}: {exc}"
    for i, (offset, size, summer) in zip(indexes, spans):
        if not summer.done and not error:
            error = f"tensor {plan.placed[i].spec.describe()} ended early at byte {offset + summer.consumed}"
        length = min(end, offset + size) - max(start, offset)
        pieces.append((i, summer.crc, length, getattr(summer, "nonfinite", 0)))
    zero_tensors = [i for i, (_, _, summer) in zip(indexes, spans) if summer.all_zero]
    return RangeChecksums(shard, start, end, pieces, error, scanner.runs(), zero_tensors)


def checksum_whole(fs, plan: RebuildPlan, on_bytes=None) -> list:
    """Every data file as one range, in this process."""
    return [checksum_range(fs, plan, shard, 0, size, on_bytes=on_bytes) for shard, size in enumerate(plan.shard_sizes)]


def portable(plan: RebuildPlan) -> RebuildPlan:
    """The plan as it travels to other workers: without the source's filesystem object (each worker
    opens its own from the URL it was given) and without what only prepare() reads (the source's
    object graph; its CRCs are in plan.references)."""
    layout = dataclasses.replace(plan.layout, origin=None, reference_graph=None, reference_crcs={})
    return dataclasses.replace(plan, layout=layout)


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
    refused = _judge_zeros(plan, ranges, checks)
    if refused:
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE, refused, plan.layout.source, checks=checks,
                              refusals=plan.refusals, bytes_scanned=_scanned(ranges))
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
    matched, mismatched = reference_matches(plan, crcs)
    if plan.layout.kind == "part-index" and mismatched:
        placed = plan.placed[mismatched[0]]
        return RebuildOutcome(plan.display_prefix, UNRECOVERABLE,
                              f"{len(mismatched)} tensor(s) do not match the CRC {plan.layout.source} recorded for "
                              f"these very bytes, first {placed.spec.describe()} at byte {placed.offset} of shard "
                              f"{placed.spec.shard}: the data was damaged after it was written", plan.layout.source,
                              checks=checks, refusals=plan.refusals, bytes_scanned=_scanned(ranges),
                              evidence=_evidence(plan, checks, matched))
    if plan.layout.expected_fingerprint is not None:
        import farmhash

        actual, expected = farmhash.fingerprint64(index_bytes), plan.layout.expected_fingerprint
        if actual != expected:
            return RebuildOutcome(plan.display_prefix, UNRECOVERABLE,
                                  f"fingerprint.pb says the true index hashes to {expected:#018x} but the rebuilt "
                                  f"one hashes to {actual:#018x}", plan.layout.source, checks=checks,
                                  refusals=plan.refusals, evidence=_evidence(plan, checks, matched))
        checks.append(f"Fingerprint64 equals fingerprint.pb's checkpoint_hash ({actual:#018x}): exact, so every "
                      "tensor's CRC (the object graph's too) is the one TensorFlow wrote")
        matched = list(range(len(plan.placed)))
    evidence = _evidence(plan, checks, matched)
    return RebuildOutcome(plan.display_prefix, REBUILT, f"rebuilt from {plan.layout.source}", plan.layout.source,
                          index_bytes, checks, plan.refusals, _scanned(ranges), evidence)


def reference_matches(plan: RebuildPlan, crcs: list) -> tuple[list, list]:
    """Indexes of placed tensors whose CRC equals one a source holds for the same tensor, and of those
    whose CRC differs from every such reference."""
    matched, mismatched = [], []
    for i, (placed, raw) in enumerate(zip(plan.placed, crcs)):
        references = plan.references.get(reference_key(placed.spec))
        if not references:
            continue
        if any((size, crc) == (placed.size, crc_mask(raw)) for size, crc, _ in references):
            matched.append(i)
        else:
            mismatched.append(i)
    return matched, mismatched


def _evidence(plan: RebuildPlan, checks: list, matched: list) -> Evidence:
    total = len(plan.placed)
    evidence = Evidence(confirmed=_confirmations(checks), cannot_confirm=list(plan.cannot_confirm),
                        reference_matched=len(matched), reference_total=total,
                        matched_keys=[plan.placed[i].spec.key for i in matched[:MAX_MATCHED_KEYS]])
    by = sorted({source for i in matched for *_, source in plan.references.get(reference_key(plan.placed[i].spec), ())})
    if plan.layout.expected_fingerprint is not None and len(matched) == total:
        by = ["fingerprint.pb"]
    evidence.confirmed.append(evidence.summary() + (f" ({', '.join(by)})" if by else ""))
    if len(matched) < total:
        evidence.cannot_confirm.append(
            f"the bytes of {total - len(matched)} tensor(s) no reference CRC covers: their CRCs were computed from "
            "the bytes present, so they prove only that those bytes are well-formed (and finite), not that they "
            "are the ones TensorFlow saved")
    return evidence


def _judge_zeros(plan: RebuildPlan, ranges: list, checks: list) -> str:
    """Refusal reason for zero-filled storage (unless allowed), and the zero checks added to `checks`."""
    partial = {i for r in ranges for i in {p[0] for p in r.pieces} - set(r.zero_tensors)}
    whole = [p.spec.describe() for i, p in enumerate(plan.placed) if p.size and i not in partial]
    findings = []
    for shard, size in enumerate(plan.shard_sizes):
        runs = zeros.combine_runs([r.zero_runs for r in ranges if r.shard == shard], size)
        tensors = [(p.offset, p.size, p.spec.describe(), _row_bytes(p.spec)) for p in plan.placed
                   if p.spec.shard == shard]
        findings += zeros.judge(shard, size, runs, tensors)
    if whole:
        checks.append(f"{len(whole)} tensor(s) are entirely zero: {', '.join(whole[:8])}"
                      + (f" and {len(whole) - 8} more" if len(whole) > 8 else "")
                      + " (legitimate: initial biases, optimizer slots before the first step)")
    if not findings:
        checks.append("no zero-filled block inside a tensor, no data file of zeros")
        return ""
    described = [f.describe(plan.shard_paths[f.shard]) for f in findings]
    if plan.allow_zeros:
        checks.append(f"zeros allowed (--allow-zeros): {'; '.join(described[:3])}")
        return ""
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    return (f"{plan.layout.source} fits the sizes, but {'; '.join(described[:3])}{more}: the signature of space "
            "allocated but never written (a copy or save that did not finish). Restore the data from a good copy; "
            "if these zeros are real, rebuild with --allow-zeros")


def _row_bytes(spec: TensorSpec) -> int:
    """Bytes of one row (shape[1:]) of a rank >= 2 numeric tensor; 0 when rows do not apply."""
    shape = tuple(spec.stored_shape)
    if len(shape) < 2 or spec.dtype in (DT_STRING, DT_VARIANT):
        return 0
    elements = 1
    for dim in shape[1:]:
        elements *= dim
    return elements * (dtype(spec.dtype).itemsize or 0)


def _scanned(ranges: list) -> int:
    return sum(r.end - r.start for r in ranges)


def rebuild(ctx: OrphanContext, sources=None, allow_nonfinite: bool = False, on_bytes=None,
            allow_zeros: bool = False) -> RebuildOutcome:
    """All three phases in this process, one sequential pass per data file."""
    plan = prepare(ctx, sources, allow_nonfinite, allow_zeros)
    if isinstance(plan, RebuildOutcome):
        return plan
    return finalize(plan, checksum_whole(ctx.fs, plan, on_bytes))
