"""Classify each directory's prefixes: records out, orphans to rebuild, healthy ones to check. With a
nightly memory (recovery/memory/), an unchanged directory is carried forward instead, every record says
what changed since the previous run, and the directory's line and counts go out beside its records."""

import time

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.classify import classify_directory
from recovery.discovery import group_directory
from recovery.memory.carry_form import FormBatch
from recovery.memory.directory import Judging, night_of
from recovery.memory.nightly import Nightly
from recovery.records import CHECKPOINT, HEALTHY, INCOMPLETE
from recovery.tasks import OrphanTask

from .collection import collect_less
from .errors import failures_become_records
from .listing import DirectoryFiles
from .memory import DIRECTORIES, NIGHT
from .metrics import counter

ORPHANS, TO_CHECK, TO_SALVAGE = "orphans", "to_check", "to_salvage"


class ClassifyDirectory(beam.DoFn):
    """DirectoryFiles -> its Records as one batch (a list: the report takes batches, transforms/report.py);
    ORPHANS: OrphanTask; TO_CHECK: healthy Records (when checking); TO_SALVAGE:
    incomplete checkpoints whose index survives (what a salvage keeps of them is assessed elsewhere). With
    `nightly`: also NIGHT (NightCounts) and DIRECTORIES (its line of directories.jsonl)."""

    def __init__(self, check_healthy: bool, min_age: float = 0.0, in_place: bool = False, verify_data: bool = False,
                 now: float | None = None, nightly: Nightly | None = None):
        self.check_healthy = check_healthy
        self.min_age = min_age
        self.in_place = in_place
        self.verify_data = verify_data
        self.now = now      # ages are measured at this time (AuditSettings.now); None: the worker's clock
        self.nightly = nightly

    def setup(self):
        collect_less()

    @failures_become_records("classification", where=lambda self, element: (element.root, element.directory),
                             batch=True)
    def process(self, element: DirectoryFiles):
        fs, root_path = storage.url_to_fs(element.root)
        root = storage.display(fs, root_path)
        if self.nightly is not None:
            yield from self._night(fs, root, element)
            return
        now = time.time() if self.now is None else self.now
        results = classify_directory(fs, group_directory(element.directory, list(element.files)), root,
                                     self.min_age, now, self.in_place, self.verify_data)
        records = []
        for result in results:
            if isinstance(result, OrphanTask):
                counter("orphans_found").inc()
                yield pvalue.TaggedOutput(ORPHANS, result)
            elif self.check_healthy and result.status == HEALTHY and result.kind == CHECKPOINT:
                yield pvalue.TaggedOutput(TO_CHECK, result)
            else:
                records.append(result)
        yield from _reported(records)

    def _night(self, fs, root: str, element: DirectoryFiles):
        judging = Judging(self.min_age, self.in_place, self.verify_data, self.check_healthy)
        night = night_of(fs, root, element.directory, list(element.files), self.nightly, judging)
        counter("directories_carried" if night.counts.carried else "directories_judged").inc()
        counter("orphans_found").inc(len(night.orphans))
        if night.form is not None:    # carried: none goes to salvage, a carried record keeps its assessment
            yield FormBatch(night.records, night.form)
        else:
            yield from _reported(night.records)
        for task in night.orphans:
            yield pvalue.TaggedOutput(ORPHANS, task)
        for record in night.to_check:
            yield pvalue.TaggedOutput(TO_CHECK, record)
        yield pvalue.TaggedOutput(NIGHT, night.counts)
        yield pvalue.TaggedOutput(DIRECTORIES, night.line)


def _reported(records: list):
    """TO_SALVAGE: each record whose salvage is to be assessed; the others as one batch for the report."""
    batch = []
    for record in records:
        if to_salvage(record):
            yield pvalue.TaggedOutput(TO_SALVAGE, record)
        else:
            batch.append(record)
    if batch:
        yield batch


def to_salvage(record) -> bool:
    """An incomplete checkpoint whose index survives, judged now (not carried): its salvage is assessed."""
    return (record.status == INCOMPLETE and record.kind == CHECKPOINT and bool(record.index_path)
            and bool(record.data_files) and not record.carried_from)
