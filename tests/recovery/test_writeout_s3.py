"""Create-only index writes on S3 (moto's server, which honours If-None-Match: *), as on GCS.

write_new sends one PutObject with If-None-Match: * through s3fs's own botocore client, so even a
writer that loses a race cannot clobber the winner, whatever s3fs version is installed.
"""

import pytest
from storage_servers import race_creates

from recovery import storage
from recovery.writeout import IndexAppeared, write_in_place


@pytest.fixture
def s3(s3_bucket):
    fs, path = storage.url_to_fs(s3_bucket)
    return fs, path


def test_create_only_put_never_replaces_an_object(s3):
    fs, bucket = s3
    path = f"{bucket}/run/ckpt-1.index"
    storage.write_new(fs, path, b"first")
    with pytest.raises(FileExistsError):
        storage.write_new(fs, path, b"second")
    assert fs.cat_file(path) == b"first"


def test_an_object_written_by_someone_else_is_never_replaced(s3):
    """The existing object was put by a plain (unconditional) upload, as a trainer would."""
    fs, bucket = s3
    path = f"{bucket}/run/ckpt-3.index"
    fs.pipe_file(path, b"written by the trainer")
    with pytest.raises(FileExistsError):
        storage.write_new(fs, path, b"ours")
    assert fs.cat_file(path) == b"written by the trainer"


def test_write_in_place_creates_reads_back_and_then_refuses(s3):
    fs, bucket = s3
    prefix = f"{bucket}/run/ckpt-2"
    fs.pipe_file(prefix + ".data-00000-of-00001", b"x" * 10)
    assert write_in_place(fs, prefix, b"index bytes", {prefix + ".data-00000-of-00001": 10}) == prefix + ".index"
    with pytest.raises(IndexAppeared, match="identical bytes"):
        write_in_place(fs, prefix, b"index bytes")
    with pytest.raises(IndexAppeared, match="differs; left untouched"):
        write_in_place(fs, prefix, b"other bytes")
    assert fs.cat_file(prefix + ".index") == b"index bytes"


def test_write_in_place_refuses_when_the_data_changed_size(s3):
    fs, bucket = s3
    prefix = f"{bucket}/run/ckpt-4"
    fs.pipe_file(prefix + ".data-00000-of-00001", b"x" * 12)
    with pytest.raises(OSError, match="changed size"):
        write_in_place(fs, prefix, b"index bytes", {prefix + ".data-00000-of-00001": 10})
    assert not fs.exists(prefix + ".index")


def test_racing_writers_leave_exactly_one_winner(s3):
    """Writers that all passed the existence check put at once: one wins, the rest are refused."""
    fs, bucket = s3
    for round_number in range(5):
        path = f"{bucket}/race/ckpt-{round_number}.index"
        outcomes = race_creates(fs, path, 4)
        winners = [payload for verdict, payload in outcomes if verdict == "won"]
        assert len(winners) == 1, outcomes
        assert fs.cat_file(path) == winners[0]
