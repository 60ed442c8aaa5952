"""report.html: one offline page for a laptop or a phone, rendered from the summary and the
Overview (the bounded lists). The template is recovery/templates/report.html; its only script is
recovery/templates/report.js, inlined and allowed by the hash of exactly the text inlined."""

import base64
import hashlib
import posixpath
import re

from ..records import ERROR, NEEDS_A_PERSON
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
        causes=sorted([c for c in overview.causes() if c["status"] != ERROR], key=_new_first),
        cause_count=overview.cause_count,
        rebuilt=overview.rebuilt(), changes=overview.changes(),
        errors=[c for c in overview.causes() if c["status"] == ERROR],
        roots_chart=roots_chart, runs_chart=runs_chart, chart_runs=len(chart_runs),
        limits={"runs": HTML_RUNS, "causes": HTML_CAUSES, "samples": HTML_SAMPLES_PER_CAUSE,
                "rebuilt": HTML_REBUILT},
        script=script, script_hash=script_hash(script), human_bytes=human_bytes, relative=relative,
        shorten=shorten, evidence_words=evidence_words, report_dir=summary.get("report_dir", ""),
        age=lambda mtime: age(mtime, now), files={"records": RECORDS, "failures": FAILURES, "promote": PROMOTE,
                                                   "summary": SUMMARY})


def _new_first(cause: dict) -> tuple:
    """Causes with a record new tonight first (issue 13's `change`), then as the Overview ranked them."""
    return (not any(r.get("change") == "new" for r in cause["samples"]),)


_PATH_RE = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|(?<![\w.~])/)[^\s'\"`,;()]+")


def shorten(text: str, root: str) -> str:
    """`text` as a person reads it: paths under `root` relative to it, other long paths as `…/NAME`.
    The full text stays one click away (the page's copy buttons and title attributes carry it)."""
    root = root.rstrip("/")

    def short(match) -> str:
        path = match.group(0)
        if root and (path == root or path.startswith(root + "/")):
            return path[len(root) + 1:] or "."
        name = posixpath.basename(path.rstrip("/"))
        return f"…/{name}" if name and path.count("/") > 1 else path

    return _PATH_RE.sub(short, text or "")


def evidence_words(evidence: dict, source: str) -> str:
    """What a rebuild's CRCs prove, in words: how many tensors a CRC recorded before confirms, and why the
    others cannot be (their bytes are new since that save)."""
    total, matched = evidence.get("reference_total", 0), evidence.get("reference_matched", 0)
    if not total:
        return f"layout from {source}; no CRC recorded before covers these bytes"
    if matched == total:
        return f"{total} tensors: all confirmed by a CRC recorded before the loss ({source})"
    if not matched:
        return (f"{total} tensors: none can be confirmed by a CRC recorded before ({source} gives their layout, "
                "not their values)")
    return (f"{total} tensors: {matched} confirmed by an earlier CRC ({source}), {total - matched} cannot be: their "
            "bytes are new since that save")


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
