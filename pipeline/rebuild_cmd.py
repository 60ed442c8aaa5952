"""Rebuild the missing .index of one checkpoint prefix, or refuse with the reason.

Writes PREFIX.index only where none exists (create-only), or to --output. With --rehearse, works
on a healthy checkpoint: rebuilds its index from the other sources while ignoring its own and
says whether the result is byte-identical (proof that the checkpoint is recoverable).
"""

import shlex
import sys

from recovery import storage
from recovery.context import NotRebuildable, open_orphan
from recovery.diagnosis import Diagnosis, locate_target
from recovery.rebuild import NO_SOURCE, REBUILT, no_source_hint, rebuild
from recovery.records import carried_options
from recovery.vault import Vault, VaultError
from recovery.verify import rehearse
from recovery.writeout import IndexAppeared, write_in_place
from tfbundle import FormatError, index_filename, read_index

from . import preflight
from .cli import EXIT_ATTENTION, EXIT_OK, UsageError
from .inspect_text import render
from .progress import Progress
from .registry_args import add_registry_arguments, no_registry_found, registry_layouts_from_args
from .tf_judge import SKIPPED_NOTICE, tensorflow_available


def add_arguments(parser):
    parser.add_argument("prefix", help="checkpoint prefix, e.g. runs/a/ckpt-57 or gs://bucket/run/ckpt-57")
    add_registry_arguments(parser)
    parser.add_argument("--template", metavar="PREFIX", help="use only this healthy checkpoint as the layout")
    parser.add_argument("--output", metavar="FILE", help="write the index here instead of PREFIX.index")
    parser.add_argument("--vault", metavar="URL",
                        help="the index vault an audit keeps (local, gs://, s3://): the lost index as it was while "
                             "healthy, used when the data files are the ones it described (docs/vault.md)")
    parser.add_argument("--rehearse", action="store_true",
                        help="on a healthy checkpoint: rebuild while ignoring its index and compare byte for byte")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="accept Inf/NaN in float tensors (a run that really diverged)")
    parser.add_argument("--allow-zeros", action="store_true",
                        help="accept zero-filled blocks inside tensors or a data file of zeros (see docs/running.md)")
    parser.add_argument("--allow-unchanged-tensors", action="store_true",
                        help="accept trained tensors (or a whole shard) whose bytes equal another save's, when they "
                             "really did not change between the saves (see README, \"What a rebuilt index proves\")")
    parser.add_argument("--tf-check", choices=("sample", "full", "off"), default="sample",
                        help="TensorFlow's final check where it is installed: parse the index and read a sample "
                             "(strings, variants, each dtype, every shard's ends; default), read every tensor "
                             "(full), or skip it (off)")
    parser.add_argument("--no-tf-check", dest="tf_check", action="store_const", const="off",
                        help="same as --tf-check off")


def run(args) -> int:
    check_before_work(args)
    fs, prefix = storage.split_prefix(args.prefix)
    layouts = registry_layouts_from_args(args, lazy=True)
    if args.rehearse:
        return _rehearse(fs, prefix, layouts, args.opened_vault)
    index_path = index_filename(prefix)
    taken = storage.occupant(fs, index_path)
    if taken and not args.output:
        print(f"refused: {storage.display(fs, index_path)} is {taken}, not an index file; it is never replaced: "
              "rebuild with --output FILE, check it, then move that aside and put the file in its place",
              file=sys.stderr)
        return EXIT_ATTENTION
    if storage.fresh_exists(fs, index_path) and not args.output:
        try:
            read_index(storage.read_bytes(fs, index_path))
        except (FormatError, OSError) as exc:
            if storage.is_transient(exc):
                raise
            print(f"refused: {storage.display(fs, index_path)} exists but is unreadable ({exc}); it will not be "
                  "overwritten: rebuild with --output FILE, check, then replace it yourself", file=sys.stderr)
            return EXIT_ATTENTION
        print(f"{storage.display(fs, index_path)} exists and reads fine: nothing to rebuild "
              "(use --rehearse to prove it recoverable)")
        return EXIT_OK
    judge = _start_judge(fs, args.tf_check)
    try:
        return _rebuild(fs, prefix, layouts, args, judge)
    except OSError as exc:      # a data file that cannot be read (permissions, a storage that refuses), not a retry
        if storage.is_transient(exc):
            raise
        print(f"refused: {storage.display(fs, prefix)}: {storage.in_words(exc)}; nothing written", file=sys.stderr)
        return EXIT_ATTENTION
    finally:
        if judge is not None:
            judge.cancel()


def _rebuild(fs, prefix, layouts, args, judge) -> int:
    try:
        ctx = open_orphan(fs, prefix, registry_layouts=layouts, arch=args.arch, template=args.template,
                          vault=args.opened_vault)
    except NotRebuildable as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_ATTENTION
    except FileNotFoundError:
        raise UsageError(f"no such directory: {storage.display(fs, storage.prefix_directory(prefix))}") from None
    progress = Progress(sum(d.size for d in ctx.data_files), f"rebuilding {storage.display(fs, prefix)}")
    outcome = rebuild(ctx, allow_nonfinite=args.allow_nonfinite, on_bytes=progress,
                      allow_zeros=args.allow_zeros, allow_unchanged=args.allow_unchanged_tensors)
    progress.finish()
    if outcome.status != REBUILT:
        print(f"refused: {outcome.prefix}: {outcome.reason}", file=sys.stderr)
        _print_lead(outcome.evidence, sys.stderr)
        for refusal in outcome.refusals[4:]:
            print(f"  also: {refusal}", file=sys.stderr)
        _print_evidence(outcome.evidence, sys.stderr)
        _print_no_source_help(outcome, layouts)
        return EXIT_ATTENTION
    checks, skipped = list(outcome.checks), []
    if judge is None and args.tf_check != "off" and storage.is_local(fs) and not tensorflow_available():
        skipped.append(SKIPPED_NOTICE)
    judged = judge.judge([d.path for d in ctx.data_files], outcome.index_bytes) if judge is not None else None
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
    _print_lead(outcome.evidence, sys.stdout)
    for check in checks:
        print(f"  ok  {check}")
    for note in skipped:
        print(f"  --  {note}")
    _print_evidence(outcome.evidence, sys.stdout, confirmed=False)
    print(f"wrote {written} ({len(outcome.index_bytes)} bytes)")
    return EXIT_OK


def _print_lead(evidence, stream) -> None:
    """What rests on other checkpoints alone comes first, before any "ok": the one thing a person must weigh."""
    for line in evidence.leading()[0] if evidence is not None else ():
        print(f"  !!  {line}", file=stream)


def _print_evidence(evidence, stream, confirmed: bool = True) -> None:
    """What the layout rests on (unless the checks were just printed), and what else remains unproven."""
    if evidence is None:
        return
    if confirmed:
        for line in evidence.confirmed:
            print(f"  ok  {line}", file=stream)
    else:
        print(f"  evidence: {evidence.summary()}", file=stream)
    for line in evidence.leading()[1]:
        print(f"  cannot confirm: {line}", file=stream)


def _print_no_source_help(outcome, layouts) -> None:
    """When nothing describes the layout, say what this command can be given (and where a registry was sought)."""
    if outcome.reason != NO_SOURCE:
        return
    print(no_source_hint(outcome.prefix, "rebuild"), file=sys.stderr)
    if layouts is None:
        print(f"no registry was used: none was found ({no_registry_found()}); pass --registry FILE",
              file=sys.stderr)


def check_before_work(args) -> None:
    """Every usage mistake, found before any listing of data or any builder runs: exit 2 with the fix."""
    preflight.check_access([("PREFIX", args.prefix), ("--template", args.template), ("--output", args.output),
                            ("--registry", args.registry), ("--vault", args.vault)])
    if args.output:
        preflight.check_output_file("--output", args.output)
    found = locate_target(args.prefix)
    if isinstance(found, Diagnosis):
        raise UsageError(render(found, command="rebuild", options=_options(args)).rstrip("\n"))
    if found[0].endswith("/") and not args.prefix.endswith("/"):
        args.prefix += "/"    # `dir` holding dir/.index: the prefix TF1's saver.save(sess, "dir/") wrote
    if args.template:
        check_template(args.template)
    args.opened_vault = _open_vault(args)


def _options(args) -> tuple:
    """This command's own options, for the command a diagnosis suggests instead."""
    chosen = [(flag, value) for flag, value in (("--template", args.template), ("--arch", args.arch),
                                                ("--output", args.output)) if value]
    return carried_options(args.registry, args.vault, args.allow_zeros) + tuple(x for pair in chosen for x in pair)


def open_vault(url: str | None):
    """The vault --vault names, checked before any work: a location that is not a vault is a usage error."""
    if not url:
        return None
    try:
        return Vault.open(url)
    except VaultError as exc:
        raise UsageError(f"--vault {exc}") from None


def _open_vault(args):
    vault = open_vault(args.vault)
    if vault is not None and (args.template or args.arch):
        print(f"note: {'--template' if args.template else '--arch'} chooses the source, so the vault is not "
              "consulted; drop it to let the vault's index of this prefix come first", file=sys.stderr)
    return vault


def check_template(template: str) -> None:
    found = locate_target(template)
    if isinstance(found, Diagnosis):
        hint = f"\ntry: --template {shlex.quote(found.suggestion)}" if found.suggestion else ""
        raise UsageError("--template " + render(found, command=None).rstrip("\n") + hint)
    _, _, index_exists, _ = found
    if not index_exists:
        raise UsageError(f"--template {template} has no index: a template must be a healthy checkpoint of the same "
                         f"model (check one with `ckpt-rescue inspect PREFIX`)")


def _start_judge(fs, mode: str):
    """TensorFlow's check, importing TensorFlow in its own process while the rebuild runs; None when off."""
    from .tf_judge import start_judge

    if mode == "off" or not storage.is_local(fs) or not tensorflow_available():
        return None
    return start_judge(mode)


def _rehearse(fs, prefix, layouts, vault) -> int:
    if not storage.fresh_exists(fs, index_filename(prefix)):
        raise UsageError(f"--rehearse needs a healthy checkpoint, and {storage.display(fs, prefix)}.index does not "
                         "exist; to rebuild it, drop --rehearse")
    total = sum(info["size"] for info in fs.ls(storage.parent(prefix), detail=True)
                if info["name"].startswith(prefix + ".data-"))
    progress = Progress(total, f"rehearsing {storage.display(fs, prefix)}")
    result = rehearse(fs, prefix, registry_layouts=layouts, on_bytes=progress, vault=vault)
    progress.finish()
    print(f"rehearsal of {storage.display(fs, prefix)}: {result.verdict}")
    print(f"  {result.detail}")
    if vault is not None:
        print("  the vault's copies of this prefix's index were ignored: a rehearsal that used them would prove "
              "nothing")
    if result.outcome is not None:
        for check in result.outcome.checks:
            print(f"  ok  {check}")
        for refusal in result.outcome.refusals:
            if "not independent evidence" in str(refusal):
                print(f"  left out: {refusal}")
    if vault is None:
        print("  without --vault, an index ckpt-rescue rebuilt and promoted cannot be told from one TensorFlow wrote: "
              "a sibling rebuilt from this checkpoint would count as independent")
    return EXIT_OK if result.verdict == "byte-identical" else EXIT_ATTENTION
