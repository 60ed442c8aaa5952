"""The nightly audit that remembers, on the 100k-prefix tree (issue 13): the first night with --vault,
the second night of the unchanged tree, and a third after 1% of its directories changed (a new
checkpoint saved and the oldest deleted, as a CheckpointManager does), against the first night without
a vault; whole `ckpt-rescue audit` processes with their peak RSS (benchmarks.process_tree), one run each.

Data files opened are counted in every process of a run (benchmarks/opens/sitecustomize.py, Python's
`open` audit event), beside summary.json's bytes_scanned. What the vault holds after each night is
counted on disk (files, bytes). Every night's records are checked before any figure is reported.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from recovery.report.readback import read_records
from tfbundle import data_filename, index_filename

from . import process_tree, synthetic_tree
from .audit_tree import PIPELINE, TEMPLATE_WIDTH, _memory, _stage_phase

REPO = Path(__file__).resolve().parent.parent
OPENS = Path(__file__).resolve().parent / "opens"
SECOND_TARGET, CHANGED_TARGET, RSS_TARGET = 0.25, 0.35, 1.3
NIGHT = 86400
START = time.time()


def _env(tree: str, opens: Path) -> dict:
    opens.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(OPENS), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3",
            "CKPT_BENCH_COUNT_OPENS": f"{tree}:{opens}"}


def _opened(opens: Path) -> dict:
    total = {"data": 0, "index": 0}
    for path in opens.glob("*.json"):
        for kind, n in json.loads(path.read_text()).items():
            total[kind] += n
    return total


def run_night(tree: str, report: str, night: int, work: Path, vault: str | None) -> dict:
    """Night `night` on the run's own clock (--now): a day after the one before, wherever the machine's is."""
    opens = work / "opens" / Path(report).name
    os.sync()    # what the night before wrote (a first vault night: 200,000 files) reaches the disk before this
    #              night is timed, not while it runs (the kernel writes dirty pages back from 30 s on)
    argv = [sys.executable, "-c", PIPELINE, "audit", tree, "--report-dir", report, "--min-age", "0",
            "--now", str(START + (night - 1) * NIGHT)]
    if vault:
        argv += ["--vault", vault]
    measured = process_tree.measure(argv, env=_env(tree, opens), cwd=REPO, exit_codes=(0, 1))
    stages = next(json.loads(line[len("STAGES "):]) for line in reversed(measured.stderr.splitlines())
                  if line.startswith("STAGES "))
    phases = {}
    for transforms, seconds in stages:
        phase = _stage_phase(transforms)
        phases[phase] = round(phases.get(phase, 0.0) + seconds, 3)
    summary = json.loads((Path(report) / "summary.json").read_text())
    return {"wall": round(measured.wall, 2), "cpu": round(measured.cpu, 2), "own": summary["duration_seconds"],
            "phases": phases, "engine": summary["options"]["runner"], "bytes_scanned": summary["bytes_scanned"],
            "opened": _opened(opens), "directories": summary["directories"], "carried": summary["carried"],
            "changes": summary["changes"], "vault": summary["vault"], "records": summary["records"],
            **_memory(measured)}


def vault_size(vault: str) -> dict:
    files = [p for p in Path(vault).rglob("*") if p.is_file()]
    by_part = {}
    for path in files:
        part = path.relative_to(vault).parts[0]
        entry = by_part.setdefault(part, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += path.stat().st_size
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "by_part": by_part}


def change_directories(tree: synthetic_tree.Tree, templates: list, share: float = 0.01) -> list[str]:
    """In `share` of the run directories: a new checkpoint saved (ckpt-N+1) and the oldest deleted."""
    changed = []
    step = tree.per_directory + 1
    every = round(1 / share)
    for d in range(0, tree.directories, every):
        run = os.path.join(tree.root, synthetic_tree.RUN_NAME.format(d))
        data, index = synthetic_tree.renumbered(templates[step % len(templates)], step)
        prefix = os.path.join(run, f"ckpt-{step}")
        Path(data_filename(prefix, 0, 1)).write_bytes(data)
        Path(index_filename(prefix)).write_bytes(index)
        for name in os.listdir(run):
            if name.startswith("ckpt-1."):
                os.remove(os.path.join(run, name))
        changed.append(run)
    return changed


def statuses(report: str) -> dict:
    return {r.prefix: (r.status, r.change) for r in read_records(report)}


def main(size: int = 100_000, per_directory: int = 100, orphan_share: float = 0.01,
         workdir: str | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ckpt-rescue-nightly-bench-", dir=workdir))
    try:
        print("writing the template checkpoints with TensorFlow ...", flush=True)
        template_dir = str(work / "template")
        templates = [synthetic_tree.load_template(p)
                     for p in synthetic_tree.write_templates(template_dir, TEMPLATE_WIDTH)]
        print(f"copying a tree of {size} prefixes ...", flush=True)
        tree = synthetic_tree.make_tree(template_dir, templates, str(work / "tree"), size // per_directory,
                                        per_directory, round(size * orphan_share), seed=13)
        synthetic_tree.read_back_with_tensorflow(tree.healthy_prefixes(50))
        vault, reports = str(work / "vault"), work / "reports"
        runs = {}
        load_before = os.getloadavg()[0]
        print("night 1 without a vault ...", flush=True)
        runs["first, no vault"] = run_night(tree.root, str(reports / "no-vault"), 1, work, None)
        print("night 1 with --vault ...", flush=True)
        runs["first"] = run_night(tree.root, str(reports / "night-1"), 1, work, vault)
        after_first = vault_size(vault)
        print("night 2, nothing changed ...", flush=True)
        runs["second, unchanged"] = run_night(tree.root, str(reports / "night-2"), 2, work, vault)
        after_second = vault_size(vault)
        changed = change_directories(tree, templates)
        print(f"night 3, {len(changed)} directories changed ...", flush=True)
        runs["third, 1% changed"] = run_night(tree.root, str(reports / "night-3"), 3, work, vault)
        after_third = vault_size(vault)
        _check(reports, tree, changed)
        load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        return _summarize(runs, tree, changed, [after_first, after_second, after_third], load)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(reports: Path, tree, changed: list) -> None:
    """Refuse to report times for nights that did other work than they should have."""
    first, second, third = (statuses(str(reports / n)) for n in ("night-1", "night-2", "night-3"))
    differ = sorted(p for p in first.keys() | second.keys() if first.get(p, ("",))[0] != second.get(p, ("",))[0])
    if differ:
        raise AssertionError(f"the unchanged night's verdicts differ from the first night's for {len(differ)} "
                             f"prefixes, e.g. {[(p, first.get(p), second.get(p)) for p in differ[:3]]}")
    if any(change != "persists" for _, change in second.values()):
        raise AssertionError("the unchanged night says something changed")
    deleted = {p for p, (s, c) in third.items() if s == "deleted" and c == "new"}
    new = {p for p, (s, c) in third.items() if c == "new" and s == "healthy"}
    if len(deleted) != len(changed) or len(new) != len(changed):
        raise AssertionError(f"night 3: {len(deleted)} deleted, {len(new)} new, for {len(changed)} changed")
    if sum(1 for s, _ in first.values() if s == "rebuilt") != len(tree.lost_indexes):
        raise AssertionError("night 1 did not rebuild every orphan")


def _ratio(a, b):
    return round(a / b, 2) if b else None


def _summarize(runs: dict, tree, changed: list, vault: list, load: dict) -> dict:
    first, baseline = runs["first"], runs["first, no vault"]
    second, third = runs["second, unchanged"], runs["third, 1% changed"]
    return {
        "tree": {"prefixes": tree.prefixes, "directories": tree.directories, "orphans": len(tree.lost_indexes),
                 "data_bytes": tree.data_bytes, "changed_directories": len(changed)},
        "runs": runs,
        # the targets' baseline: the first night as it runs without a vault
        "vs_no_vault": {"second_wall": _ratio(second["wall"], baseline["wall"]),
                        "changed_wall": _ratio(third["wall"], baseline["wall"]),
                        "second_cpu": _ratio(second["cpu"], baseline["cpu"]),
                        "changed_cpu": _ratio(third["cpu"], baseline["cpu"])},
        "second_vs_first_wall": _ratio(second["wall"], first["wall"]),
        "changed_vs_first_wall": _ratio(third["wall"], first["wall"]),
        "first_vs_no_vault_wall": _ratio(first["wall"], runs["first, no vault"]["wall"]),
        "rss_vs_first": {name: _ratio(r["launcher_mb"], first["launcher_mb"]) for name, r in runs.items()},
        "vault": {"after_night_1": vault[0],
                  "night_2_adds": {k: vault[1][k] - vault[0][k] for k in ("files", "bytes")},
                  "night_3_adds": {k: vault[2][k] - vault[1][k] for k in ("files", "bytes")}},
        "load_average": load,
    }


HEADER = ["| night | wall s | own s | CPU s | list | classify | rebuild | report | data files opened | bytes_scanned "
          "| directories carried / judged | peak RSS MB launcher | workers |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


def render(report: dict) -> str:
    t = report["tree"]
    rows = []
    for name, r in report["runs"].items():
        p, d = r["phases"], r["directories"] or {}
        rows.append(f"| {name} | {r['wall']:.2f} | {r['own']:.2f} | {r['cpu']:.2f} | {p.get('list', 0):.2f} | "
                    f"{p.get('classify', 0):.2f} | {p.get('rebuild', 0):.2f} | {p.get('report', 0):.2f} | "
                    f"{r['opened']['data']} | {r['bytes_scanned']} | {d.get('carried', 0)} / {d.get('judged', 0)} | "
                    f"{r['launcher_mb']} | {', '.join(map(str, r['workers_mb'])) or 'none'} |")
    v, n = report["vault"], report["vs_no_vault"]
    return "\n".join([
        f"{t['prefixes']} prefixes in {t['directories']} directories ({t['orphans']} orphans, "
        f"{t['data_bytes'] / 1e6:.0f} MB of data); {t['changed_directories']} directories changed before night 3; "
        f"engine {report['runs']['first']['engine']}; load average {report['load_average']['before']} before, "
        f"{report['load_average']['after']} after.",
        "",
        *HEADER,
        *rows,
        "",
        f"against the first night without a vault: second night wall {n['second_wall']}x (target <= "
        f"{SECOND_TARGET}x), CPU {n['second_cpu']}x; after 1% changed wall {n['changed_wall']}x (target <= "
        f"{CHANGED_TARGET}x), CPU {n['changed_cpu']}x",
        f"against the first night with --vault: second night wall {report['second_vs_first_wall']}x, after 1% "
        f"changed {report['changed_vs_first_wall']}x; first with --vault / without: "
        f"{report['first_vs_no_vault_wall']}x; peak RSS vs the first night: {report['rss_vs_first']} "
        f"(target <= {RSS_TARGET}x)",
        f"vault after night 1: {v['after_night_1']['files']} files, {v['after_night_1']['bytes']} bytes "
        f"({v['after_night_1']['by_part']}); night 2 adds {v['night_2_adds']}; night 3 adds {v['night_3_adds']}",
    ])


if __name__ == "__main__":
    result = main()
    print(render(result))
    print(json.dumps(result))
