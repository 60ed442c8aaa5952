"""report.html: one offline page for a laptop or a phone, rendered from the summary and the
Overview (the bounded lists). The template is recovery/templates/report.html; its only script is
recovery/templates/report.js, inlined and allowed by the hash of exactly the text inlined."""

import base64
import hashlib

from ..records import NEEDS_A_PERSON
from .aggregates import HTML_CAUSES, HTML_REBUILT, HTML_RUNS, HTML_SAMPLES_PER_CAUSE, Overview, run_priority
from .schema import FAILURES, PROMOTE, RECORDS, SUMMARY
from .summary import statuses_of
from .templates import html_templates

CHART_RUNS = 40                 # bars in the per-run chart


def render_page(summary: dict, overview: Overview, now: float) -> str:
    statuses = [s for s in statuses_of(summary["counts"]) if s in summary["counts"]]   # JSON may have sorted them
    runs = [{**run, "relative": relative(run["directory"], run["root"]) or "."} for run in overview.runs()]
    roots_chart = [_bar(root, entry["counts"], statuses) for root, entry in summary["per_root"].items()]
    chart_runs = sorted(runs, key=run_priority, reverse=True)[:CHART_RUNS]
    runs_chart = [_bar(f"{r['relative']}", r["counts"], statuses, title=r["directory"]) for r in
                  sorted(chart_runs, key=lambda r: (r["root"], r["directory"]))]
    script = html_templates().get_template("report.js").render()
    return html_templates().get_template("report.html").render(
        summary=summary, statuses=statuses, needs=list(NEEDS_A_PERSON),
        runs=sorted(runs, key=lambda r: (r["root"], r["directory"])), run_count=overview.run_count,
        causes=overview.causes(), cause_count=overview.cause_count,
        rebuilt=overview.rebuilt(), changes=overview.changes(),
        roots_chart=roots_chart, runs_chart=runs_chart, chart_runs=len(chart_runs),
        limits={"runs": HTML_RUNS, "causes": HTML_CAUSES, "samples": HTML_SAMPLES_PER_CAUSE,
                "rebuilt": HTML_REBUILT},
        script=script, script_hash=script_hash(script), human_bytes=human_bytes, relative=relative,
        age=lambda mtime: age(mtime, now), files={"records": RECORDS, "failures": FAILURES, "promote": PROMOTE,
                                                   "summary": SUMMARY})


def script_hash(script: str) -> str:
    """The Content-Security-Policy source that allows exactly this inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def _bar(label: str, counts: dict, statuses: list, title: str = "") -> dict:
    total = sum(counts.get(s, 0) for s in statuses)
    segments, x = [], 0.0
    for status in statuses:
        n = counts.get(status, 0)
        if n:
            width = 1000.0 * n / total
            segments.append({"status": status, "count": n, "x": round(x, 2), "width": round(width, 2)})
            x += width
    return {"label": label, "title": title or label, "total": total, "segments": segments}


def relative(path: str, root: str) -> str:
    """`path` below `root` as the user would read it inside that root; the path itself when outside."""
    root = root.rstrip("/")
    if path == root:
        return ""
    if root and path.startswith(root + "/"):
        return path[len(root) + 1:]
    return path


def age(mtime, now: float) -> str:
    if mtime is None:
        return ""
    seconds = max(0.0, now - float(mtime))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
