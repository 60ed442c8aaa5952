"""Rebuild the missing .index of one checkpoint prefix, or refuse with the reason.

Writes PREFIX.index only where none exists (create-only), or to --output. With --rehearse, works
on a healthy checkpoint: rebuilds its index from the other sources while ignoring its own and
says whether the result is byte-identical (proof that the checkpoint is recoverable).
"""

import sys

from recovery import storage
from recovery.context import NotRebuildable, open_orphan
from recovery.rebuild import REBUILT, rebuild
from recovery.verify import rehearse
from recovery.writeout import IndexAppeared, write_in_place
from tfbundle import FormatError, index_filename, read_index

from .cli import EXIT_ATTENTION, EXIT_OK, UsageError
from .registry_args import add_registry_arguments, registry_layouts_from_args


def add_arguments(parser):
    parser.add_argument("prefix", help="checkpoint prefix, e.g. runs/a/ckpt-57 or gs://bucket/run/ckpt-57")
    add_registry_arguments(parser)
    parser.add_argument("--template", metavar="PREFIX", help="use only this healthy checkpoint as the layout")
    parser.add_argument("--output", metavar="FILE", help="write the index here instead of PREFIX.index")
    parser.add_argument("--rehearse", action="store_true",
                        help="on a healthy checkpoint: rebuild while ignoring its index and compare byte for byte")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="accept Inf/NaN in float tensors (a run that really diverged)")
    parser.add_argument("--allow-zeros", action="store_true",
                        help="accept zero-filled blocks inside tensors or a data file of zeros (see docs/running.md)")
    parser.add_argument("--no-tf-check", action="store_true",
                        help="skip the final read of every tensor through TensorFlow")


def run(args) -> int:
    fs, prefix = storage.split_prefix(args.prefix)
    layouts = registry_layouts_from_args(args, lazy=True)
    if args.rehearse:
        return _rehearse(fs, prefix, layouts)
    index_path = index_filename(prefix)
    if storage.fresh_exists(fs, index_path) and not args.output:
        try:
            read_index(storage.read_bytes(fs, index_path))
        except FormatError as exc:
            print(f"refused: {storage.display(fs, index_path)} exists but is unreadable ({exc}); it will not be "
                  "overwritten: rebuild with --output FILE, check, then replace it yourself", file=sys.stderr)
            return EXIT_ATTENTION
        print(f"{storage.display(fs, index_path)} exists and reads fine: nothing to rebuild "
              "(use --rehearse to prove it recoverable)")
        return EXIT_OK
    try:
        ctx = open_orphan(fs, prefix, registry_layouts=layouts, arch=args.arch, template=args.template)
    except NotRebuildable as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_ATTENTION
    except FileNotFoundError:
        raise UsageError(f"no such directory: {storage.display(fs, storage.prefix_directory(prefix))}") from None
    outcome = rebuild(ctx, allow_nonfinite=args.allow_nonfinite, allow_zeros=args.allow_zeros)
    if outcome.status != REBUILT:
        print(f"refused: {outcome.prefix}: {outcome.reason}", file=sys.stderr)
        for refusal in outcome.refusals[4:]:
            print(f"  also: {refusal}", file=sys.stderr)
        return EXIT_ATTENTION
    checks = list(outcome.checks)
    judged = _tf_judge(fs, ctx, outcome.index_bytes, args.no_tf_check)
    if judged is not None:
        ok, message = judged
        if not ok:
            print(f"refused: {message}; nothing written", file=sys.stderr)
            return EXIT_ATTENTION
        checks.append(message)
    try:
        if args.output:
            out_fs, out_path = storage.url_to_fs(args.output)
            storage.write_new(out_fs, out_path, outcome.index_bytes)
            written = storage.display(out_fs, out_path)
        else:
            written = storage.display(fs, write_in_place(
                fs, prefix, outcome.index_bytes, {d.path: d.size for d in ctx.data_files}))
    except (IndexAppeared, FileExistsError) as exc:
        print(f"not written: {exc}", file=sys.stderr)
        return EXIT_ATTENTION
    print(f"rebuilt {storage.display(fs, prefix)} from {outcome.source}")
    for check in checks:
        print(f"  ok  {check}")
    print(f"wrote {written} ({len(outcome.index_bytes)} bytes)")
    return EXIT_OK


def _tf_judge(fs, ctx, index_bytes, skip: bool):
    from .tf_judge import tensorflow_available, tf_reads_every_tensor

    if skip or not storage.is_local(fs) or not tensorflow_available():
        return None
    return tf_reads_every_tensor([d.path for d in ctx.data_files], index_bytes)


def _rehearse(fs, prefix, layouts) -> int:
    if not storage.fresh_exists(fs, index_filename(prefix)):
        raise UsageError(f"--rehearse needs a healthy checkpoint, and {storage.display(fs, prefix)}.index does not "
                         "exist; to rebuild it, drop --rehearse")
    result = rehearse(fs, prefix, registry_layouts=layouts)
    print(f"rehearsal of {storage.display(fs, prefix)}: {result.verdict}")
    print(f"  {result.detail}")
    if result.outcome is not None:
        for check in result.outcome.checks:
            print(f"  ok  {check}")
    return EXIT_OK if result.verdict == "byte-identical" else EXIT_ATTENTION
