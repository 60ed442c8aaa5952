"""The spot check's batch of ranged reads on local disk: each file opened once for all its ranges,
giving exactly what fsspec's own cat_ranges gives (a range past the end of a file short, one beyond it
empty), and a file that is not there an error as before."""

import fsspec
import pytest

from recovery.spot_check import read_ranges


def test_local_ranges_read_each_file_once_and_give_what_cat_ranges_gives(tmp_path):
    first, second = tmp_path / "ckpt-1.data-00000-of-00002", tmp_path / "ckpt-1.data-00001-of-00002"
    first.write_bytes(bytes(range(256)) * 4)           # 1024 bytes
    second.write_bytes(b"\x07" * 100)                  # cut short: ranges run past its end
    fs = fsspec.filesystem("file")
    paths = [str(first), str(second), str(first), str(second), str(first), str(second)]
    starts = [0, 10, 1000, 90, 512, 200]
    ends = [8, 20, 1024, 120, 512, 210]
    assert read_ranges(fs, paths, starts, ends) == fs.cat_ranges(paths, starts, ends, on_error="raise")
    assert [len(b) for b in read_ranges(fs, paths, starts, ends)] == [8, 10, 24, 10, 0, 0]


def test_a_file_not_there_is_an_error_not_an_empty_range(tmp_path):
    present = tmp_path / "ckpt-1.data-00000-of-00001"
    present.write_bytes(b"x" * 64)
    fs = fsspec.filesystem("file")
    with pytest.raises(FileNotFoundError):
        read_ranges(fs, [str(present), str(tmp_path / "gone.data-00000-of-00001")], [0, 0], [8, 8])
