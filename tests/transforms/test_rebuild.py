"""transforms/rebuild.py alone, on TestPipeline: plans shipped once, ranges as spans, split orphans
joined again by prefix, a damaged range refused, a failed range failing only its own prefix."""

import os
import pickle
import shutil

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from source_helpers import orphan
from transform_helpers import flip_byte, float_tensor_near, in_a_middle_range, orphan_task

from recovery import storage
from recovery.prefix_steps import AuditSettings, plan_orphan, rebuild_in_one
from recovery.rebuild import portable, split_ranges
from recovery.registry import capture_layout, write_resolved
from tfbundle import data_filename
from transforms.ranges import PLANS, RANGES, ByteRange, SpreadRanges
from transforms.rebuild import FinalizeRebuild, PlanRebuild, RebuildOrphans, SplitRebuild, checksum

pytestmark = pytest.mark.tf
SPLIT = 1024


def _latest_orphaned(family_copy, name="keras3_adam"):
    family = family_copy(name)
    return family.prefix, orphan(family.prefix)


def _rebuild(tasks, settings, check):
    """Run RebuildOrphans on `tasks`; `check({display prefix: Record})` runs on its output."""
    with test_pipeline.TestPipeline() as p:
        records = p | beam.Create(tasks) | RebuildOrphans(settings)
        assert_that(records, lambda found: check({r.prefix: r for r in found}))


def test_the_plan_travels_once_and_ranges_as_spans(family_copy, tmp_path):
    prefix, _ = _latest_orphaned(family_copy)
    task = orphan_task(prefix)
    size = os.path.getsize(data_filename(prefix, 0, 1))

    def covers_the_file(ranges):
        assert all(isinstance(r, ByteRange) and r.prefix == prefix and r.shard == 0 for r in ranges)
        spans = sorted((r.start, r.end) for r in ranges)
        assert len(spans) >= size // SPLIT and spans[0][0] == 0 and spans[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))     # contiguous, no overlap

    def one_plan_without_a_filesystem(plans):
        (key, split), = plans
        assert key == prefix and isinstance(split, SplitRebuild)
        pickled = pickle.dumps(split)
        assert b"fsspec" not in pickled and b"LocalFileSystem" not in pickled

    with test_pipeline.TestPipeline() as p:
        out = (p | beam.Create([task])
               | beam.ParDo(PlanRebuild(AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT)))
               .with_outputs(PLANS, RANGES, main="records"))
        assert_that(out.records, equal_to([]), label="no record yet")
        assert_that(out[RANGES], covers_the_file, label="ranges")
        assert_that(out[PLANS], one_plan_without_a_filesystem, label="plans")


def test_a_split_orphan_is_rebuilt_as_it_would_be_whole(family_copy, tmp_path):
    prefix, original = _latest_orphaned(family_copy)
    task = orphan_task(prefix)
    fs, _ = storage.url_to_fs(task.root)
    whole_settings = AuditSettings(str(tmp_path / "whole"))
    whole = rebuild_in_one(fs, task, plan_orphan(fs, task, whole_settings), whole_settings, 0.0)

    def as_whole(records):
        split = records[prefix]
        assert split.status == whole.status == "rebuilt" and split.staged
        with open(split.index_path, "rb") as f:
            assert f.read() == original
        assert (split.reason, split.checks, split.evidence) == (whole.reason, whole.checks, whole.evidence)
        assert split.bytes_scanned == whole.bytes_scanned == os.path.getsize(data_filename(prefix, 0, 1))

    _rebuild([task], AuditSettings(str(tmp_path / "split"), split_bytes=SPLIT), as_whole)


def _part_index_orphan(family_copy):
    """tf_keras_weights orphaned after a crash in the merge: its part index holds the CRCs of these bytes."""
    family = family_copy("tf_keras_weights")
    os.makedirs(family.prefix + "_temp")
    shutil.copy(family.prefix + ".index", family.prefix + "_temp/part-00000-of-00001.index")
    return family.prefix, orphan(family.prefix)


def test_a_flipped_byte_in_one_range_is_refused_and_the_intact_orphan_rebuilt(family_copy, tmp_path):
    intact, original = _part_index_orphan(family_copy)
    damaged, damaged_original = _part_index_orphan(family_copy)
    task = orphan_task(damaged)
    fs, _ = storage.url_to_fs(task.root)
    ranges = split_ranges(plan_orphan(fs, task, AuditSettings(str(tmp_path / "r"))), SPLIT)
    _, second_start, second_end = sorted(ranges)[1]
    _, path, offset = float_tensor_near(damaged_original, damaged, (second_start + second_end) // 2)
    assert in_a_middle_range(offset, ranges)
    flip_byte(path, offset)

    def judged(records):
        assert records[intact].status == "rebuilt" and "part index" in records[intact].reason
        with open(records[intact].index_path, "rb") as f:
            assert f.read() == original
        refused = records[damaged]
        assert refused.status == "unrecoverable" and not refused.index_path
        assert "do not match the CRC" in refused.reason and "damaged after it was written" in refused.reason

    _rebuild([orphan_task(intact), orphan_task(damaged)], AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT),
             judged)


def test_a_range_that_cannot_be_read_fails_only_its_own_orphan(family_copy, tmp_path):
    settings = AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT)
    splits = {}
    for prefix, _ in (_latest_orphaned(family_copy), _part_index_orphan(family_copy)):
        task = orphan_task(prefix)
        fs, _ = storage.url_to_fs(task.root)
        splits[prefix] = SplitRebuild(task, portable(plan_orphan(fs, task, settings)), 0.0)
    ranges = [ByteRange(prefix, *r) for prefix, s in splits.items() for r in split_ranges(s.plan, SPLIT)]
    lost = next(p for p in splits if "keras3_adam" in p)
    os.remove(data_filename(lost, 0, 1))                  # gone between planning and reading

    def judged(records):
        by_prefix = {r.prefix: r for r in records}
        assert by_prefix[lost].status == "unrecoverable"
        assert "rebuild failed: RuntimeError: checksumming shard 0 bytes" in by_prefix[lost].reason
        other, = set(splits) - {lost}
        assert by_prefix[other].status == "rebuilt"

    with test_pipeline.TestPipeline() as p:
        joined = ({PLANS: p | "Plans" >> beam.Create(list(splits.items())), RANGES: p | "Ranges" >> beam.Create(ranges)}
                  | SpreadRanges(checksum, "checksumming", "ranges_checksummed"))
        assert_that(joined | beam.ParDo(FinalizeRebuild(settings)), judged)


def test_registry_layouts_reach_the_workers_from_the_file_written_once(family_copy, pristine_family, tmp_path):
    """An orphan only a registered layout explains; the DoFn itself carries only where to load it."""
    mixed = pristine_family("mixed_dtypes")
    lone_dir = tmp_path / "lone"
    lone_dir.mkdir()
    lone = str(lone_dir / os.path.basename(mixed.prefix))
    shutil.copy(data_filename(mixed.prefix, 0, 1), data_filename(lone, 0, 1))
    fs, path = storage.url_to_fs(mixed.siblings[0])
    layouts = {"mixed": capture_layout(fs, path, "test")}
    report = str(tmp_path / "r")
    os.makedirs(report)
    settings = AuditSettings(report, split_bytes=256, registry=write_resolved(report, layouts))
    assert b"bf16" not in pickle.dumps(PlanRebuild(settings))    # no layout pickled into the DoFn

    def rebuilt_from_the_registry(records):
        record = records[lone]
        assert record.status == "rebuilt" and "registered `mixed`" in record.reason
        with open(record.index_path, "rb") as f, open(mixed.prefix + ".index", "rb") as g:
            assert f.read() == g.read()

    _rebuild([orphan_task(lone)], settings, rebuilt_from_the_registry)
    _rebuild([orphan_task(lone)], AuditSettings(str(tmp_path / "r2"), split_bytes=256),
             lambda records: records[lone].status == "unrecoverable" or pytest.fail(records[lone].reason))
