"""transforms/salvage.py alone, on TestPipeline: an incomplete checkpoint whose index survives (a TF1 shard
never arrived) comes out with what a salvage keeps of it, its two remaining shards read once."""

import os

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from salvage_checkpoints import data_path
from transform_helpers import classified

from recovery.prefix_steps import AuditSettings
from recovery.records import INCOMPLETE
from transforms.salvage import AssessSalvage

pytestmark = pytest.mark.tf


def test_an_incomplete_checkpoint_is_assessed_on_a_worker(tf1_run, run_copy, tmp_path):
    run = run_copy(tf1_run)
    os.remove(data_path(run.latest, 2, 3))
    record = classified(run.directory)[run.latest]
    assert record.status == INCOMPLETE and record.salvage == {}
    settings = AuditSettings(str(tmp_path / "report"))

    def salvageable(found):
        (assessed,) = found
        assert assessed.prefix == run.latest and assessed.status == INCOMPLETE
        assert assessed.reason.startswith(record.reason + "; salvageable: ")
        assert assessed.salvage["command"] == (f"ckpt-rescue salvage {run.latest} --output "
                                               f"{run.directory}/salvaged/model.ckpt-200")
        assert assessed.bytes_scanned == sum(os.path.getsize(data_path(run.latest, s, 3)) for s in (0, 1))

    with test_pipeline.TestPipeline() as p:
        assert_that(p | beam.Create([record]) | AssessSalvage(settings), salvageable)
