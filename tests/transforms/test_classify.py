"""transforms.classify alone: ClassifyDirectory in a TestPipeline on a directory TensorFlow wrote."""

import os

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from source_helpers import classify_local, orphan

from recovery import storage
from recovery.discovery import checkpoint_directory
from recovery.listing import everything_under
from recovery.records import CHECKPOINT, HEALTHY, UNRECOVERABLE
from transforms.classify import ORPHANS, TO_CHECK, ClassifyDirectory
from transforms.listing import DirectoryFiles, Listed

pytestmark = pytest.mark.tf


def listed(directory: str) -> DirectoryFiles:
    """The element ListFiles gives for this directory."""
    fs, path = storage.url_to_fs(directory)
    files = [Listed(*f) for f in everything_under(fs, path) if checkpoint_directory(f[0]) == path]
    return DirectoryFiles(os.path.dirname(path), path, files)


def classify(element: DirectoryFiles, check_healthy: bool, records: list, orphans: list, to_check: list) -> None:
    """Run ClassifyDirectory on one element: records and healthy ones to check as (prefix, status), orphans as
    (prefix, stage only, finding) must equal the lists given."""
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        out = (pipeline
               | beam.Create([element])
               | beam.ParDo(ClassifyDirectory(check_healthy)).with_outputs(ORPHANS, TO_CHECK, main="records"))
        assert_that(out.records | beam.Filter(lambda batch: not isinstance(batch, list)), equal_to([]), label="batches")
        checkpoints = out.records | beam.FlatMap(lambda batch: batch) | beam.Filter(lambda r: r.kind == CHECKPOINT)
        assert_that(checkpoints | beam.Map(lambda r: (r.prefix, r.status)), equal_to(records), label="records")
        assert_that(out[ORPHANS] | beam.Map(lambda t: (t.display_prefix, t.stage_only, t.finding.split(":")[0])),
                    equal_to(orphans), label="orphans")
        assert_that(out[TO_CHECK] | beam.Map(lambda r: (r.prefix, r.status)), equal_to(to_check), label="to check")


def test_an_orphan_goes_to_rebuild_and_its_healthy_siblings_are_records(family_copy):
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    classify(listed(os.path.dirname(family.prefix)), False,
             records=[(sibling, HEALTHY) for sibling in family.siblings], orphans=[(family.prefix, False, "no index")],
             to_check=[])


def test_an_unreadable_index_is_caught_and_healthy_checkpoints_go_to_be_checked_when_asked(family_copy):
    family = family_copy("keras3_adam")
    with open(family.siblings[0] + ".index", "r+b") as f:
        f.truncate(20)
    healthy = [family.prefix, *family.siblings[1:]]
    classify(listed(os.path.dirname(family.prefix)), True,       # rebuilt to be staged beside the corrupt one
             records=[], orphans=[(family.siblings[0], True, "index unreadable")],
             to_check=[(p, HEALTHY) for p in healthy])


def test_a_directory_that_cannot_be_classified_is_a_record_not_a_crash():
    element = DirectoryFiles("nosuchscheme://bucket", "bucket/run", [Listed("bucket/run/ckpt-1.index", 10, None)])
    with test_pipeline.TestPipeline(runner=FnApiRunner()) as pipeline:
        out = (pipeline
               | beam.Create([element])
               | beam.ParDo(ClassifyDirectory(False)).with_outputs(ORPHANS, TO_CHECK, main="records"))
        failed = out.records | beam.FlatMap(lambda batch: [
            (r.prefix, r.status, r.reason.startswith("classification failed")) for r in batch])
        assert_that(failed, equal_to([("bucket/run", UNRECOVERABLE, True)]))


def test_frozen_records_and_tasks_survive_the_coders_beam_gives_them(family_copy):
    """Records and OrphanTasks are frozen; Beam still encodes them between stages and workers."""
    family = family_copy("keras3_adam")
    orphan(family.prefix)
    results = classify_local(os.path.dirname(family.prefix))
    assert {type(r).__name__ for r in results.values()} == {"Record", "OrphanTask"}
    for item in results.values():
        coder = beam.coders.registry.get_coder(type(item))
        assert coder.decode(coder.encode(item)) == item
