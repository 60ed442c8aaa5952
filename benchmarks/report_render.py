"""How long the report takes for 10k records, and how much memory it holds (issue 9 point 9, issue 8).

Synthetic records shaped like a real audit (100 runs of 100 checkpoints, a `checkpoint` state file
per run, 1% rebuilt with evidence, 0.5% unrecoverable with refusals, some leftovers). Each pass runs
in its own subprocess and reports its own wall time and peak RSS (ru_maxrss):

- `records only`: imports and the records generated, no report (the baseline for the renderer);
- `write_reports`: recovery.report.files.write_reports in one process (what the sequential loop uses);
- `pipeline, count only`: Beam (FnApiRunner in one process) generating the records inside the
  pipeline and counting them (the baseline for the pipeline's report step);
- `pipeline + WriteReports`: the same plus the report step the audit runs (parts, combiners, merge,
  page). Its cost is the difference from the line above; records are generated inside the pipeline,
  so the launcher never holds them and the peak shows what the report step holds.

Run with 10k and 100k records: the report step's memory must not grow with the records.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

SIZES = (10_000, 100_000)
REPEATS = 3

CHILD = r'''
import json, os, resource, sys, time
started = time.perf_counter()
mode, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from benchmarks.report_render import make_records, CHUNK
META = {"run_id": "bench", "roots": ["gs://bench/runs"], "started": time.time(), "command": "bench",
        "report_dir": out, "options": {}}
if mode in ("records", "write_reports"):
    records = [r for i in range(0, n, CHUNK) for r in make_records(i, min(CHUNK, n - i))]
    if mode == "write_reports":
        from recovery.report.files import write_reports
        write_reports(out, records, META, time.time())
else:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from transforms.report import WriteReports
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        chunks = (p | beam.Create([(i, min(CHUNK, n - i)) for i in range(0, n, CHUNK)]) | beam.Reshuffle())
        if mode == "pipeline_count":
            _ = chunks | beam.FlatMapTuple(make_records) | beam.combiners.Count.Globally()
        else:     # the report takes records in batches (a directory's, as classification makes them)
            _ = chunks | beam.MapTuple(make_records) | WriteReports(out, META)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

CHUNK = 1000
_RECORD_FIELDS = set()
MODES = (("records", "records only (imports + records, no report)"),
         ("write_reports", "write_reports, one process"),
         ("pipeline_count", "pipeline, records generated and counted (baseline)"),
         ("pipeline_report", "pipeline + WriteReports (the audit's report step)"))


def make_records(start: int, count: int) -> list:
    """Records `start`..`start+count` of a synthetic audit: run = i // 100, step = i % 100 + 1."""
    import dataclasses

    from recovery.records import Record, inspect_command, promote_command

    global _RECORD_FIELDS
    _RECORD_FIELDS = {f.name for f in dataclasses.fields(Record)}   # evidence where this Record has it

    out = []
    for i in range(start, start + count):
        run, step = divmod(i, 100)
        directory = f"gs://bench/runs/exp-{run:04d}"
        prefix = f"{directory}/ckpt-{step + 1}"
        base = dict(root="gs://bench/runs", directory=directory, data_files=1, data_bytes=5_000_000 + i,
                    index_path=f"{prefix}.index")
        if step == 99 and run % 2 == 1:
            out.append(Record(prefix, "unrecoverable", f"no source fits: sibling ckpt-{step} accounts for "
                              f"{i} bytes of shard 0 but the file has {i + 7}", command=inspect_command(prefix),
                              refusals=[f"sibling ckpt-{step}: size mismatch", "registry: no entries"],
                              **{**base, "index_path": ""}))
        elif step == 99:
            staged = f"gs://bench/report/rebuilt/gs/bench/runs/exp-{run:04d}/ckpt-{step + 1}.index"
            extra = {"evidence": {"confirmed": ["object graph equals the sibling's", "step counter = 100"],
                                  "cannot_confirm": ["values of 12 tensors"], "reference_matched": 40,
                                  "reference_total": 52, "matched_keys": [f"layer/{k}" for k in range(40)]}}
            out.append(Record(prefix, "rebuilt", f"rebuilt from sibling ckpt-{step}", source=f"sibling ckpt-{step}",
                              staged=True, bytes_scanned=base["data_bytes"], seconds=0.05,
                              checks=["object graph matches the sibling", "every tensor's CRC computed"],
                              command=promote_command("gs://bench/report", prefix), **{**base, "index_path": staged},
                              **{k: v for k, v in extra.items() if k in _RECORD_FIELDS}))
        else:
            out.append(Record(prefix, "healthy", "index reads (52 entries) and all 1 data shard(s) are complete",
                              checks=["index readable: 52 entries, 1 shard(s)"], **base))
        if step == 0:
            out.append(Record(f"{directory}/checkpoint", "healthy", "all 5 checkpoint(s) it names exist",
                              kind="state-file", source="ckpt-100", root=base["root"], directory=directory))
        if step == 50 and run % 10 == 0:
            out.append(Record(f"{directory}/ckpt-51_temp/part-00000-of-00001", "healthy", "merge input",
                              kind="leftover", root=base["root"], directory=directory))
    return out


def _run(mode: str, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ckpt-rescue-report-bench-") as tmp:
        out = os.path.join(tmp, "report")
        done = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), out], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if done.returncode != 0:
            raise RuntimeError(f"{mode} {n}: {done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if mode in ("write_reports", "pipeline_report"):
            with open(os.path.join(out, "summary.json")) as f:
                summary = json.load(f)
            lines = sum(1 for _ in open(os.path.join(out, "records.jsonl")))
            if lines != summary["records"] or summary["records"] < n:
                raise RuntimeError(f"{mode} {n}: {lines} lines, summary says {summary['records']}")
            result["html_kib"] = round(os.path.getsize(os.path.join(out, "report.html")) / 1024)
            result["records_written"] = lines
        return result


def main() -> dict:
    results = {}
    for n in SIZES:
        repeats = REPEATS if n <= 10_000 else 1
        for mode, _ in MODES:
            runs = [_run(mode, n) for _ in range(repeats)]
            results[f"{mode}/{n}"] = {
                "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
                **{k: runs[0][k] for k in ("html_kib", "records_written") if k in runs[0]},
                "repeats": repeats,
            }
    for n in SIZES:
        results[f"report_step_seconds/{n}"] = round(results[f"pipeline_report/{n}"]["seconds"]
                                                    - results[f"pipeline_count/{n}"]["seconds"], 2)
        results[f"renderer_seconds/{n}"] = round(results[f"write_reports/{n}"]["seconds"]
                                                 - results[f"records/{n}"]["seconds"], 2)
    big, small = SIZES[-1], SIZES[0]
    results["report_step_rss_growth"] = round(results[f"pipeline_report/{big}"]["peak_rss_mb"]
                                              / results[f"pipeline_report/{small}"]["peak_rss_mb"], 2)
    return results


def render(results: dict) -> str:
    rows = ["| pass | records | seconds (whole process) | peak RSS MB | report.html KiB |", "|---|---|---|---|---|"]
    for n in SIZES:
        for mode, label in MODES:
            r = results[f"{mode}/{n}"]
            rows.append(f"| {label} | {n} | {r['seconds']} | {r['peak_rss_mb']} | {r.get('html_kib', '')} |")
    notes = [f"- renderer (write_reports minus records only): {results[f'renderer_seconds/{n}']} s at {n} records"
             for n in SIZES]
    notes += [f"- pipeline report step (with minus without WriteReports): {results[f'report_step_seconds/{n}']} s "
              f"at {n} records" for n in SIZES]
    notes.append(f"- pipeline + WriteReports peak RSS, {SIZES[-1]} / {SIZES[0]} records: "
                 f"{results['report_step_rss_growth']}x")
    return "\n".join(rows + [""] + notes)
