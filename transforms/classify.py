"""Classify each directory's prefixes: records out, orphans to rebuild, healthy ones to check."""

import time

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.classify import classify_directory
from recovery.discovery import group_directory
from recovery.records import CHECKPOINT, HEALTHY
from recovery.tasks import OrphanTask

from .errors import failures_become_records
from .listing import DirectoryFiles
from .metrics import counter

ORPHANS, TO_CHECK = "orphans", "to_check"


class ClassifyDirectory(beam.DoFn):
    """DirectoryFiles -> Record; ORPHANS: OrphanTask; TO_CHECK: healthy Records (when checking)."""

    def __init__(self, check_healthy: bool, min_age: float = 0.0, in_place: bool = False, verify_data: bool = False,
                 now: float | None = None):
        self.check_healthy = check_healthy
        self.min_age = min_age
        self.in_place = in_place
        self.verify_data = verify_data
        self.now = now      # ages are measured at this time (AuditSettings.now); None: the worker's clock

    @failures_become_records("classification", where=lambda self, element: (element.root, element.directory))
    def process(self, element: DirectoryFiles):
        fs, root_path = storage.url_to_fs(element.root)
        results = classify_directory(fs, group_directory(element.directory, list(element.files)),
                                     storage.display(fs, root_path), self.min_age,
                                     time.time() if self.now is None else self.now,
                                     self.in_place, self.verify_data)
        for result in results:
            if isinstance(result, OrphanTask):
                counter("orphans_found").inc()
                yield pvalue.TaggedOutput(ORPHANS, result)
            elif self.check_healthy and result.status == HEALTHY and result.kind == CHECKPOINT:
                yield pvalue.TaggedOutput(TO_CHECK, result)
            else:
                yield result
