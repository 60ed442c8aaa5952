"""Add an architecture to the registry, so orphans of that model can be rebuilt without any sibling.

--builder MODULE:FUNCTION   a function returning the root exactly as it was checkpointed (resolved once
                            here with TensorFlow, to prove it works, before it is added)
--from-checkpoint PREFIX    a healthy checkpoint of the model: its layout is written to
                            layouts/NAME.json beside the registry (any fsspec URL works)
An existing entry (or layout file) is replaced only with --force.
"""

import posixpath
import shlex

from recovery import storage
from recovery.diagnosis import diagnose
from recovery.registry import LAYOUTS_DIR, NAME_RE, RegistryError, add_entry, capture_layout, parse_entries
from tfbundle import FormatError

from . import preflight
from .cli import EXIT_OK, UsageError
from .inspect_text import render
from .registry_args import DEFAULT_REGISTRY


def add_arguments(parser):
    parser.add_argument("name", help="architecture name (letters, digits, _ . -)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--builder", metavar="MODULE:FUNCTION", help="builder importable from the registry's directory")
    what.add_argument("--from-checkpoint", metavar="PREFIX", help="healthy checkpoint whose layout to capture")
    parser.add_argument("--registry", metavar="FILE", default=DEFAULT_REGISTRY,
                        help=f"registry file, created if missing (default: {DEFAULT_REGISTRY})")
    parser.add_argument("--force", action="store_true", help="replace an existing entry of this name")


def run(args) -> int:
    if not NAME_RE.match(args.name):
        raise UsageError(f"name {args.name!r}: use letters, digits, `_`, `.` and `-` (it names a file)")
    check_before_work(args)
    try:
        _refuse_clobber(args.registry, args.name, args.force)
        if args.builder:
            summary = _register_builder(args)
        else:
            summary = _register_checkpoint(args)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    print(f"registered `{args.name}` in {args.registry}: {summary}")
    return EXIT_OK


def check_before_work(args) -> None:
    """Usage mistakes found before TensorFlow runs a builder or a layout is captured: exit 2 with the fix."""
    preflight.check_access([("--from-checkpoint", args.from_checkpoint), ("--registry", args.registry)])
    if args.builder is not None:
        module, _, function = args.builder.partition(":")
        if not module or not function:
            raise UsageError(f"--builder {args.builder}: write it as MODULE:FUNCTION, e.g. my_models:build_resnet")
    if args.from_checkpoint is not None:
        wrong = diagnose(args.from_checkpoint)
        if wrong is not None:
            hint = f"\ntry: --from-checkpoint {shlex.quote(wrong.suggestion)}" if wrong.suggestion else ""
            raise UsageError("--from-checkpoint " + render(wrong, command=None).rstrip("\n") + hint)
    preflight.check_output_dir("the directory of --registry", posixpath.dirname(args.registry) or ".")


def _refuse_clobber(registry: str, name: str, force: bool) -> None:
    fs, path = storage.url_to_fs(registry)
    try:
        entries = parse_entries(storage.read_bytes(fs, path).decode("utf-8"), registry)
    except FileNotFoundError:
        return
    if name in entries and not force:
        raise RegistryError(f"`{name}` is already registered in {registry}; pass --force to replace it")


def _register_builder(args) -> str:
    from .builders import builder_layout

    layout = builder_layout(args.builder, posixpath.dirname(args.registry) or ".", args.name)
    add_entry(args.registry, args.name, builder=args.builder, force=args.force)
    return f"builder {args.builder} ({len(layout.tensors)} tensors in {layout.num_shards} shard(s))"


def _register_checkpoint(args) -> str:
    fs, prefix = storage.split_prefix(args.from_checkpoint)
    try:
        layout = capture_layout(fs, prefix, f"checkpoint {args.from_checkpoint}")
    except FileNotFoundError:
        raise UsageError(f"{args.from_checkpoint}.index does not exist: --from-checkpoint needs a healthy "
                         "checkpoint prefix (not a data file, and not an orphan)") from None
    except FormatError as exc:
        raise UsageError(f"{args.from_checkpoint}.index is unreadable: {exc}") from None
    except OSError as exc:     # a directory or a FIFO by that name, no permission: not the store failing
        if storage.is_transient(exc):
            raise
        raise UsageError(f"--from-checkpoint {args.from_checkpoint} cannot be read: {storage.in_words(exc)}") from None
    relative = f"{LAYOUTS_DIR}/{args.name}.json"
    registry_fs, registry_path = storage.url_to_fs(args.registry)
    layout_path = posixpath.join(posixpath.dirname(registry_path) or ".", relative)
    data = layout.to_json().encode("utf-8")
    if args.force:
        storage.write_replaceable(registry_fs, layout_path, data)
    else:
        if storage.is_local(registry_fs):
            registry_fs.makedirs(posixpath.dirname(layout_path), exist_ok=True)
        try:
            storage.write_new(registry_fs, layout_path, data)
        except FileExistsError:
            raise UsageError(f"{storage.display(registry_fs, layout_path)} already exists; pass --force to "
                             "replace it") from None
    add_entry(args.registry, args.name, layout=relative, force=args.force)
    return f"layout {relative} ({len(layout.tensors)} tensors in {layout.num_shards} shard(s))"
