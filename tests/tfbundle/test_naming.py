"""Checkpoint names as Saver and CheckpointManager number them: the step a name carries, and only that."""

import pytest

from tfbundle import split_step, step_of


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
