"""Audit a synthetic tree of checkpoint prefixes with the Beam pipeline and with a plain loop.

Two trees are copied from one small TensorFlow save (benchmarks.synthetic_tree):

- the audit tree: 10,000 prefixes in 100 runs of ckpt-1..ckpt-100, 1% of them orphans. The
  pipeline (`python -m pipeline audit`, DirectRunner multi-processing, 2 workers) is compared
  with benchmarks.audit_loop, the same pure functions in one sequential process.
- a rebuild-heavy tree (95% orphans), audited with 1 and with 2 workers, for scaling.

Every command runs in its own subprocess and is timed whole, start-up included; each also says
how long its own run took (summary.json's duration_seconds, which the pipeline prints as
"audited N record(s) ... in X s"). The pipeline is launched as `python -m pipeline` through
runpy with one addition: a clock around the runner's per-stage call, so the time of each
fused stage can be reported. Variants are interleaved and each figure is the median of the
repeats. Every run's records and staged indexes are compared (same work, same bytes, and the
bytes TensorFlow's own index had) before any figure is reported.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recovery.report import read_records

from . import synthetic_tree

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_WIDTH = 16          # hidden units: ~5 KB per checkpoint with Adam's slots
PIPELINE_TARGET, SCALING_TARGET = 1.5, 1.7
READ_BACK = 100              # copies per tree that TensorFlow restores before anything is timed

# `python -m pipeline`, plus a clock around FnApiRunner._execute_bundle (one call per fused stage).
PIPELINE = r'''
import atexit, json, runpy, sys, time
from apache_beam.runners.portability.fn_api_runner import fn_runner
stages = []
execute_bundle = fn_runner.FnApiRunner._execute_bundle
def timed(self, context, manager, bundle_input):
    started = time.perf_counter()
    try:
        return execute_bundle(self, context, manager, bundle_input)
    finally:
        stages.append(([t.unique_name for t in manager.stage.transforms], time.perf_counter() - started))
fn_runner.FnApiRunner._execute_bundle = timed
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


def _timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the command and every process it waited for, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {out.returncode}:\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def run_loop(root: str, report_dir: str) -> dict:
    wall, cpu, out = _timed([sys.executable, "-m", "benchmarks.audit_loop", report_dir, root])
    reported = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "own": reported["own"], "phases": reported["phases"]}


def run_pipeline(root: str, report_dir: str, workers: int) -> dict:
    wall, cpu, out = _timed([sys.executable, "-c", PIPELINE, "audit", root, "--report-dir", report_dir,
                             "--min-age", "0",
                             f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"])
    stages = next(json.loads(line[len("STAGES "):]) for line in reversed(out.stderr.splitlines())
                  if line.startswith("STAGES "))
    phases = {}
    for transforms, seconds in stages:
        phase = _stage_phase(transforms)
        phases[phase] = phases.get(phase, 0.0) + seconds
    summary = json.loads((Path(report_dir) / "summary.json").read_text())
    return {"wall": wall, "cpu": cpu, "own": summary["duration_seconds"], "phases": phases}


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
    return result


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def main(prefixes: int = 10_000, per_directory: int = 100, orphan_share: float = 0.01,
         heavy_directories: int = 60, heavy_orphans_per_directory: int = 95, repeats: int = 3,
         workdir: str | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ckpt-rescue-audit-bench-", dir=workdir))
    try:
        print("writing the template checkpoints with TensorFlow ...", flush=True)
        template_dir = str(work / "template")
        templates = [synthetic_tree.load_template(p)
                     for p in synthetic_tree.write_templates(template_dir, TEMPLATE_WIDTH)]
        tree = synthetic_tree.make_tree(template_dir, templates, str(work / "tree"), prefixes // per_directory,
                                        per_directory, round(prefixes * orphan_share), seed=0)
        heavy = synthetic_tree.make_tree(template_dir, templates, str(work / "heavy"), heavy_directories,
                                         per_directory, heavy_directories * heavy_orphans_per_directory, seed=1)
        synthetic_tree.read_back_with_tensorflow(tree.healthy_prefixes(READ_BACK) + heavy.healthy_prefixes(READ_BACK))
        empty = work / "empty"
        empty.mkdir()
        variants = {
            "loop": lambda out: run_loop(tree.root, out),
            "pipeline": lambda out: run_pipeline(tree.root, out, 2),
            "loop_empty": lambda out: run_loop(str(empty), out),
            "pipeline_empty": lambda out: run_pipeline(str(empty), out, 2),
            "heavy_loop": lambda out: run_loop(heavy.root, out),
            "heavy_1_worker": lambda out: run_pipeline(heavy.root, out, 1),
            "heavy_2_workers": lambda out: run_pipeline(heavy.root, out, 2),
        }
        runs = {name: [] for name in variants}
        expected, verified = {}, 0
        load_before = os.getloadavg()[0]
        for repeat in range(repeats):
            for name, run in variants.items():
                print(f"repeat {repeat + 1}/{repeats}: {name} ...", flush=True)
                report_dir = str(work / "reports" / f"{name}-{repeat}")
                runs[name].append(run(report_dir))
                source = heavy if name.startswith("heavy") else tree
                if name.endswith("empty"):
                    continue
                expected.setdefault(source.root, outcome(report_dir))
                check_same_work(report_dir, expected[source.root], source.lost_indexes, name)
                verified += 1
                shutil.rmtree(report_dir)
        seconds = {name: _median(r) for name, r in runs.items()}
        load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        return _summarize(seconds, tree, heavy, repeats, load, verified)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prefixes_for_target(loop_fixed: float, loop_per_prefix: float, pipeline_fixed: float,
                        pipeline_per_prefix: float, target: float = PIPELINE_TARGET) -> int | None:
    """Where the wall ratio would reach `target` if both costs stayed linear in the prefix count."""
    gain = (target * loop_per_prefix - pipeline_per_prefix)
    if gain <= 0:
        return None
    return max(0, round((pipeline_fixed - target * loop_fixed) / gain))


def _summarize(seconds: dict, tree, heavy, repeats: int, load: dict, verified: int) -> dict:
    loop, pipeline = seconds["loop"], seconds["pipeline"]
    loop_empty, pipeline_empty = seconds["loop_empty"], seconds["pipeline_empty"]
    one, two = seconds["heavy_1_worker"], seconds["heavy_2_workers"]
    marginal_loop = loop["wall"] - loop_empty["wall"]
    marginal_pipeline = pipeline["wall"] - pipeline_empty["wall"]
    return {
        "tree": {"prefixes": tree.prefixes, "directories": tree.directories, "orphans": len(tree.lost_indexes),
                 "data_bytes": tree.data_bytes},
        "heavy_tree": {"prefixes": heavy.prefixes, "directories": heavy.directories,
                       "orphans": len(heavy.lost_indexes), "data_bytes": heavy.data_bytes},
        "repeats": repeats,
        "seconds": seconds,
        "pipeline_vs_loop": {"wall": _ratio(pipeline["wall"], loop["wall"]),
                             "own": _ratio(pipeline["own"], loop["own"]),
                             "cpu": _ratio(pipeline["cpu"], loop["cpu"]),
                             "marginal_wall": _ratio(marginal_pipeline, marginal_loop)},
        "fixed_wall": {"loop": loop_empty["wall"], "pipeline": pipeline_empty["wall"]},
        "prefixes_where_wall_ratio_reaches_target": prefixes_for_target(
            loop_empty["wall"], marginal_loop / tree.prefixes,
            pipeline_empty["wall"], marginal_pipeline / tree.prefixes),
        "scaling_1_to_2_workers": {"wall": _ratio(one["wall"], two["wall"]), "own": _ratio(one["own"], two["own"]),
                                   "rebuild_stage": _ratio(one["phases"].get("rebuild", 0),
                                                           two["phases"].get("rebuild", 0))},
        "heavy_pipeline_2_workers_vs_loop": {"wall": _ratio(two["wall"], seconds["heavy_loop"]["wall"])},
        "runs_checked_for_same_records_and_index_bytes": verified,
        "load_average": load,
    }


PHASES_SHOWN = ("list", "classify", "rebuild", "report")
HEADER = ["| run | wall s, whole command | own s (summary.json) | CPU s, all processes | cores busy | list | classify "
          "| rebuild | report |", "|---|---|---|---|---|---|---|---|---|"]


def _row(label: str, s: dict) -> str:
    phases = " | ".join(f"{s['phases'].get(p, 0):.2f}" for p in PHASES_SHOWN)
    return f"| {label} | {s['wall']:.2f} | {s['own']:.2f} | {s['cpu']:.2f} | {s['cpu'] / s['wall']:.2f} | {phases} |"


def render(report: dict) -> str:
    t, h, s = report["tree"], report["heavy_tree"], report["seconds"]
    r, k = report["pipeline_vs_loop"], report["scaling_1_to_2_workers"]
    reach = report["prefixes_where_wall_ratio_reaches_target"]
    return "\n".join([
        f"Audit of {t['prefixes']} prefixes in {t['directories']} directories, {t['orphans']} orphans "
        f"(median of {report['repeats']}; load average {report['load_average']['before']} before, "
        f"{report['load_average']['after']} after). Phase columns: the loop's own phases; for the pipeline, "
        "the wall time of its fused stages (the first one also waits for the worker processes to start).",
        "",
        *HEADER,
        _row("plain loop, 1 process", s["loop"]),
        _row("pipeline, 2 workers", s["pipeline"]),
        _row("plain loop, empty tree", s["loop_empty"]),
        _row("pipeline, 2 workers, empty tree", s["pipeline_empty"]),
        "",
        f"pipeline / loop: wall {r['wall']}x, own {r['own']}x, CPU {r['cpu']}x (target <= {PIPELINE_TARGET}x); "
        f"without the empty-tree cost: {r['marginal_wall']}x; "
        + (f"the wall ratio would reach {PIPELINE_TARGET}x at about {reach} prefixes (linear extrapolation)"
           if reach is not None else f"past the start-up, the pipeline costs more than {PIPELINE_TARGET}x the loop "
                                     "per prefix, so no tree size reaches the target"),
        "",
        f"Rebuild-heavy tree: {h['prefixes']} prefixes in {h['directories']} directories, {h['orphans']} orphans.",
        "",
        *HEADER,
        _row("plain loop, 1 process", s["heavy_loop"]),
        _row("pipeline, 1 worker", s["heavy_1_worker"]),
        _row("pipeline, 2 workers", s["heavy_2_workers"]),
        "",
        f"1 -> 2 workers: rebuild stage {k['rebuild_stage']}x, own {k['own']}x, whole command {k['wall']}x "
        f"(target >= {SCALING_TARGET}x); pipeline with 2 workers / loop, whole command: "
        f"{report['heavy_pipeline_2_workers_vs_loop']['wall']}x",
    ])


if __name__ == "__main__":
    result = main()
    print(render(result))
    print(json.dumps(result))
