"""Create-only index writes on GCS, against a server that enforces ifGenerationMatch=0.

The safety rule: never overwrite an `.index`. Locally that is a hard link; on GCS it is one upload
with a does-not-exist precondition, so even a writer that loses a race cannot clobber the winner.
"""

import uuid

import pytest
from storage_servers import fake_gcs_fs, race_creates  # noqa: F401

from recovery import storage
from recovery.writeout import IndexAppeared, write_in_place


@pytest.fixture
def bucket(fake_gcs_fs):  # noqa: F811
    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    fake_gcs_fs.mkdir(name)
    return name


def test_create_only_upload_never_replaces_an_object(fake_gcs_fs, bucket):  # noqa: F811
    path = f"{bucket}/run/ckpt-1.index"
    storage.write_new(fake_gcs_fs, path, b"first")
    with pytest.raises(FileExistsError):
        storage.write_new(fake_gcs_fs, path, b"second")
    assert fake_gcs_fs.cat(path) == b"first"


def test_write_in_place_creates_reads_back_and_then_refuses(fake_gcs_fs, bucket):  # noqa: F811
    prefix = f"{bucket}/run/ckpt-2"
    fake_gcs_fs.pipe_file(prefix + ".data-00000-of-00001", b"x" * 10)
    written = write_in_place(fake_gcs_fs, prefix, b"index bytes", {prefix + ".data-00000-of-00001": 10})
    assert written == prefix + ".index"
    with pytest.raises(IndexAppeared, match="identical bytes"):
        write_in_place(fake_gcs_fs, prefix, b"index bytes")
    with pytest.raises(IndexAppeared, match="differs; left untouched"):
        write_in_place(fake_gcs_fs, prefix, b"other bytes")
    assert fake_gcs_fs.cat(prefix + ".index") == b"index bytes"


def test_racing_writers_leave_exactly_one_winner(fake_gcs_fs, bucket):  # noqa: F811
    """Writers that all passed the existence check upload at once: one wins, the rest are refused."""
    for round_number in range(5):
        path = f"{bucket}/race/ckpt-{round_number}.index"
        outcomes = race_creates(fake_gcs_fs, path, 4)
        winners = [payload for verdict, payload in outcomes if verdict == "won"]
        assert len(winners) == 1, outcomes
        assert fake_gcs_fs.cat(path) == winners[0]
