"""Write a demo tree of real TensorFlow checkpoints (healthy ones, an orphan of every recoverable
kind, and decoys), audit it with a registry written into the work directory and an index vault, and
check that the audit found what was planted. Then a day passes (a checkpoint rotated away, a healthy
index lost, a staged rebuild promoted) and a second night's audit brings the lost index back from the
vault with every tensor confirmed and says what changed. Needs TensorFlow (any TensorFlow 2 build, or
`pip install 'ckpt-rescue[tensorflow]'`) and nothing from the checkout; takes about two minutes.
"""

import os
import random
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tfbundle import index_filename

from .cli import EXIT_ATTENTION, EXIT_OK, UsageError
from .tensorflow_env import TensorFlowMissing, import_tensorflow, require_tensorflow

# The demo's own registry: the builder of the model whose orphan nothing else can rebuild.
DEMO_ARCHITECTURES = {"keras_app": "samples.models:keras_app"}
REGISTRY_HEADER = """\
# Written by `ckpt-rescue demo`: the architectures its audit may use when a checkpoint has no
# sibling, part index, SavedModel or .meta left. Add your own with `ckpt-rescue register`.
"""


@dataclass
class Planted:
    path: str          # relative to the tree: a prefix, or a leftover / state file
    damage: str        # what the demo did to it, in words
    status: str        # what the audit must say
    words: str = ""    # must appear in the record's source or reason


def add_arguments(parser):
    parser.add_argument("--workdir", metavar="DIR",
                        help="where to write the tree and the report (default: a new temporary directory, kept)")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        require_tensorflow("the demo (TensorFlow writes its checkpoints)")
    except TensorFlowMissing as exc:
        raise UsageError(str(exc)) from None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ckpt-rescue-demo-")).resolve()
    tree, report, registry = workdir / "tree", workdir / "report", workdir / "architectures.yaml"
    vault, second = workdir / "vault", workdir / "report-night-2"
    for old in (tree, report, vault, second):     # the demo's own work directory: start afresh
        if old.exists():
            shutil.rmtree(old)
    print(f"writing demo checkpoints with TensorFlow into {tree} ...", flush=True)
    planted = write_demo_tree(tree)
    write_demo_registry(registry)
    print(f"auditing it (registry {registry}, vault {vault}) ...", flush=True)
    tonight = time.time()
    _audit(tree, report, registry, vault, tonight, args.beam_args)   # judge what was written a moment ago
    code = _compare(tree, report, planted)
    if code != EXIT_OK:
        return code
    print("\na day passes: CheckpointManager deletes runs/adam/ckpt-1, a sync loses runs/adam/ckpt-2.index, "
          "and someone promotes the rebuilt index of the SavedModel in exports/; the second night's audit ...",
          flush=True)
    expected = a_day_passes(tree, report)
    _audit(tree, second, registry, vault, tonight + DAY, args.beam_args)
    return _compare_second_night(tree, second, expected)


DAY = 86400.0


def _audit(tree: Path, report: Path, registry: Path, vault: Path, now: float, beam_args) -> int:
    from recovery.memory.nightly import iso

    from .cli import main

    return main(["audit", str(tree), "--report-dir", str(report), "--registry", str(registry), "--min-age", "0",
                 "--vault", str(vault), "--now", iso(now), *beam_args])


def a_day_passes(tree: Path, report: Path) -> list:
    """What happens to the tree between the nights; returns (path, status, change, words) to expect."""
    from recovery.report.readback import read_records

    from .cli import main

    adam = tree / "runs" / "adam"
    for name in os.listdir(adam):                  # CheckpointManager(max_to_keep=...) rotates the oldest away
        if name.startswith("ckpt-1."):
            os.remove(adam / name)
    os.remove(index_filename(str(adam / "ckpt-2")))       # a sync that lost one file
    exported = next(r for r in read_records(str(report)) if r.prefix.startswith(str(tree / "exports") + "/")
                    and r.status == "rebuilt")
    words = shlex.split(exported.command)           # `ckpt-rescue promote REPORT PREFIX`, as its record says
    if words[:2] != ["ckpt-rescue", "promote"] or main(words[1:]) != EXIT_OK:    # this ckpt-rescue, on PATH or not
        raise RuntimeError(f"the record's command did not promote: {exported.command}")
    return [("runs/adam/ckpt-1", "deleted", "new", "gone"),
            ("runs/adam/ckpt-2", "rebuilt", "new", "as it was on"),
            (_rel(tree, exported.prefix), "healthy", "resolved", ""),
            ("healthy/sharded-200", "healthy", "persists", "")]


def _compare_second_night(tree: Path, report: Path, expected: list) -> int:
    from recovery.report.readback import read_records, read_summary

    found = {os.path.relpath(r.prefix, tree): r for r in read_records(str(report))}
    print("\nsecond night                                     expected           found")
    wrong = 0
    for path, status, change, words in expected:
        record = found.get(path)
        said = " ".join([record.source, record.reason, *record.checks]) if record else ""
        ok = record is not None and (record.status, record.change) == (status, change) and words in said
        wrong += not ok
        got = "(no record)" if record is None else f"{record.status}, {record.change}"
        print(f"{'ok ' if ok else 'BAD'} {path:<44} {status + ', ' + change:<18} {got}")
    rebuilt = found.get("runs/adam/ckpt-2")
    if rebuilt is not None and rebuilt.status == "rebuilt":
        confirmed = [c for c in (*rebuilt.checks, *rebuilt.evidence.get("confirmed", []))
                     if "tensors confirmed by the index as it was on" in c]
        print(f"      {confirmed[0] if confirmed else rebuilt.source}")
    summary = read_summary(str(report))
    directories = summary.get("directories") or {}
    print(f"\n{directories.get('carried', 0)} unchanged director(ies) carried forward without reading them, "
          f"{directories.get('judged', 0)} judged; report: {report / 'report.html'}")
    if wrong:
        print(f"{wrong} finding(s) of the second night differ from what the day did")
        return EXIT_ATTENTION
    print("the second night found what the day did: the vault brought the lost index back as it was")
    return EXIT_OK


def write_demo_registry(path: Path) -> None:
    """A fresh registry of DEMO_ARCHITECTURES at `path`, written as `ckpt-rescue register --builder` would."""
    from recovery.registry import add_entry

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REGISTRY_HEADER)
    for name, builder in DEMO_ARCHITECTURES.items():
        add_entry(str(path), name, builder=builder)


def write_demo_tree(tree: Path) -> list[Planted]:
    """Families from samples.families, then damage: each orphan loses its index a different way.

    Only families that TensorFlow alone writes (Keras 3 comes with it; tf_keras is not needed)."""
    from samples.families import write_family

    import_tensorflow()   # quietly, before the samples import it (they leave its start-up notices alone)
    planted = []
    adam = write_family("keras3_adam", tree / "runs" / "adam")
    planted += [Planted(_rel(tree, p), "healthy", "healthy") for p in adam.siblings]
    planted.append(_orphan(tree, adam.prefix, "index deleted (a healthy sibling survives)", "sibling"))
    truncated = Path(adam.prefix).with_name("ckpt-4.data-00000-of-00001")
    data = Path(adam.prefix + ".data-00000-of-00001").read_bytes()
    truncated.write_bytes(data[: len(data) * 3 // 5])
    planted.append(Planted(_rel(tree, str(truncated).split(".data-")[0]), "decoy: a truncated data file",
                           "unrecoverable"))
    tempstate = Path(adam.prefix).with_name("ckpt-5.data-00000-of-00001.tempstate7356230813417390124")
    tempstate.write_bytes(random.Random(5).randbytes(2048))
    planted.append(Planted(_rel(tree, str(tempstate)), "decoy: a write never renamed into place", "healthy",
                           "never renamed"))

    merged = write_family("mixed_dtypes", tree / "runs" / "merge-crash")
    planted += [Planted(_rel(tree, p), "healthy", "healthy") for p in merged.siblings]
    temp = Path(merged.prefix + "_temp")
    temp.mkdir()
    shutil.copy(index_filename(merged.prefix), temp / "part-00000-of-00001.index")   # a crash during the merge
    planted.append(_orphan(tree, merged.prefix, "crash during the merge: index lost, part index left", "part index"))

    exported = write_family("savedmodel", tree / "exports")
    planted.append(_orphan(tree, exported.prefix, "variables.index deleted from a SavedModel", "saved_model.pb"))

    tf1 = write_family("tf1_saver", tree / "legacy")
    planted.append(_orphan(tree, tf1.prefix, "TF1 Saver index deleted (its .meta survives)", "TF1 graph"))

    lone = write_family("keras_app", tree / "registry-only")
    planted.append(_orphan(tree, lone.prefix, "index deleted; no sibling: only the registry knows the model",
                           "registered `keras_app`"))

    sharded = write_family("sharded", tree / "healthy")
    planted += [Planted(_rel(tree, p), "healthy", "healthy") for p in (sharded.prefix, *sharded.siblings)]

    decoys = tree / "decoys"
    decoys.mkdir()
    (decoys / "random.data-00000-of-00001").write_bytes(random.Random(7).randbytes(4096))
    planted.append(Planted("decoys/random", "decoy: random bytes named like a data file", "unrecoverable"))
    (decoys / "checkpoint").write_text('model_checkpoint_path: "ckpt-9"\nall_model_checkpoint_paths: "ckpt-9"\n')
    planted.append(Planted("decoys/checkpoint", "decoy: a stale `checkpoint` file naming ckpt-9", "incomplete",
                           "ckpt-9"))
    return planted


def _orphan(tree: Path, prefix: str, damage: str, source: str) -> Planted:
    os.remove(index_filename(prefix))
    return Planted(_rel(tree, prefix), damage, "rebuilt", source)


def _rel(tree: Path, path: str) -> str:
    return os.path.relpath(path, tree)


def _compare(tree: Path, report: Path, planted: list[Planted]) -> int:
    """Print what was planted next to what the audit found; exit 0 when every finding is the right one."""
    from recovery.report.readback import read_records

    found = {os.path.relpath(r.prefix, tree): r for r in read_records(str(report))}
    print("\nplanted                                          expected       found")
    wrong = 0
    for item in planted:
        record = found.get(item.path)
        ok = record is not None and record.status == item.status and item.words in record.source + record.reason
        wrong += not ok
        got = "(no record)" if record is None else record.status + (f" from {record.source}" if record.source else "")
        print(f"{'ok ' if ok else 'BAD'} {item.path:<44} {item.status:<14} {got}")
        print(f"      {item.damage}")
    print(f"\ndemo tree: {tree}\nreport:    {report / 'report.html'}")
    if wrong:
        print(f"{wrong} finding(s) differ from what the demo planted")
        return EXIT_ATTENTION
    print("every planted problem was found; the rebuilt indexes are staged under "
          f"{report / 'rebuilt'} (nothing in the tree was changed)")
    return EXIT_OK
