"""What the transform tests feed their PTransforms: the OrphanTasks and healthy Records that
classification makes of a real directory, and bytes damaged the way storage damages them."""

import os
from collections import defaultdict

from recovery import storage
from recovery.classify import classify_directory
from recovery.discovery import checkpoint_directory, group_directory
from recovery.listing import everything_under
from recovery.records import HEALTHY
from recovery.tasks import OrphanTask
from tfbundle import data_filename, index_filename, is_slice_key, read_index


def classified(directory: str) -> dict:
    """display prefix -> OrphanTask or Record, as the audit's classification makes them."""
    fs, path = storage.url_to_fs(directory)
    by_directory = defaultdict(list)
    for item in everything_under(fs, path):
        by_directory[checkpoint_directory(item[0])].append(item)
    found = {}
    for name, files in by_directory.items():
        for result in classify_directory(fs, group_directory(name, files), directory, verify_data=True):
            found[result.display_prefix if isinstance(result, OrphanTask) else result.prefix] = result
    return found


def orphan_task(prefix: str) -> OrphanTask:
    task = classified(os.path.dirname(prefix))[prefix]
    assert isinstance(task, OrphanTask), task
    return task


def healthy_record(prefix: str):
    record = classified(os.path.dirname(prefix))[prefix]
    assert record.status == HEALTHY, record
    return record


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))


def float_tensor_near(index_bytes: bytes, prefix: str, near: int) -> tuple:
    """(key, data file, offset) of the middle byte of the float32 tensor of shard 0 nearest byte `near`."""
    index = read_index(index_bytes)
    floats = [(k, e) for k, e in index.data_entries() if e.dtype == 1 and e.shard_id == 0 and not is_slice_key(k)]
    key, entry = min(floats, key=lambda kv: abs(kv[1].offset + kv[1].size // 2 - near))
    return key.decode(), data_filename(prefix, 0, index.header.num_shards), entry.offset + entry.size // 2


def in_a_middle_range(offset: int, ranges: list) -> bool:
    """Is `offset` inside one of the (shard, start, end) ranges but neither the first nor the last?"""
    spans = sorted((start, end) for _, start, end in ranges)
    return len(spans) >= 3 and any(start <= offset < end for start, end in spans[1:-1])


def index_of(prefix: str) -> bytes:
    with open(index_filename(prefix), "rb") as f:
        return f.read()
