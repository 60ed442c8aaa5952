"""Salvage a damaged checkpoint: write a new one holding every tensor that can be proven intact, and a
manifest (NEW_PREFIX.salvage.json) of what is lost and why.

The original is never touched; the new checkpoint's files are created, never replaced. With its own
index, each tensor is kept when its bytes are all there and its CRC verifies. Without it, the layout
comes from the sources a rebuild uses, placed from the start of each shard while the data lasts;
tensors a reference CRC proves, or that lie wholly inside the data under a layout a rebuild would
accept, are kept; those that cannot be placed with confidence only with --include-unconfirmed.
"""

import shlex
import sys

from recovery import storage
from recovery.diagnosis import Diagnosis, locate_target
from recovery.rebuild import NO_SOURCE
from recovery.salvage import (
    LOST,
    PLACED,
    PROVEN,
    UNCONFIRMED,
    Refused,
    existing_outputs,
    output_files,
    plan_salvage,
    write_salvage,
)
from recovery.salvage.manifest import kept_in_words, restore_instructions
from tfbundle import FormatError

from . import preflight
from .cli import EXIT_ATTENTION, EXIT_OK, UsageError
from .inspect_text import render
from .rebuild_cmd import check_template, open_vault
from .registry_args import add_registry_arguments, no_registry_found, registry_in_use, registry_layouts_from_args

SHOWN = 8   # tensors listed per part on the terminal; the manifest lists them all


def add_arguments(parser):
    parser.add_argument("prefix", help="the damaged checkpoint prefix, e.g. runs/a/ckpt-57 or gs://bucket/run/ckpt-57")
    parser.add_argument("--output", metavar="NEW_PREFIX", required=True,
                        help="prefix of the new checkpoint (its .index, .data-00000-of-00001 and .salvage.json are "
                             "created; none may exist)")
    parser.add_argument("--include-unconfirmed", action="store_true",
                        help="also keep tensors whose bytes arrived but whose placement nothing confirms (listed "
                             "apart in the manifest); never a tensor whose bytes are known damaged")
    parser.add_argument("--template", metavar="PREFIX", help="use only this healthy checkpoint as the layout")
    parser.add_argument("--vault", metavar="URL",
                        help="the index vault an audit keeps (local, gs://, s3://): this prefix's index as it was "
                             "while healthy proves every tensor whose CRC still verifies, cut short or not "
                             "(docs/vault.md)")
    add_registry_arguments(parser)


def run(args) -> int:
    check_before_work(args)
    fs, prefix = storage.split_prefix(args.prefix)
    layouts = registry_layouts_from_args(args, lazy=True)
    try:
        plan = plan_salvage(fs, prefix, registry_layouts=layouts, arch=args.arch, template=args.template,
                            include_unconfirmed=args.include_unconfirmed,
                            output_args=f"--output {shlex.quote(args.output)}", vault=args.opened_vault,
                            registry_path=registry_in_use(args) or "")
    except (FormatError, OSError) as exc:   # a file that cannot be read as it should (not the store failing)
        if storage.is_transient(exc):
            raise
        print(f"refused: {storage.display(fs, prefix)}: could not read it: {exc}; nothing written", file=sys.stderr)
        return EXIT_ATTENTION
    except Refused as exc:
        display = storage.display(fs, prefix)
        print(f"refused: {display}: {exc.reason}; nothing written", file=sys.stderr)
        for check in exc.checks:
            print(f"  ok  {check}", file=sys.stderr)
        if exc.reason == NO_SOURCE:
            print(_no_source_hint(args), file=sys.stderr)
        return EXIT_ATTENTION
    try:
        written = write_salvage(plan, args.output)
    except OSError as exc:   # an output that appeared meanwhile, a source that changed, a refused write
        if storage.is_transient(exc):
            raise
        print(f"not written: {exc}", file=sys.stderr)
        return EXIT_ATTENTION
    print(summary(plan, written))
    return EXIT_OK


def _no_source_hint(args) -> str:
    """What to give salvage when nothing describes the layout, naming the registry in use (or saying that
    none is, and where one was looked for)."""
    registry = registry_in_use(args)
    lead = ("to fix: pass --template HEALTHY_PREFIX (a healthy checkpoint of the same model), or register the model "
            "once with `ckpt-rescue register NAME --from-checkpoint HEALTHY_PREFIX --registry ")
    if registry:
        quoted = shlex.quote(registry)
        return f"{lead}{quoted}` and pass --registry {quoted} --arch NAME"
    return (f"{lead}FILE` and pass --registry FILE (FILE: a registry file of your choice; none is in use: "
            f"{no_registry_found()})")


def summary(plan, written) -> str:
    """What was kept, on what evidence, what is lost and why, and how to restore: the manifest, readable."""
    kept = plan.kept
    total = sum(t.nbytes for t in plan.tensors)
    lines = [f"salvaged {plan.display_prefix} into {written.prefix}: "
             + kept_in_words(len(kept), len(plan.tensors), sum(t.nbytes for t in kept), total),
             f"  layout: {plan.source}"]
    lines += [f"  ok  {check}" for check in plan.checks]
    lines += [f"  cannot check: {line}" for line in plan.cannot_check]
    proven, placed = plan.having(PROVEN), plan.having(PLACED)
    by = ", ".join(dict.fromkeys(t.reference for t in proven))
    lines.append(f"  proven {len(proven)} tensor(s): their CRCs equal the ones recorded before the damage"
                 + (f" ({by})" if by else ""))
    if placed:
        lines.append(f"  placed {len(placed)} tensor(s): wholly inside the data that arrived, under {plan.source}'s "
                     "layout; no reference CRC covers them")
    lines += _listed(plan.having(LOST), f"  lost {len(plan.having(LOST))} tensor(s)", written.manifest_path)
    unconfirmed = plan.having(UNCONFIRMED)
    if unconfirmed:
        included = ("included (--include-unconfirmed)" if plan.include_unconfirmed
                    else "not included (--include-unconfirmed adds them)")
        lines += _listed(unconfirmed, f"  unconfirmed {len(unconfirmed)} tensor(s), {included}", written.manifest_path)
    if plan.graph is not None:
        lines.append(f"  object graph: {plan.graph.origin}")
        lines += [f"    {note}" for note in plan.graph.notes]
    restore = restore_instructions(plan, written.prefix)
    lines.append(f"  restore: {restore['how']}")
    if plan.graph is None:
        lines.append(f"    names: {', '.join(restore['variables'])}")
    lines.append(f"wrote {written.data_path} ({written.data_bytes} bytes), {written.index_path} "
                 f"({written.index_bytes} bytes), {written.manifest_path}")
    return "\n".join(lines)


def _listed(tensors: list, title: str, manifest_path: str) -> list:
    if not tensors:
        return []
    lines = [f"{title}, {sum(t.nbytes for t in tensors)} bytes:"]
    lines += [f"    {t.spec.describe()}: {t.why}" for t in tensors[:SHOWN]]
    if len(tensors) > SHOWN:
        lines.append(f"    ... and {len(tensors) - SHOWN} more (every one in {manifest_path})")
    return lines


def check_before_work(args) -> None:
    """Every usage mistake, found before any data is read: exit 2 with the fix."""
    preflight.check_access([("PREFIX", args.prefix), ("--template", args.template), ("--output", args.output),
                            ("--registry", args.registry), ("--vault", args.vault)])
    found = locate_target(args.prefix)
    if isinstance(found, Diagnosis):
        hint = (f"\ntry: ckpt-rescue salvage {shlex.quote(found.suggestion)} --output {shlex.quote(args.output)}"
                if found.suggestion else "")
        raise UsageError(render(found, command=None).rstrip("\n") + hint)
    if found[0].endswith("/") and not args.prefix.endswith("/"):
        args.prefix += "/"    # `dir` holding dir/.index: the prefix TF1's saver.save(sess, "dir/") wrote
    if args.template:
        check_template(args.template)
    fs, out_path = storage.split_prefix(args.output)
    source_fs, prefix = storage.split_prefix(args.prefix)
    if storage.display(fs, out_path) == storage.display(source_fs, prefix):
        raise UsageError("--output must be a new prefix: salvage never writes over the damaged checkpoint's files")
    taken = existing_outputs(fs, out_path)
    if taken:
        raise UsageError(f"--output {args.output}: {', '.join(taken)} already exist(s) and is never overwritten; "
                         "choose another NEW_PREFIX")
    if storage.is_local(fs):
        preflight.check_output_dir("--output", storage.prefix_directory(output_files(out_path)[1]) or ".")
    args.opened_vault = open_vault(args.vault)
