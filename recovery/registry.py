"""The architecture registry (`configs/architectures.yaml`): known models, as builders or layouts.
README.md, "Teach it a model: the registry", is its user's guide.

    architectures:
      NAME:
        builder: module:function      # or
        layout: layouts/NAME.json     # written by `ckpt-rescue register`

Paths and builder modules are relative to the registry file's own directory. Layout entries are
plain data and load here; builder entries need TensorFlow and are resolved into layouts by
`pipeline.builders`, once, on the launching machine, so that workers only ever see layouts.
"""

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field

import yaml

from tfbundle import OBJECT_GRAPH_KEY, data_filename, index_filename, read_index

from . import storage
from .caches import SharedCache
from .context import DataFile, find_object_graph
from .layout import Layout, layout_from_index

TOP_KEY = "architectures"
ENTRY_KEYS = ("builder", "layout")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IDENTIFIERS = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
BUILDER_RE = re.compile(rf"^{_IDENTIFIERS}:{_IDENTIFIERS}$")
LAYOUTS_DIR = "layouts"


class RegistryError(ValueError):
    """The registry file (or one of its entries) is wrong: a configuration error, exit code 2."""


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    builder: str | None = None   # "module:function"
    layout: str | None = None    # as written in the file, relative to the registry's directory


@dataclass
class Registry:
    path: str                                   # the registry file, a local path or URL
    entries: dict                               # name -> RegistryEntry, in file order
    _layouts: dict = field(default_factory=dict, repr=False)   # name -> Layout for layout entries

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path) or "."

    def layout_path(self, entry: RegistryEntry) -> str:
        return posixpath.normpath(posixpath.join(self.directory, entry.layout))

    def layouts(self) -> dict:
        """Layouts of the `layout` entries (builder entries are resolved by pipeline.builders)."""
        return dict(self._layouts)


def load_registry(path: str) -> Registry:
    """Read and validate a registry and its layout files; RegistryError says what is wrong."""
    fs, fs_path = storage.url_to_fs(path)
    try:
        text = storage.read_bytes(fs, fs_path).decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(f"no registry file at {path}") from None
    registry = Registry(path, parse_entries(text, path))
    for name, entry in registry.entries.items():
        if entry.layout:
            registry._layouts[name] = _read_layout(registry, entry)
    return registry


def parse_entries(text: str, path: str = "registry") -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise RegistryError(f"{path} must be a mapping with the key `{TOP_KEY}`")
    unknown = [k for k in doc if k != TOP_KEY]
    if unknown:
        raise RegistryError(f"{path}: unknown top-level key(s) {', '.join(map(str, unknown))}; only `{TOP_KEY}`")
    body = doc.get(TOP_KEY) or {}
    if not isinstance(body, dict):
        raise RegistryError(f"{path}: `{TOP_KEY}` must map names to entries")
    return {str(name): _entry(str(name), spec, path) for name, spec in body.items()}


def _entry(name: str, spec, path: str) -> RegistryEntry:
    where = f"{path}: architecture `{name}`"
    if not NAME_RE.match(name):
        raise RegistryError(f"{where}: names may use letters, digits, `_`, `.` and `-`")
    if not isinstance(spec, dict):
        raise RegistryError(f"{where} must be a mapping with `builder` or `layout`")
    unknown = [k for k in spec if k not in ENTRY_KEYS]
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; use `builder` or `layout`")
    given = [k for k in ENTRY_KEYS if spec.get(k) is not None]
    if len(given) != 1:
        raise RegistryError(f"{where} needs exactly one of `builder` and `layout`, not "
                            f"{' and '.join(given) if given else 'neither'}")
    value = spec[given[0]]
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{where}: `{given[0]}` must be a non-empty string")
    if given[0] == "builder" and not BUILDER_RE.match(value):
        raise RegistryError(f"{where}: builder {value!r} is not `module:function`")
    return RegistryEntry(name, **{given[0]: value})


def _read_layout(registry: Registry, entry: RegistryEntry) -> Layout:
    path = registry.layout_path(entry)
    fs, fs_path = storage.url_to_fs(path)
    try:
        text = storage.read_bytes(fs, fs_path).decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{registry.path}: architecture `{entry.name}`: layout file {path} does not exist "
                            f"(write it with `ckpt-rescue register {entry.name} --from-checkpoint PREFIX`)") from None
    try:
        return Layout.from_json(text, source=f"registered `{entry.name}`", kind="registry")
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{registry.path}: architecture `{entry.name}`: {path} is not a layout: {exc}") from None


def capture_layout(fs, prefix: str, source: str) -> Layout:
    """The layout of a healthy checkpoint, in data order (its object graph breaks ties of empty tensors),
    with its CRCs and object graph: references that confirm an orphan's unchanged tensors and graph."""
    index = read_index(storage.read_bytes(fs, index_filename(prefix)))
    num_shards = index.header.num_shards or 1
    files = [DataFile(data_filename(prefix, shard, num_shards), shard, num_shards, None) for shard in range(num_shards)]
    found = find_object_graph(fs, files)
    key_order = found[1].graph.checkpoint_keys() + [OBJECT_GRAPH_KEY] if found else None
    layout = layout_from_index(index, source, "registry", key_order)
    if found:
        layout.reference_graph = found[1].payload   # so a later refusal can show where an orphan's graph differs
    return layout


# --- Editing --------------------------------------------------------------------------------------

def add_entry(path: str, name: str, *, builder: str | None = None, layout: str | None = None,
              force: bool = False) -> None:
    """Add (or with `force`, replace) one entry, keeping the rest of the file, comments included."""
    if (builder is None) == (layout is None):
        raise ValueError("give exactly one of builder and layout")
    fs, fs_path = storage.url_to_fs(path)
    try:
        text = storage.read_bytes(fs, fs_path).decode("utf-8")
    except FileNotFoundError:
        text = ""
    entries = parse_entries(text, path)
    if name in entries and not force:
        raise RegistryError(f"`{name}` is already registered in {path}; pass --force to replace it")
    key, value = ("builder", builder) if builder is not None else ("layout", layout)
    expected = {**_as_dicts(entries), name: {key: value}}
    new_text = _edit_text(text, name, key, value, replacing=name in entries)
    if new_text is None or _as_dicts(parse_entries(new_text, path)) != expected:
        new_text = yaml.safe_dump({TOP_KEY: expected}, sort_keys=False)   # unusual layout: rewrite it whole
    storage.write_replaceable(fs, fs_path, new_text.encode("utf-8"))


def _as_dicts(entries: dict) -> dict:
    return {n: {k: getattr(e, k) for k in ENTRY_KEYS if getattr(e, k) is not None} for n, e in entries.items()}


def _scalar(value: str) -> str:
    plain = re.fullmatch(r"[\w./:-]+", value) and yaml.safe_load(value) == value
    return value if plain else json.dumps(value)


def _edit_text(text: str, name: str, key: str, value: str, replacing: bool) -> str | None:
    """Insert `name:` (replacing the entry of that name) as the last entry of a block-style file; None if
    the file is laid out otherwise."""
    lines = text.splitlines()
    top = [i for i, line in enumerate(lines) if re.match(rf"^{TOP_KEY}:\s*(#.*)?$", line)]
    if not text.strip():
        lines, top = ['# Architecture registry: see README.md, "Teach it a model: the registry" '
                      "(`ckpt-rescue register` adds entries).",
                      f"{TOP_KEY}:"], [1]
    if len(top) != 1:
        return None
    body = [i for i in range(top[0] + 1, len(lines)) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    indent = (len(lines[body[0]]) - len(lines[body[0]].lstrip())) if body else 2
    if indent == 0:
        return None
    start = next((i for i in body if re.match(rf"^ {{{indent}}}{re.escape(name)}:\s*(#.*)?$", lines[i])), None)
    if replacing and start is None:
        return None
    if start is not None:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent), len(lines))
        del lines[start:end]
    while lines and not lines[-1].strip():
        lines.pop()
    pad = " " * indent
    lines += [f"{pad}{name}:", f"{pad}{pad}{key}: {_scalar(value)}"]
    return "\n".join(lines) + "\n"


RESOLVED_FILE = "registry-layouts.json"


@dataclass(frozen=True)
class ResolvedRegistry:
    """Where the launcher wrote the registry's resolved layouts, once per run, for every worker to load
    once per process (builders need TensorFlow, which workers do not have); the digest names the
    content, so a process that served another run never reuses a stale copy."""

    url: str
    digest: str
    source: str = ""     # the registry file they were resolved from, as any command can name it (absolute)


def write_resolved(report_dir: str, layouts: dict, source: str = "") -> ResolvedRegistry:
    """Write name -> Layout beside the reports (the run's workers can read there: they stage indexes there);
    `source`: the registry file they came from, for the commands records print."""
    text = json.dumps({name: json.loads(layout.to_json()) for name, layout in layouts.items()}, indent=1)
    data = text.encode("utf-8")
    fs, path = storage.url_to_fs(report_dir)
    target = f"{path.rstrip('/')}/{RESOLVED_FILE}"
    storage.write_replaceable(fs, target, data)
    return ResolvedRegistry(storage.display(fs, target), hashlib.sha256(data).hexdigest(), source)


def load_resolved(resolved: ResolvedRegistry) -> dict:
    """name -> Layout as the launcher resolved them; read once per process and run."""
    return _resolved.get_or_compute(resolved, lambda: _read_resolved(resolved))


_resolved = SharedCache(8)   # shared by the SDK harness's threads


def _read_resolved(resolved: ResolvedRegistry) -> dict:
    fs, path = storage.url_to_fs(resolved.url)
    data = storage.read_bytes(fs, path)
    if hashlib.sha256(data).hexdigest() != resolved.digest:
        raise RegistryError(f"{resolved.url} changed after the launcher wrote it (another run using the same "
                            "--report-dir?)")
    return {name: Layout.from_json(json.dumps(doc), kind="registry") for name, doc in json.loads(data).items()}
