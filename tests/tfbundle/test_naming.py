"""Checkpoint names as Saver and CheckpointManager number them: the step a name carries, and only that."""

import pytest

from tfbundle import split_step, step_of
from tfbundle.naming import DataFileName, parse_data_filename, part_of


@pytest.mark.parametrize("prefix, expected", [
    ("ckpt-57", ("ckpt", 57)),
    ("runs/a/model.ckpt-2000", ("model.ckpt", 2000)),
    ("gs://b/run-3/ckpt-1-2", ("ckpt-1", 2)),          # the last number is the step
    ("ckpt-007", ("ckpt", 7)),
])
def test_numbered_names_give_their_stem_and_step(prefix, expected):
    assert split_step(prefix) == expected
    assert step_of(prefix) == expected[1]


@pytest.mark.parametrize("prefix", ["model", "ckpt-", "-5", "runs/step-3/ckpt", "ckpt-1a", "dir/", "ckpt-1.tmp"])
def test_names_without_a_step_give_none(prefix):
    # a number in a directory name or mid-name is not the checkpoint's step
    assert split_step(prefix) is None
    assert step_of(prefix) is None


def test_a_line_break_is_part_of_a_name_like_any_character():
    """Object names may hold line breaks: each pattern matches the whole name, never up to the break."""
    assert parse_data_filename("runs/ck\npt-1.data-00000-of-00001") == DataFileName("runs/ck\npt-1", 0, 1)
    assert parse_data_filename("ckpt-1.data-00000-of-00001\n") is None            # a trailing break is a name
    assert part_of("ck\npt-1_temp/part-00001-of-00002") == ("ck\npt-1", 1, 2)
    assert part_of("ckpt-1_temp/part-00001-of-00002\n") is None
    assert split_step("runs/ck\npt-57") == ("ck\npt", 57)
    assert split_step("ckpt-57\n") is None
