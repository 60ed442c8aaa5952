"""Audit synthetic trees of checkpoint prefixes with the Beam pipeline and with a plain loop.

Trees are copied from one small TensorFlow save (benchmarks.synthetic_tree):

- audit trees of 10,000 and 100,000 prefixes in runs of ckpt-1..ckpt-100, 1% of them orphans.
  `ckpt-rescue audit` (the engine it chooses itself) is compared with benchmarks.audit_loop, the
  same pure functions in one sequential process;
- an empty tree: the fixed cost, with the chosen engine and with two worker processes;
- a rebuild-heavy tree (95% orphans), audited with 1 and with 2 workers, for scaling.

Every command runs in its own subprocess and is timed whole, start-up included, with the peak RSS of
its own process and of each worker process under it (benchmarks.process_tree); each also says how
long its own run took (summary.json's duration_seconds). The pipeline is launched as
`python -m pipeline` through runpy with one addition: a clock around the runner's per-stage call,
so the time of each fused stage can be reported. Variants are interleaved and each figure is the
median of the repeats (memory: the largest). Every run's records and staged indexes are compared
(same work, same bytes, and the bytes TensorFlow's own index had) before any figure is reported.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from recovery.report.readback import read_records

from . import process_tree, synthetic_tree

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_WIDTH = 16          # hidden units: ~5 KB per checkpoint with Adam's slots
PIPELINE_TARGET, SCALING_TARGET = 1.5, 1.7
# 1 when a run's `checkpoint` state file names an orphan (the synthetic trees lose random indexes);
# the records are compared with the loop's either way.
AUDIT_EXIT_CODES = (0, 1)
READ_BACK = 100              # copies per tree that TensorFlow restores before anything is timed

# `python -m pipeline`, plus a clock around FnApiRunner._execute_bundle (one call per fused stage).
PIPELINE = r'''
import atexit, importlib.abc, importlib.util, json, runpy, sys, time
FN_RUNNER = "apache_beam.runners.portability.fn_api_runner.fn_runner"
stages = []
def instrument(fn_runner):
    execute_bundle = fn_runner.FnApiRunner._execute_bundle
    def timed(self, context, manager, bundle_input):
        started = time.perf_counter()
        try:
            return execute_bundle(self, context, manager, bundle_input)
        finally:
            stages.append(([t.unique_name for t in manager.stage.transforms], time.perf_counter() - started))
    fn_runner.FnApiRunner._execute_bundle = timed
class WhenImported(importlib.abc.MetaPathFinder):
    """Instrument Beam's runner when the audit imports it: importing it here would import Beam before
    the launcher does, and so before it starts its worker processes (pipeline/warm_workers.py)."""
    def find_spec(self, name, path, target=None):
        if name != FN_RUNNER:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module
        def exec_and_instrument(module):
            exec_module(module)
            instrument(module)
        spec.loader.exec_module = exec_and_instrument
        return spec
sys.meta_path.insert(0, WhenImported())
atexit.register(lambda: print("STAGES " + json.dumps(stages), file=sys.stderr, flush=True))
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
'''

# Which phase a fused stage belongs to: the first of these transform names it contains.
# The first stage also waits for the worker processes to start.
PHASES = (("Classify", "classify"), ("Rebuild/", "rebuild"), ("Check healthy", "rebuild"), ("Tally", "report"),
          ("Report/", "report"), ("List", "list"), ("Roots", "list"))


def _stage_phase(transforms: list[str]) -> str:
    for marker, phase in PHASES:
        if any(name.startswith(marker) for name in transforms):
            return phase
    return "other"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _memory(measured: process_tree.Measured) -> dict:
    """Peak RSS in MB: the command's own process, and each worker process under it."""
    return {"launcher_mb": round(measured.launcher_peak / 1e6),
            "workers_mb": sorted(round(peak / 1e6) for peak, line in measured.child_peaks.values()
                                 if "python" in line),   # not the shells that start them
            "tree_mb": round(measured.tree_peak / 1e6)}


def run_loop(root: str, report_dir: str) -> dict:
    measured = process_tree.measure([sys.executable, "-m", "benchmarks.audit_loop", report_dir, root],
                                    env=_env(), cwd=REPO)
    reported = json.loads(measured.stdout.strip().splitlines()[-1])
    return {"wall": measured.wall, "cpu": measured.cpu, "own": reported["own"], "phases": reported["phases"],
            **_memory(measured)}


def run_pipeline(root: str, report_dir: str, engine: list[str]) -> dict:
    """`ckpt-rescue audit` with `engine` flags (none: the engine the command chooses itself)."""
    measured = process_tree.measure([sys.executable, "-c", PIPELINE, "audit", root, "--report-dir", report_dir,
                                     "--min-age", "0", *engine], env=_env(), cwd=REPO, exit_codes=AUDIT_EXIT_CODES)
    stages = next(json.loads(line[len("STAGES "):]) for line in reversed(measured.stderr.splitlines())
                  if line.startswith("STAGES "))
    phases = {}
    for transforms, seconds in stages:
        phase = _stage_phase(transforms)
        phases[phase] = phases.get(phase, 0.0) + seconds
    summary = json.loads((Path(report_dir) / "summary.json").read_text())
    return {"wall": measured.wall, "cpu": measured.cpu, "own": summary["duration_seconds"], "phases": phases,
            "engine": summary["options"]["runner"], **_memory(measured)}


def workers(count: int) -> list[str]:
    return [f"--direct_num_workers={count}", "--direct_running_mode=multi_processing"]


def outcome(report_dir: str) -> tuple[set, dict]:
    """What a run concluded: {(prefix, kind, status)}, and {prefix: staged index bytes}."""
    records = read_records(report_dir)
    staged = {r.prefix: Path(r.index_path).read_bytes() for r in records if r.staged}
    return {(r.prefix, r.kind, r.status) for r in records}, staged


def check_same_work(report_dir: str, expected: tuple[set, dict], lost_indexes: dict, label: str) -> None:
    """Refuse to report a time for a run that did different work or wrote different bytes."""
    statuses, staged = outcome(report_dir)
    if statuses != expected[0]:
        diff = sorted(statuses ^ expected[0])[:5]
        raise AssertionError(f"{label}: records differ from the loop's, e.g. {diff}")
    if staged != expected[1] or staged != lost_indexes:
        wrong = sorted(p for p in lost_indexes if staged.get(p) != lost_indexes[p])[:5]
        raise AssertionError(f"{label}: staged indexes differ from TensorFlow's own, e.g. {wrong}")


def _median(runs: list[dict]) -> dict:
    result = {key: round(statistics.median(r[key] for r in runs), 3) for key in ("wall", "cpu", "own")}
    phases = sorted({p for r in runs for p in r["phases"]})
    result["phases"] = {p: round(statistics.median(r["phases"].get(p, 0.0) for r in runs), 3) for p in phases}
    result["launcher_mb"] = max(r["launcher_mb"] for r in runs)      # memory: the worst repeat
    result["workers_mb"] = max((r["workers_mb"] for r in runs), key=lambda w: max(w, default=0))
    result["tree_mb"] = max(r["tree_mb"] for r in runs)
    if "engine" in runs[0]:
        result["engine"] = runs[0]["engine"]
    return result


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def main(sizes: tuple = (10_000, 100_000), per_directory: int = 100, orphan_share: float = 0.01,
         heavy_directories: int = 60, heavy_orphans_per_directory: int = 95, repeats: int = 3,
         large_repeats: int = 1, workdir: str | None = None) -> dict:
    """Every tree is audited by the loop and by the command with the engine it chooses; trees above the
    smallest size are audited `large_repeats` times (minutes each)."""
    work = Path(tempfile.mkdtemp(prefix="ckpt-rescue-audit-bench-", dir=workdir))
    try:
        print("writing the template checkpoints with TensorFlow ...", flush=True)
        template_dir = str(work / "template")
        templates = [synthetic_tree.load_template(p)
                     for p in synthetic_tree.write_templates(template_dir, TEMPLATE_WIDTH)]
        trees = {}
        for i, size in enumerate(sizes):
            print(f"copying a tree of {size} prefixes ...", flush=True)
            trees[size] = synthetic_tree.make_tree(template_dir, templates, str(work / f"tree-{size}"),
                                                   size // per_directory, per_directory,
                                                   round(size * orphan_share), seed=i)
        heavy = synthetic_tree.make_tree(template_dir, templates, str(work / "heavy"), heavy_directories,
                                         per_directory, heavy_directories * heavy_orphans_per_directory, seed=99)
        synthetic_tree.read_back_with_tensorflow(
            [p for tree in [*trees.values(), heavy] for p in tree.healthy_prefixes(READ_BACK)])
        empty = work / "empty"
        empty.mkdir()
        variants = {}   # name -> (tree or None, run, repeats)
        for size, tree in trees.items():
            times = repeats if size == min(sizes) else large_repeats
            variants[f"loop/{size}"] = (tree, lambda out, t=tree: run_loop(t.root, out), times)
            variants[f"pipeline/{size}"] = (tree, lambda out, t=tree: run_pipeline(t.root, out, []), times)
        variants["loop/empty"] = (None, lambda out: run_loop(str(empty), out), repeats)
        variants["pipeline/empty"] = (None, lambda out: run_pipeline(str(empty), out, []), repeats)
        variants["pipeline/empty, 2 workers"] = (None, lambda out: run_pipeline(str(empty), out, workers(2)), repeats)
        variants["heavy/loop"] = (heavy, lambda out: run_loop(heavy.root, out), repeats)
        variants["heavy/1 worker"] = (heavy, lambda out: run_pipeline(heavy.root, out, workers(1)), repeats)
        variants["heavy/2 workers"] = (heavy, lambda out: run_pipeline(heavy.root, out, workers(2)), repeats)
        runs = {name: [] for name in variants}
        expected, verified = {}, 0
        load_before = os.getloadavg()[0]
        for repeat in range(repeats):
            for name, (source, run, times) in variants.items():
                if repeat >= times:
                    continue
                print(f"repeat {repeat + 1}/{times}: {name} ...", flush=True)
                report_dir = str(work / "reports" / f"{name.replace('/', '-')}-{repeat}")
                runs[name].append(run(report_dir))
                if source is not None:
                    expected.setdefault(source.root, outcome(report_dir))
                    check_same_work(report_dir, expected[source.root], source.lost_indexes, name)
                    verified += 1
                shutil.rmtree(report_dir)
        measured = {name: _median(r) for name, r in runs.items()}
        load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        return _summarize(measured, trees, heavy, repeats, large_repeats, load, verified)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _summarize(measured: dict, trees: dict, heavy, repeats: int, large_repeats: int, load: dict,
               verified: int) -> dict:
    sizes = sorted(trees)
    small, large = sizes[0], sizes[-1]
    one, two = measured["heavy/1 worker"], measured["heavy/2 workers"]

    def peak_workers(name):
        return max(measured[name]["workers_mb"], default=0)

    return {
        "trees": {size: {"prefixes": t.prefixes, "directories": t.directories, "orphans": len(t.lost_indexes),
                         "data_bytes": t.data_bytes} for size, t in trees.items()},
        "heavy_tree": {"prefixes": heavy.prefixes, "directories": heavy.directories,
                       "orphans": len(heavy.lost_indexes), "data_bytes": heavy.data_bytes},
        "repeats": {"smallest_tree_empty_and_heavy": repeats, "larger_trees": large_repeats},
        "measured": measured,
        "pipeline_vs_loop_wall": {size: _ratio(measured[f"pipeline/{size}"]["wall"], measured[f"loop/{size}"]["wall"])
                                  for size in sizes},
        "pipeline_vs_loop_own": {size: _ratio(measured[f"pipeline/{size}"]["own"], measured[f"loop/{size}"]["own"])
                                 for size in sizes},
        # On a shared machine a process gets a share of the cores, and the pipeline runs three: CPU seconds
        # say what the work cost where wall time says how the scheduler split the machine.
        "pipeline_vs_loop_cpu": {size: _ratio(measured[f"pipeline/{size}"]["cpu"], measured[f"loop/{size}"]["cpu"])
                                 for size in sizes},
        "memory_growth": {
            "prefixes": f"{small} -> {large}",
            # the command may choose one process for the small tree and workers for the large one
            "same_engine": measured[f"pipeline/{small}"].get("engine") == measured[f"pipeline/{large}"].get("engine"),
            "pipeline_launcher": _ratio(measured[f"pipeline/{large}"]["launcher_mb"],
                                        measured[f"pipeline/{small}"]["launcher_mb"]),
            "pipeline_worst_worker": _ratio(peak_workers(f"pipeline/{large}"), peak_workers(f"pipeline/{small}")),
            "loop": _ratio(measured[f"loop/{large}"]["launcher_mb"], measured[f"loop/{small}"]["launcher_mb"]),
        },
        "empty_tree_wall": {"loop": measured["loop/empty"]["wall"], "pipeline": measured["pipeline/empty"]["wall"],
                            "pipeline_2_workers": measured["pipeline/empty, 2 workers"]["wall"]},
        "scaling_1_to_2_workers": {"wall": _ratio(one["wall"], two["wall"]), "own": _ratio(one["own"], two["own"]),
                                   "rebuild_stage": _ratio(one["phases"].get("rebuild", 0),
                                                           two["phases"].get("rebuild", 0))},
        "heavy_pipeline_2_workers_vs_loop": {"wall": _ratio(two["wall"], measured["heavy/loop"]["wall"])},
        "runs_checked_for_same_records_and_index_bytes": verified,
        "load_average": load,
    }


PHASES_SHOWN = ("list", "classify", "rebuild", "report")
HEADER = ["| run | engine | wall s, whole command | own s (summary.json) | CPU s, all processes | list | classify "
          "| rebuild | report | peak RSS MB, launcher | peak RSS MB, each worker |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]


def _engine(s: dict) -> str:
    engine = s.get("engine", "plain loop, 1 process")
    return engine.replace("DirectRunner engine (FnApiRunner, ", "").removesuffix(")")


def _row(label: str, s: dict) -> str:
    phases = " | ".join(f"{s['phases'].get(p, 0):.2f}" for p in PHASES_SHOWN)
    each = ", ".join(str(w) for w in s["workers_mb"]) or "none"
    return (f"| {label} | {_engine(s)} | {s['wall']:.2f} | {s['own']:.2f} | {s['cpu']:.2f} | {phases} "
            f"| {s['launcher_mb']} | {each} |")


def render(report: dict) -> str:
    m, h = report["measured"], report["heavy_tree"]
    sizes = sorted(report["trees"], key=int)
    k, g = report["scaling_1_to_2_workers"], report["memory_growth"]
    rows = []
    for size in sizes:
        t = report["trees"][size]
        rows.append(_row(f"loop, {t['prefixes']} prefixes", m[f"loop/{size}"]))
        rows.append(_row(f"pipeline, {t['prefixes']} prefixes", m[f"pipeline/{size}"]))
    rows += [_row("loop, empty tree", m["loop/empty"]), _row("pipeline, empty tree", m["pipeline/empty"]),
             _row("pipeline, empty tree, 2 workers", m["pipeline/empty, 2 workers"])]
    ratios = "; ".join(f"{size}: wall {report['pipeline_vs_loop_wall'][size]}x, own "
                       f"{report['pipeline_vs_loop_own'][size]}x, CPU {report['pipeline_vs_loop_cpu'][size]}x"
                       for size in sizes)
    return "\n".join([
        f"Audit trees of {', '.join(str(report['trees'][s]['prefixes']) for s in sizes)} prefixes (100 per "
        f"directory, 1% orphans); repeats: {report['repeats']}; load average {report['load_average']['before']} "
        f"before, {report['load_average']['after']} after. The pipeline is `ckpt-rescue audit` with the engine it "
        "chooses; phase columns are the wall time of its fused stages (the loop's own phases for the loop). Peak "
        "RSS: the command's own process and each worker process under it (VmHWM, polled).",
        "",
        *HEADER,
        *rows,
        "",
        f"pipeline / loop: {ratios} (target at {sizes[-1]}: wall <= {PIPELINE_TARGET}x)",
        f"peak RSS growth {g['prefixes']} prefixes: pipeline launcher {g['pipeline_launcher']}x, worst worker "
        f"{g['pipeline_worst_worker']}x, loop {g['loop']}x (target for the pipeline <= 1.3x"
        + ("" if g["same_engine"] else "; the two sizes ran different engines, so compare them with "
                                      "explicit --direct_running_mode/--direct_num_workers") + ")",
        "",
        f"Rebuild-heavy tree: {h['prefixes']} prefixes in {h['directories']} directories, {h['orphans']} orphans.",
        "",
        *HEADER,
        _row("loop", m["heavy/loop"]),
        _row("pipeline, 1 worker", m["heavy/1 worker"]),
        _row("pipeline, 2 workers", m["heavy/2 workers"]),
        "",
        f"1 -> 2 workers: rebuild stage {k['rebuild_stage']}x, own {k['own']}x, whole command {k['wall']}x "
        f"(target >= {SCALING_TARGET}x); pipeline with 2 workers / loop, whole command: "
        f"{report['heavy_pipeline_2_workers_vs_loop']['wall']}x",
    ])


if __name__ == "__main__":
    result = main()
    print(render(result))
    print(json.dumps(result))
