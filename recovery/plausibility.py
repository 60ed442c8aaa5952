"""Does the data look like what a layout that rests on other checkpoints alone says it holds?

A sibling's index gives shapes, dtypes and boundaries the orphan's bytes cannot show: an `[8, 8]`
tensor is the same 256 bytes as a `[64]` one, an int32 the same 4 bytes as a float32, and two
adjacent float tensors of 12 and 18 elements the same 120 bytes as ones of 10 and 20. A directory
reused after the model changed holds siblings of another architecture under the same keys. Where no
source that declares shapes agrees (a SavedModel, a .meta, the registry, this prefix's own vaulted
index, the index of these very bytes), what the data does show is used:

- a sibling whose values are unlike the orphan's: checkpoints of one run a few steps apart, even
  thousands of steps apart, are correlated element by element in their largest weights; another
  model's or another run's are not (`compare_with_siblings`, before any data is streamed; a chosen
  --template is the person's word and is not judged so);
- a float tensor whose values are mostly subnormal: the bit patterns of small integers, an integer
  tensor read as float (`judge_edges`, on the first and last bytes of each tensor, streamed);
- a boundary that splits a run of values of one distribution: the first values of a tensor that look
  like the end of the one before and unlike the rest of their own, or the reverse (`judge_edges`).
  Two values can look so by chance (a kernel's last two values near zero before a bias near zero:
  about 1 boundary in 3,000 of such unlike tensors), so where a sibling's values showed it to be of
  the same run the finding is named, not refused.

Each refuses naming the tensors. Whatever passes, every tensor whose shape, dtype or boundary rests on
other checkpoints alone is named in the evidence (`unconfirmed_layout`).
"""

import math
import shlex

import numpy as np

from tfbundle import DT_STRING, DT_VARIANT, OBJECT_GRAPH_KEY, data_filename, dtype

from .layout import reference_key
from .spot_check import read_ranges
from .tensor_roles import is_counter, is_model_weight, is_optimizer_state

MIN_ELEMENTS = 32            # fewer values than this say too little about correlation ([10, 6] has 60)
COMPARED = 8                 # the largest weights compared with each sibling
SIBLINGS_COMPARED = 3        # siblings whose values are read (the first that fit)
SAMPLE_BYTES = 16 << 10      # read from the start of each compared tensor, in both checkpoints
EDGE_BYTES = 256             # kept of each float tensor's first and last bytes while streaming
NAMED = 50                   # tensors named with dtype and shape in the evidence's line (the field names all)

_FLOAT_WORDS = {"float16": (np.dtype("<u2"), 10, 5), "bfloat16": (np.dtype("<u2"), 7, 8),
                "float32": (np.dtype("<u4"), 23, 8), "float64": (np.dtype("<u8"), 52, 11)}


def rests_on_other_checkpoints(fits: list) -> list:
    """Labels of the sources the chosen layout rests on, when every one is another checkpoint (a sibling,
    a template, a vaulted sibling); [] when a source that declares shapes or an exact one fit too."""
    if any(f.source.exact(f.layout) or f.source.declares_shapes(f.layout) or f.layout.vaulted for f in fits):
        return []
    return list(dict.fromkeys(f.layout.source for f in fits))


def layout_only(plan) -> list:
    """Indexes of the placed tensors whose shape, dtype and boundaries nothing in the data confirms:
    numeric ones (strings and variants carry in-band checksums; the object graph parses), except the
    step counters, scalars of TensorFlow's own making whose values counters.py reads."""
    return [i for i, p in enumerate(plan.placed)
            if p.spec.dtype not in (DT_STRING, DT_VARIANT) and p.spec.key != OBJECT_GRAPH_KEY
            and not (is_counter(p.spec.key) and p.spec.shape == ())]


def unconfirmed_layout(plan) -> list:
    """Keys of every tensor whose layout rests on other checkpoints alone, for the evidence."""
    return [plan.placed[i].spec.key for i in layout_only(plan)] if plan.rests_on else []


def unconfirmed_layout_line(plan, sources: list) -> str:
    """The evidence line naming every tensor whose layout rests on other checkpoints alone."""
    tensors = [plan.placed[i].spec for i in layout_only(plan)]
    if not tensors:
        return ""
    shown = next((t for t in tensors if _elements(t.stored_shape) > 1), tensors[0])
    names = ", ".join(t.describe() for t in tensors[:NAMED])
    more = (f" ... and {len(tensors) - NAMED} more (every one in the record's evidence.unconfirmed_layout)"
            if len(tensors) > NAMED else "")
    return (f"shapes taken from {' and '.join(sources)} alone for {len(tensors)} tensor(s), with their dtypes and "
            f"boundaries: the data cannot tell {_alternatives(shown.stored_shape)} ({shown.key}), a float from an "
            "integer of the same width, nor where one numeric tensor ends and the next begins, and no source that "
            f"declares shapes (a SavedModel, a .meta, the registry, this prefix's vaulted index) agrees: {names}{more}")


def _alternatives(shape: tuple) -> str:
    shape, n = list(shape), _elements(shape)
    others = []
    if len(shape) >= 2 and len(set(shape)) > 1:
        others.append(list(reversed(shape)))
    if len(shape) != 1:
        others.append([n])
    else:
        factor = next((f for f in range(int(math.isqrt(n)), 1, -1) if n % f == 0), None)
        if factor:
            others.append([factor, n // factor])
    return f"{shape} from {' or '.join(map(str, others))}" if others else f"{shape} from another shape"


def _elements(shape) -> int:
    return math.prod(shape)


# --- A sibling's values against the orphan's ------------------------------------------------------

def compare_with_siblings(ctx, plan, fits: list) -> str | None:
    """Refusal reason when every sibling read is unlike the orphan in its largest weights; else None, after
    saying what was compared. Chosen templates and vaulted siblings (their data may be gone) are not read."""
    siblings = [f.layout for f in fits if f.layout.kind == "sibling" and f.layout.origin][:SIBLINGS_COMPARED]
    compared = _largest_weights(plan)
    if not siblings or not compared:
        return None
    mine = _read_samples(ctx.fs, [(plan.shard_paths[plan.placed[i].spec.shard], plan.placed[i].offset,
                                   plan.placed[i].size) for i in compared])
    verdicts = []
    for layout in siblings:
        fs, prefix = layout.origin
        where = [layout.placements.get(reference_key(plan.placed[i].spec)) for i in compared]
        wanted = [(k, w) for k, w in zip(compared, where) if w is not None]
        try:
            theirs = _read_samples(fs, [(data_filename(prefix, shard, layout.num_shards), offset, size)
                                        for _, (shard, offset, size) in wanted])
        except FileNotFoundError:
            continue       # an index with no data beside it (a rebuilt copy written with --output): nothing to read
        scores = [(plan.placed[i].spec, _correlation(mine[compared.index(i)], sample, plan.placed[i].spec.dtype))
                  for (i, _), sample in zip(wanted, theirs)]
        scores = [(spec, r, n) for spec, (r, n) in scores if r is not None]
        if scores:
            verdicts.append((layout.source, any(r >= _threshold(n) for _, r, n in scores), scores))
    if not verdicts:
        return None
    like = [v for v in verdicts if v[1]]
    if like:
        source, _, scores = like[0]
        plan.same_run = source
        best = max(scores, key=lambda s: s[1])
        plan.checks.append(f"{source}'s values are close to this checkpoint's, as a checkpoint of the same run's are: "
                           f"{best[0].key} correlates element by element (r = {best[1]:.2f} over {best[2]} values)")
        unlike = [f"{spec.key} (r = {r:.2f})" for spec, r, n in scores if r < _threshold(n)]
        if unlike:
            plan.cannot_confirm.append(f"values unlike {source}'s while others are close: {', '.join(unlike[:4])}; "
                                       "a tensor that was re-initialized, or changed in shape and kept its size, "
                                       "looks like this: its shape rests on the sibling alone")
        for other, _, _ in verdicts:
            if other not in [v[0] for v in like]:
                plan.cannot_confirm.append(f"{other}'s values are unlike this checkpoint's: another run's?")
        return None
    source, _, scores = verdicts[0]
    shown = ", ".join(f"{spec.key} r = {r:.2f}" for spec, r, _ in scores[:3])
    others = f" (and {len(verdicts) - 1} other sibling(s) alike)" if len(verdicts) > 1 else ""
    resting = [plan.placed[i].spec.describe() for i in layout_only(plan)]
    choice = next((f.source.choice(f.layout) for f in fits if f.layout.source == source), "")
    template = (f", or if it is of this model after all, `ckpt-rescue rebuild {shlex.quote(plan.display_prefix)} "
                f"{choice}`") if choice else ""
    return (f"{source}'s values are unlike this checkpoint's{others}: its {len(scores)} largest float tensor(s) "
            f"compared element by element are uncorrelated ({shown}), as another model's or another run's are, not "
            f"those of a checkpoint of the same run. The shapes, dtypes and boundaries of {len(resting)} tensor(s) "
            f"rest on it alone ({', '.join(resting[:4])}{' ...' if len(resting) > 4 else ''}; all in the evidence), "
            "and a directory reused after the model changed holds another architecture under the same keys: rebuild "
            f"from a source that declares the shapes (--registry FILE --arch NAME, the run's SavedModel or .meta)"
            f"{template}")


def correlated_sibling(fs, path: str, placed, siblings: list) -> str:
    """Where a sibling's values of this placed float tensor correlate with the orphan's element by element,
    as a checkpoint of the same run's do: in words; else "". Bytes of another file never do. `siblings`:
    sibling Layouts with their origin; the first SIBLINGS_COMPARED that hold the tensor are read."""
    spec = placed.spec
    if _elements(spec.stored_shape) < MIN_ELEMENTS:
        return ""
    holding = [(layout, layout.placements.get(reference_key(spec))) for layout in siblings if layout.origin]
    holding = [(layout, where) for layout, where in holding if where is not None][:SIBLINGS_COMPARED]
    if not holding:
        return ""
    mine = _read_samples(fs, [(path, placed.offset, placed.size)])[0]
    for layout, (shard, offset, size) in holding:
        other_fs, prefix = layout.origin
        try:
            theirs = _read_samples(other_fs, [(data_filename(prefix, shard, layout.num_shards), offset, size)])[0]
        except FileNotFoundError:
            continue
        r, n = _correlation(mine, theirs, spec.dtype)
        if r is not None and r >= _threshold(n):
            return (f"{spec.key}'s values correlate element by element with {layout.source}'s "
                    f"(r = {r:.2f} over {n} values)")
    return ""


def _largest_weights(plan) -> list:
    only = set(layout_only(plan))
    weights = [i for i, p in enumerate(plan.placed) if i in only and is_model_weight(p.spec.key, p.spec.dtype)
               and _elements(p.spec.stored_shape) >= MIN_ELEMENTS]
    return sorted(weights, key=lambda i: -plan.placed[i].size)[:COMPARED]


def _read_samples(fs, spans: list) -> list:
    if not spans:
        return []
    return read_ranges(fs, [p for p, _, _ in spans], [o for _, o, _ in spans],
                       [o + min(size, SAMPLE_BYTES) for _, o, size in spans])


def _correlation(a: bytes, b: bytes, dtype_number: int) -> tuple:
    """(Pearson r, values) of two samples of one float tensor; (None, 0) when they say nothing."""
    x, y = float_values(a, dtype_number), float_values(b, dtype_number)
    n = min(len(x), len(y))
    if n < MIN_ELEMENTS:
        return None, 0
    x, y = x[:n], y[:n]
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or x.std() == 0 or y.std() == 0:
        return None, 0
    return float(np.corrcoef(x, y)[0, 1]), n


def _threshold(n: int) -> float:
    """Correlation that unrelated values reach by chance about once in 30,000 (four standard errors)."""
    return max(0.1, 4 / math.sqrt(n))


def float_values(raw: bytes, dtype_number: int) -> np.ndarray:
    """The float values of `raw` as float64 (bfloat16 widened through its float32 bits)."""
    name = dtype(dtype_number).name
    if name not in _FLOAT_WORDS:
        return np.zeros(0)
    word = _FLOAT_WORDS[name][0]
    words = np.frombuffer(raw[:len(raw) - len(raw) % word.itemsize], dtype=word)
    if name == "bfloat16":
        return (words.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return words.view({2: "<f2", 4: "<f4", 8: "<f8"}[word.itemsize]).astype(np.float64)


# --- What the streamed edges of each float tensor show ---------------------------------------------

class EdgeSample:
    """Wraps a tensor's checksummer in one byte range and keeps the first and last EDGE_BYTES it was fed."""

    def __init__(self, inner):
        self._inner = inner
        self.head = b""
        self.tail = b""

    def feed(self, chunk) -> int:
        taken = self._inner.feed(chunk)
        if len(self.head) < EDGE_BYTES:
            self.head += bytes(chunk[:min(taken, EDGE_BYTES - len(self.head))])
        self.tail = (self.tail + bytes(chunk[max(0, taken - EDGE_BYTES):taken]))[-EDGE_BYTES:]
        return taken

    def __getattr__(self, name):
        return getattr(self._inner, name)


def samples_edges(spec) -> bool:
    return dtype(spec.dtype).name in _FLOAT_WORDS


# Floats that an integer of the same width reads as: an int32 or int64 is subnormal as float32 or float64
# up to 2^23 or 2^52, and no trained value is that small (< 1e-38). float16's subnormals begin at 6e-5,
# where small trained values live, so half floats are not judged so.
INTEGER_WIDTHS = ("float32", "float64")
MOSTLY = 0.5          # the share of subnormal values among non-zero ones that makes a float tensor an integer one
SHIFT_NATS = 6.0      # evidence (log-likelihood, nats) that values on one side of a boundary belong to the other
SHIFT_TERM = 2.5     # ... and at least this much for each value moved
SHIFT_END = 2.0       # ... and the value after them belongs to its own side by this much
SHIFT_MAX = 8         # values a boundary is looked at around, on each side


def judge_edges(plan, edges: dict, only: set) -> tuple[list, list]:
    """Findings in words: (float tensors mostly subnormal, boundaries that split one distribution).
    `edges`: placed index -> (head bytes, tail bytes) of the float tensors; `only`: the layout-only ones."""
    integers = [found for i in sorted(edges) if i in only for found in [_integers_as_floats(plan, i, *edges[i])]
                if found]
    boundaries = [found for i in sorted(edges) if i in only and i + 1 in edges and i + 1 in only
                  for found in [_split_run(plan.placed[i], plan.placed[i + 1], edges[i][1], edges[i + 1][0])]
                  if found]
    return integers, boundaries


def _integers_as_floats(plan, i: int, head: bytes, tail: bytes) -> str:
    spec = plan.placed[i].spec
    if is_optimizer_state(spec.key) or dtype(spec.dtype).name not in INTEGER_WIDTHS:
        return ""     # Adam's second moments of rarely used weights decay through the subnormals
    sample = head + tail if plan.placed[i].size > 2 * EDGE_BYTES else head
    subnormal, nonzero = _subnormals(sample, spec.dtype)
    if nonzero < 2 or subnormal < MOSTLY * nonzero:
        return ""
    return (f"{spec.describe()}: {subnormal} of its {nonzero} sampled non-zero values are subnormal floats, the bit "
            f"patterns of small integers: an integer tensor read as {dtype(spec.dtype).name}")


def _split_run(a, b, tail: bytes, head: bytes) -> str:
    if a.spec.shard != b.spec.shard or a.offset + a.size != b.offset or a.spec.dtype != b.spec.dtype:
        return ""
    shift = boundary_shift(float_values(tail, a.spec.dtype), float_values(head, b.spec.dtype))
    if not shift:
        return ""
    k, into_second = shift
    moved, own, where = (b, a, "first") if into_second else (a, b, "last")
    return (f"the boundary between {a.spec.describe()} and {b.spec.describe()}: the {where} {k} value(s) of "
            f"{moved.spec.key} look like {own.spec.key}'s and unlike the rest of their own, a run of values of one "
            "distribution split where the layout puts the boundary")


def _subnormals(raw: bytes, dtype_number: int) -> tuple:
    word, mantissa_bits, exponent_bits = _FLOAT_WORDS[dtype(dtype_number).name]
    words = np.frombuffer(raw[:len(raw) - len(raw) % word.itemsize], dtype=word).astype(np.uint64)
    exponent = (words >> np.uint64(mantissa_bits)) & np.uint64((1 << exponent_bits) - 1)
    mantissa = words & np.uint64((1 << mantissa_bits) - 1)
    nonzero = (exponent != 0) | (mantissa != 0)
    return int(np.count_nonzero((exponent == 0) & (mantissa != 0))), int(np.count_nonzero(nonzero))


def boundary_shift(tail: np.ndarray, head: np.ndarray):
    """(k, True) when the first k values of `head` belong with `tail` (the boundary lies k values later),
    (k, False) when the last k values of `tail` belong with `head`; None when the boundary fits the values.

    Each side is modelled by its bulk (away from the boundary): the share of zeros, and the median and
    spread of log2|x| of the others; a value's evidence for a side is its log-likelihood there.
    """
    if len(tail) < 4 or len(head) < 4 or not (np.isfinite(tail).all() and np.isfinite(head).all()):
        return None
    reach = min(SHIFT_MAX, len(tail) // 2, len(head) // 2)
    first, second = _side(tail[:len(tail) - reach]), _side(head[reach:])
    forward = [_log_likelihood(x, first) - _log_likelihood(x, second) for x in head[:reach]]
    backward = [_log_likelihood(x, second) - _log_likelihood(x, first) for x in tail[::-1][:reach]]
    for terms, into_second in ((forward, True), (backward, False)):
        # k values that belong to the other side, then one that clearly belongs to its own: a shift with an
        # end. A run that goes on past the window is a block of the tensor's own (a dead channel), not a shift.
        k = next((n for n, term in enumerate(terms) if term < SHIFT_TERM), len(terms))
        if 2 <= k < len(terms) and terms[k] <= -SHIFT_END and sum(terms[:k]) >= SHIFT_NATS:
            return k, into_second
    return None


def _side(values: np.ndarray) -> tuple:
    """(share of zeros, median of log2|x|, spread above it, spread below it) of one side's bulk.

    Values of both signs come from a density that does not vanish at zero (weights, biases): the share
    below |x| falls only in proportion to |x|, so log2|x| has a long tail downwards that a small sample
    rarely shows (a kernel's 0.009 is no evidence of a bias). One sign only (a gamma near 1, variances)
    may keep a short tail."""
    zero = values == 0
    share = (np.count_nonzero(zero) + 0.1) / (len(values) + 0.2)
    nonzero = values[~zero]
    logs = np.log2(np.abs(nonzero))
    if logs.size == 0:
        return share, 0.0, 1.0, 1.0
    middle = float(np.median(logs))
    spread = max(0.5, 1.4826 * float(np.median(np.abs(logs - middle)))) if logs.size > 1 else 1.0
    both_signs = min(np.count_nonzero(nonzero > 0), np.count_nonzero(nonzero < 0)) >= 0.2 * nonzero.size
    return share, middle, spread, max(spread, 1 / math.log(2)) if both_signs else spread


def _log_likelihood(x: float, side: tuple) -> float:
    share, middle, above, below = side
    if x == 0:
        return math.log(share)
    distance = math.log2(abs(x)) - middle
    return math.log(1 - share) - (distance / above if distance >= 0 else -distance / below) - math.log(above + below)
