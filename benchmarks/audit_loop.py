"""The audit benchmark's baseline: the audit's work as a plain sequential loop in one process, no Beam.

It calls the same pure functions the pipeline's DoFns wrap (`recovery.*`), in the order the data
flows: one recursive listing per root, group by directory, classify every prefix, rebuild every
orphan and stage its index, write the reports. The pipeline can do no less work than this, so
the ratio between the two is what Beam costs (or saves).

`python -m benchmarks.audit_loop REPORT_DIR ROOT [ROOT ...]` prints, as its last line, a JSON
object with its own run time (imports excluded) and the seconds of each phase.
"""

import json
import sys
import time
import uuid
from collections import defaultdict

from recovery import storage
from recovery.classify import classify_directory
from recovery.discovery import checkpoint_directory, group_directory
from recovery.listing import everything_under, same_filesystem_path
from recovery.prefix_steps import AuditSettings, plan_orphan, rebuild_in_one
from recovery.records import Record
from recovery.report.files import write_reports
from recovery.tasks import OrphanTask


class Phases:
    """Seconds spent per phase, so the loop's profile lines up with the pipeline's stages."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._mark = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._mark
        self._mark = now


def audit_root(root: str, settings: AuditSettings, phases: Phases) -> list[Record]:
    fs, path = storage.url_to_fs(root)
    root_display = storage.display(fs, path)
    by_directory = defaultdict(list)
    for path_and_size in everything_under(fs, path, same_filesystem_path(root, settings.report_dir)):
        by_directory[checkpoint_directory(path_and_size[0])].append(path_and_size)
    phases.done("list")
    records, orphans = [], []
    for directory, files in by_directory.items():
        for result in classify_directory(fs, group_directory(directory, files), root_display):
            (orphans if isinstance(result, OrphanTask) else records).append(result)
    phases.done("classify")
    records += [rebuild(fs, task, settings) for task in orphans]
    phases.done("rebuild")
    return records


def rebuild(fs, task: OrphanTask, settings: AuditSettings) -> Record:
    started = time.monotonic()
    plan = plan_orphan(fs, task, settings)
    if isinstance(plan, Record):
        return plan
    return rebuild_in_one(fs, task, plan, settings, started)


def main(argv: list[str]) -> int:
    report_dir, roots = argv[0], argv[1:]
    started = time.time()
    phases = Phases()
    settings = AuditSettings(report_dir)
    records = [record for root in roots for record in audit_root(root, settings, phases)]
    summary = write_reports(report_dir, records, {"run_id": uuid.uuid4().hex, "started": started, "roots": roots,
                                                  "report_dir": report_dir}, time.time())
    phases.done("report")
    print(json.dumps({"own": summary["duration_seconds"], "phases": phases.seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
