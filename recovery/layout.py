"""A layout: what a checkpoint's data files hold, in the order they hold it, without offsets.

Every source of truth (part index, sibling, SavedModel, TF1 graph, registry) produces one. Offsets,
sizes and CRCs are not part of it: they are measured from the orphan's own bytes when the layout
is fitted, so a layout from another step of the same run fits exactly.
"""

import base64
import json
from dataclasses import dataclass, field

from tfbundle import DT_STRING, OBJECT_GRAPH_KEY, BundleIndex, TensorSlice, decode_slice_key, dtype, is_slice_key

MAX_STORED_GRAPH = 1 << 20   # object graphs up to this size are kept whole in a layout file, to show differences


@dataclass(frozen=True)
class TensorSpec:
    key: str                      # full tensor name (checkpoint key)
    dtype: int                    # TensorFlow DataType number
    shape: tuple                  # full tensor shape
    shard: int = 0
    slice: TensorSlice | None = None   # set for one stored slice of a partitioned tensor

    @property
    def stored_shape(self) -> tuple:
        return self.slice.shape_within(self.shape) if self.slice else self.shape

    def describe(self) -> str:
        part = f" slice {self.slice.extents}" if self.slice else ""
        return f"{self.key} {dtype(self.dtype).name}{list(self.shape)}{part}"


@dataclass
class Layout:
    tensors: list                 # TensorSpec, in data order: shard 0 first, then 1, ...
    num_shards: int = 1
    source: str = ""              # where it came from, for people: "sibling ckpt-56", "registry resnet50"
    kind: str = ""                # part-index | sibling | savedmodel | meta-graph | registry
    notes: list = field(default_factory=list)
    origin: tuple | None = None   # (fs, prefix) of the healthy checkpoint it was read from, if any
    expected_fingerprint: int | None = None  # SavedModel fingerprint.pb checkpoint_hash of the true index
    # CRCs a source holds for its own tensors: (key, slice) -> (size, masked crc32c). A tensor whose
    # bytes here give the same CRC is confirmed by a reference computed before any damage.
    reference_crcs: dict = field(default_factory=dict)
    reference_graph: bytes | None = None    # the source's object-graph payload, when it carries it
    # The reference graph is the one a registry builder's model makes (saved by TensorFlow when the
    # registry was resolved), not a save of this run: compared with evidence.compare_declared_graph.
    graph_declared: bool = False
    vaulted: object = None        # recovery.vault.judgement.VaultedIndex: the prefix's own vaulted index, if from it
    # Where the source's own index puts each tensor: (key, slice) -> (shard, offset, size). An exact
    # source (Source.exact) is held to it, empty tensors' offsets included.
    placements: dict = field(default_factory=dict)

    def keys(self) -> list[str]:
        """Distinct full tensor names, in first-appearance order."""
        return list(dict.fromkeys(t.key for t in self.tensors))

    def by_shard(self) -> list[list]:
        shards = [[] for _ in range(self.num_shards)]
        for spec in self.tensors:
            shards[spec.shard].append(spec)
        return shards

    def reference_crc(self, spec: "TensorSpec") -> tuple | None:
        return self.reference_crcs.get(reference_key(spec))

    def to_json(self) -> str:
        """The layout file `register` writes. `size`/`crc32c` per tensor and `object_graph` are optional
        (files written before they existed still load): the captured checkpoint's own CRCs, references."""
        def tensor(t):
            doc = {"key": t.key, "dtype": dtype(t.dtype).name, "shape": list(t.shape), "shard": t.shard,
                   **({"slice": [None if e is None else list(e) for e in t.slice.extents]} if t.slice else {})}
            crc = self.reference_crc(t)
            if crc is not None:
                doc["size"], doc["crc32c"] = crc
            return doc

        doc = {
            "format": "ckpt-rescue-layout/1",
            "source": self.source,
            "num_shards": self.num_shards,
            "tensors": [tensor(t) for t in self.tensors],
        }
        if self.reference_graph is not None and len(self.reference_graph) <= MAX_STORED_GRAPH:
            doc["object_graph_payload"] = base64.b64encode(self.reference_graph).decode("ascii")
            if self.graph_declared:
                doc["object_graph_declared"] = True
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "", kind: str = "registry") -> "Layout":
        doc = json.loads(text)
        if doc.get("format") != "ckpt-rescue-layout/1":
            raise ValueError(f"not a ckpt-rescue layout file (format {doc.get('format')!r})")
        def slice_of(t):
            return TensorSlice(tuple(None if e is None else tuple(e) for e in t["slice"])) if "slice" in t else None

        tensors = [TensorSpec(t["key"], dtype(t["dtype"]).number, tuple(t["shape"]), t.get("shard", 0), slice_of(t))
                   for t in doc["tensors"]]
        crcs = {reference_key(spec): (int(t["size"]), int(t["crc32c"]))
                for spec, t in zip(tensors, doc["tensors"]) if "crc32c" in t and "size" in t}
        graph = doc.get("object_graph_payload")
        return cls(tensors, doc.get("num_shards", 1), source or doc.get("source", ""), kind, reference_crcs=crcs,
                   reference_graph=base64.b64decode(graph) if graph is not None else None,
                   graph_declared=bool(doc.get("object_graph_declared")))


def reference_key(spec: "TensorSpec") -> tuple:
    return (spec.key, spec.slice)


def layout_from_index(index: BundleIndex, source: str = "", kind: str = "", key_order=None) -> Layout:
    """The data order of a healthy index: entries sorted by (shard, offset), slices under their name.

    An empty tensor's offset is where the writer stood when it was added (BundleWriter::Add sets it to
    the running size), so it shares its offset with the next tensor written and precedes it: among
    entries at one offset, empty ones come first. `key_order` (an object graph's keys in data order)
    orders empty tensors among themselves; without it they keep key order, which is TF1's order.
    The entries' own placements are kept (`placements`): a source that is the index of these very
    bytes is then held to them exactly.
    """
    rank = _ranks(key_order or (), [k.decode("utf-8", "surrogateescape") for k in index.entries if not is_slice_key(k)])
    stored, crcs, placements = [], {}, {}
    full_shapes = {k.decode("utf-8", "surrogateescape"): e.shape for k, e in index.entries.items() if e.slices}
    for key, entry in index.entries.items():
        if entry.slices:
            continue
        if is_slice_key(key):
            name, piece = decode_slice_key(key)
            spec = TensorSpec(name, entry.dtype, tuple(full_shapes.get(name, entry.shape)), entry.shard_id, piece)
        else:
            spec = TensorSpec(key.decode("utf-8", "surrogateescape"), entry.dtype, tuple(entry.shape), entry.shard_id)
        stored.append((entry.shard_id, entry.offset, entry.size > 0, rank.get(spec.key, len(rank)), spec))
        crcs[reference_key(spec)] = (entry.size, entry.crc32c)
        placements[reference_key(spec)] = (entry.shard_id, entry.offset, entry.size)
    stored.sort(key=lambda item: item[:4])
    return Layout([item[4] for item in stored], index.header.num_shards or 1, source, kind, reference_crcs=crcs,
                  placements=placements)


def _ranks(key_order, keys: list) -> dict:
    """key -> its rank in `key_order`; a key that extends an attribute's key (a table's `-keys`, an
    iterator's `_STATE`: see expand_attribute_key) ranks with that attribute."""
    rank = {key: i for i, key in enumerate(key_order)}
    for key in keys:
        if key not in rank:
            owner = max((a for a in key_order if key.startswith(a)), key=len, default=None)
            if owner is not None:
                rank[key] = rank[owner]
    return rank


@dataclass
class Refusal:
    """Why one source could not give a layout for this orphan, in words a person can act on."""

    source: str
    reason: str
    missing: list = field(default_factory=list)   # keys the orphan has and the source lacks
    extra: list = field(default_factory=list)     # keys the source has and the orphan lacks

    def __str__(self) -> str:
        return self.reason if self.reason.startswith(self.source) else f"{self.source}: {self.reason}"


# Keys that depend on how a root was saved rather than on the model: `Checkpoint.save()` adds
# save_counter, `write()` does not. A source may lack or carry them without being wrong.
SAVE_COUNTER_KEY = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"   # an int64 scalar
API_DEPENDENT_KEYS = (SAVE_COUNTER_KEY,)


def expand_attribute_key(attr_key: str, available, attribute_keys=frozenset()) -> list[str]:
    """Bundle keys written for one object-graph attribute.

    Usually the attribute key itself. Legacy saveables write their specs under longer names
    instead: a MutableHashTable's `<key>-keys` and `<key>-values`, a tf.data iterator's
    `<key>_STATE`. Those are the available keys that extend the attribute key and are not
    themselves another attribute's key.
    """
    if attr_key in available:
        return [attr_key]
    return [k for k in available if k.startswith(attr_key) and k not in attribute_keys]


def layout_from_specs(graph, specs: dict, source: str, kind: str) -> "Layout | Refusal":
    """Order `specs` (key -> (dtype, shape)) the way TensorFlow wrote a TF2 checkpoint with `graph`.

    Data order is object-graph node order, then attribute order, then the object graph itself.
    Refuses, naming the keys, unless the source covers exactly the orphan's keys.
    """
    ordered, missing = [], []
    covered = set()
    attribute_keys = frozenset(graph.checkpoint_keys())
    for attr_key in graph.checkpoint_keys():
        keys = expand_attribute_key(attr_key, specs, attribute_keys)
        if not keys:
            missing.append(attr_key)
        for key in keys:
            covered.add(key)
            dt, shape = specs[key]
            ordered.append(TensorSpec(key, dt, tuple(shape)))
    extra = [k for k in specs if k not in covered and k != OBJECT_GRAPH_KEY and k not in API_DEPENDENT_KEYS]
    if missing or extra:
        return Refusal(source, describe_key_mismatch(source, missing, extra), missing, extra)
    ordered.append(TensorSpec(OBJECT_GRAPH_KEY, DT_STRING, ()))
    return Layout(ordered, 1, source, kind)


def keys_mismatch(layout: Layout, graph) -> tuple[list, list]:
    """(missing, extra) between a layout's keys and an object graph's attributes."""
    have = set(layout.keys())   # a set: membership for each of thousands of attributes
    missing, covered = [], {OBJECT_GRAPH_KEY}
    attribute_keys = frozenset(graph.checkpoint_keys())
    for attr in graph.checkpoint_keys():
        keys = expand_attribute_key(attr, have, attribute_keys)
        covered.update(keys)
        if not keys:
            missing.append(attr)
    return missing, sorted(set(have) - covered)


def describe_key_mismatch(source: str, missing: list, extra: list) -> str:
    parts = []
    if extra:
        hint = ""
        if any("/.OPTIMIZER_SLOT/" in k or k.startswith("optimizer/") for k in extra):
            hint = " (optimizer state: did this run save without the optimizer?)"
        parts.append(f"{source} has {len(extra)} tensor(s) this checkpoint does not{hint}: {_sample(extra)}")
    if missing:
        hint = ""
        if any("/.OPTIMIZER_SLOT/" in k or k.startswith("optimizer/") for k in missing):
            hint = " (optimizer state: was the registered root built without its optimizer variables?)"
        parts.append(f"this checkpoint has {len(missing)} tensor(s) {source} lacks{hint}: {_sample(missing)}")
    return "; ".join(parts)


def _sample(keys: list, limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
