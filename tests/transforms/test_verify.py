"""transforms/verify.py alone, on TestPipeline: a big healthy checkpoint is planned once and read in
byte ranges, with the verdicts and words of reading it whole; bit rot in a middle range is caught."""

import os

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from transform_helpers import flip_byte, float_tensor_near, healthy_record, in_a_middle_range, index_of

from recovery.prefix_steps import AuditSettings, check_ranges, check_whole, plan_check
from tfbundle import data_filename
from transforms.ranges import PLANS, RANGES, ByteRange, SpreadRanges
from transforms.verify import CheckHealthy, FinishCheck, PlanCheck, SplitCheck, read_range

pytestmark = pytest.mark.tf
SPLIT = 1024


def _check(records, settings, check):
    """Run CheckHealthy; `check({prefix: Record})` runs on its output."""
    with test_pipeline.TestPipeline() as p:
        checked = p | beam.Create(records) | CheckHealthy(settings)
        assert_that(checked, lambda found: check({r.prefix: r for r in found}))


def _whole(record, settings):
    """The same check read whole in this process, as for a checkpoint under --split-bytes."""
    return check_whole(plan_check(record, settings), 0.0)


def test_a_big_checkpoint_is_planned_once_and_read_in_ranges_of_both_checks(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    prefix = family.siblings[0]
    size = os.path.getsize(data_filename(prefix, 0, 1))
    settings = AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT, verify_data=True, rehearse=True)

    def both_parts_cover_the_file(ranges):
        assert all(isinstance(r, ByteRange) and r.prefix == prefix for r in ranges)
        for part in ("verify", "rehearse"):
            spans = sorted((r.start, r.end) for r in ranges if r.part == part)
            assert len(spans) >= 3 and spans[0][0] == 0 and spans[-1][1] == size, part

    with test_pipeline.TestPipeline() as p:
        out = (p | beam.Create([healthy_record(prefix)])
               | beam.ParDo(PlanCheck(settings)).with_outputs(PLANS, RANGES, main="records"))
        assert_that(out.records, equal_to([]), label="no record yet")
        assert_that(out[RANGES], both_parts_cover_the_file, label="ranges")
        assert_that(out[PLANS] | beam.Keys(), equal_to([prefix]), label="one plan")


def test_a_healthy_split_checkpoint_passes_with_the_words_of_a_whole_check(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    prefix = family.siblings[0]
    settings = AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT, verify_data=True, rehearse=True)
    whole = _whole(healthy_record(prefix), settings)
    assert whole.status == "healthy" and whole.rehearsal == "byte-identical"

    def as_whole(records):
        split = records[prefix]
        assert (split.status, split.reason, split.checks, split.rehearsal, split.bytes_scanned) == (
            whole.status, whole.reason, whole.checks, whole.rehearsal, whole.bytes_scanned)
        read = split.bytes_scanned - healthy_record(prefix).bytes_scanned    # beyond what classification read
        assert read == 2 * os.path.getsize(data_filename(prefix, 0, 1))     # verified + rehearsed, each once

    _check([healthy_record(prefix)], settings, as_whole)


def test_bit_rot_in_a_middle_range_is_corrupt_and_the_intact_sibling_healthy(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    intact, rotten = family.siblings
    records = [healthy_record(intact), healthy_record(rotten)]
    settings = AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT, verify_data=True, rehearse=True)
    ranges = [r[1:] for r in check_ranges(plan_check(records[1], settings), SPLIT) if r[0] == "verify"]
    _, second_start, second_end = sorted(ranges)[1]
    key, path, offset = float_tensor_near(index_of(rotten), rotten, (second_start + second_end) // 2)
    assert in_a_middle_range(offset, ranges)
    flip_byte(path, offset)
    whole = _whole(healthy_record(rotten), settings)

    def judged(found):
        assert found[intact].status == "healthy"
        assert "every tensor's bytes match the CRC in its index (--verify-data)" in found[intact].checks
        rot = found[rotten]
        assert rot.status == "corrupt" and f"tensor {key} (" in rot.reason and "checksum does not match" in rot.reason
        assert rot.reason == whole.reason and rot.command == whole.command
        assert rot.rehearsal == whole.rehearsal == "differs"     # rebuilt from its sibling: the CRC differs

    _check(records, settings, judged)


def test_a_range_that_cannot_be_read_fails_only_its_checkpoint(family_copy, tmp_path):
    family = family_copy("keras3_adam")
    kept, lost = family.siblings
    settings = AuditSettings(str(tmp_path / "r"), split_bytes=SPLIT, verify_data=True)
    splits = {p: SplitCheck(plan_check(healthy_record(p), settings), 0.0) for p in (kept, lost)}
    ranges = [ByteRange(p, shard, start, end, part) for p, s in splits.items()
              for part, shard, start, end in check_ranges(s.check, SPLIT)]
    os.remove(data_filename(lost, 0, 1))                  # gone between planning and reading

    def judged(found):
        by_prefix = {r.prefix: r for r in found}
        assert by_prefix[kept].status == "healthy"
        assert by_prefix[lost].status == "unrecoverable"
        assert "verification failed: RuntimeError: reading shard 0 bytes" in by_prefix[lost].reason

    with test_pipeline.TestPipeline() as p:
        joined = ({PLANS: p | "Plans" >> beam.Create(list(splits.items())), RANGES: p | "Ranges" >> beam.Create(ranges)}
                  | SpreadRanges(read_range, "reading", "ranges_checked"))
        assert_that(joined | beam.ParDo(FinishCheck()), judged)
