"""Progress lines for long local work: shown for big scans, quiet for small ones, honest counts."""

import io

from source_helpers import context, orphan

from pipeline.progress import Progress
from recovery.rebuild import REBUILT, rebuild


def test_a_real_rebuild_reports_its_bytes_when_asked(family_copy):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    ctx = context(family.prefix)
    total = sum(d.size for d in ctx.data_files)
    stream = io.StringIO()
    progress = Progress(total, "rebuilding", stream, min_total=0, interval=0.0)
    outcome = rebuild(ctx, on_bytes=progress)
    progress.finish()
    assert outcome.status == REBUILT, outcome.reason
    assert progress.done == total
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].startswith("rebuilding: ") and "(100%)" in lines[-1]


def test_small_work_stays_quiet():
    stream = io.StringIO()
    progress = Progress(10 << 20, "rebuilding", stream, interval=0.0)
    progress(10 << 20)
    progress.finish()
    assert stream.getvalue() == ""
