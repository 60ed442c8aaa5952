"""Classify each directory's prefixes: records out, orphans to rebuild, healthy ones to check."""

import time

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.audit import failure_record
from recovery.classify import OrphanTask, classify_directory
from recovery.discovery import group_directory
from recovery.records import CHECKPOINT, HEALTHY

from .metrics import counter

ORPHANS, TO_CHECK = "orphans", "to_check"


class ClassifyDirectory(beam.DoFn):
    """((root, directory), files) -> Record; ORPHANS: OrphanTask; TO_CHECK: healthy Records (when checking)."""

    def __init__(self, check_healthy: bool, min_age: float = 0.0, in_place: bool = False, verify_data: bool = False):
        self.check_healthy = check_healthy
        self.min_age = min_age
        self.in_place = in_place
        self.verify_data = verify_data

    def process(self, element):
        (root, directory), files = element
        try:
            fs, root_path = storage.url_to_fs(root)
            root_display = storage.display(fs, root_path)
            results = classify_directory(fs, group_directory(directory, list(files)), root_display,
                                         self.min_age, time.time(), self.in_place, self.verify_data)
        except Exception as exc:  # noqa: BLE001 - one unreadable directory must not stop the run
            fs, root_path = storage.url_to_fs(root)
            yield failure_record(element, "classification", exc, name=storage.display(fs, directory),
                                 root=storage.display(fs, root_path))
            return
        for result in results:
            if isinstance(result, OrphanTask):
                counter("orphans_found").inc()
                yield pvalue.TaggedOutput(ORPHANS, result)
            elif self.check_healthy and result.status == HEALTHY and result.kind == CHECKPOINT:
                yield pvalue.TaggedOutput(TO_CHECK, result)
            else:
                yield result
