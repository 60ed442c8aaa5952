"""The LevelDB-style SSTable that holds a `.index`, with TensorFlow's settings.

Written to reproduce TensorFlow's TableBuilder byte for byte (block_size 256 KiB, restart interval
16, index restart interval 1, no compression, empty metaindex, shortest separators, 48-byte
footer), and to read any table TensorFlow can read, including old Snappy-compressed blocks when a
Snappy library is installed.
"""

import struct
from dataclasses import dataclass

from . import crc
from .errors import FormatError
from .varint import decode_varint, encode_varint

BLOCK_SIZE = 262144
RESTART_INTERVAL = 16
OVERLY_LARGE_BLOCK_RATIO = 2   # TF-specific: flush before an entry this many blocks long
BLOCK_TRAILER_SIZE = 5
FOOTER_SIZE = 48
MAGIC = 0xDB4775248B80FB57
MAGIC_BYTES = struct.pack("<Q", MAGIC)
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1


class _BlockBuilder:
    def __init__(self, restart_interval: int):
        self.restart_interval = restart_interval
        self.reset()

    def reset(self):
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""
        self.empty = True

    def add(self, key: bytes, value: bytes):
        shared = 0
        if self.counter < self.restart_interval:
            limit = min(len(self.last_key), len(key))
            while shared < limit and self.last_key[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buffer += key[shared:]
        self.buffer += value
        self.last_key = key
        self.counter += 1
        self.empty = False

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return bytes(self.buffer) + b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack(
            "<I", len(self.restarts))


def shown_key(key: bytes) -> str:
    """A table key as a person reads it: its text, with bytes that are not UTF-8 as \\xNN (no Python repr)."""
    return key.decode("utf-8", "backslashreplace") if key else "the empty key (the header)"


def shortest_separator(start: bytes, limit: bytes) -> bytes:
    """LevelDB's FindShortestSeparator: a short key >= start and < limit."""
    min_length = min(len(start), len(limit))
    diff = 0
    while diff < min_length and start[diff] == limit[diff]:
        diff += 1
    if diff >= min_length:
        return start
    byte = start[diff]
    if byte < 0xFF and byte + 1 < limit[diff]:
        return start[:diff] + bytes([byte + 1])
    return start


def short_successor(key: bytes) -> bytes:
    """LevelDB's FindShortSuccessor: a short key >= key."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def _encode_handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def build_table(items) -> bytes:
    """Serialize (key, value) pairs, already in strictly increasing bytewise key order."""
    out = bytearray()
    data_block = _BlockBuilder(RESTART_INTERVAL)
    index_block = _BlockBuilder(1)
    pending_handle = None
    last_key = None

    def write_block(block: _BlockBuilder) -> tuple[int, int]:
        contents = block.finish()
        handle = (len(out), len(contents))
        trailer_type = bytes([NO_COMPRESSION])
        out.extend(contents)
        out.extend(trailer_type + struct.pack("<I", crc.mask(crc.extend(crc.value(contents), trailer_type))))
        block.reset()
        return handle

    def flush():
        nonlocal pending_handle
        if data_block.empty:
            return
        pending_handle = write_block(data_block)

    for key, value in items:
        if last_key is not None:
            if key <= last_key:
                raise ValueError(f"table keys out of order: {shown_key(key)} after {shown_key(last_key)}")
            if len(key) + len(value) >= OVERLY_LARGE_BLOCK_RATIO * BLOCK_SIZE:
                flush()
        if pending_handle is not None:
            index_block.add(shortest_separator(last_key, key), _encode_handle(*pending_handle))
            pending_handle = None
        last_key = key
        data_block.add(key, value)
        if data_block.size_estimate() >= BLOCK_SIZE:
            flush()

    flush()
    metaindex_handle = write_block(_BlockBuilder(RESTART_INTERVAL))
    if pending_handle is not None:
        index_block.add(short_successor(last_key), _encode_handle(*pending_handle))
    index_handle = write_block(index_block)
    footer = _encode_handle(*metaindex_handle) + _encode_handle(*index_handle)
    out.extend(footer.ljust(40, b"\0") + MAGIC_BYTES)
    return bytes(out)


@dataclass(frozen=True)
class BlockInfo:
    offset: int
    size: int
    separator: bytes
    compression: int
    entries: int


def _read_block(data: bytes, offset: int, size: int, what: str) -> tuple[bytes, int]:
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data):
        raise FormatError(f"truncated block read: {what} at byte {offset} (+{size}) lies past the end "
                          f"of a {len(data)}-byte index")
    contents = data[offset:offset + size]
    block_type = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    actual = crc.extend(crc.value(contents), bytes([block_type]))
    if crc.unmask(stored) != actual:
        raise FormatError(f"block checksum mismatch in {what} at byte {offset}")
    if block_type == SNAPPY_COMPRESSION:
        contents = _snappy_uncompress(contents, what)
    elif block_type != NO_COMPRESSION:
        raise FormatError(f"bad block type {block_type} in {what} at byte {offset}")
    return contents, block_type


def _snappy_uncompress(contents: bytes, what: str) -> bytes:
    try:
        import cramjam
        return bytes(cramjam.snappy.decompress_raw(contents))
    except ImportError:
        pass
    try:
        import snappy
        return snappy.uncompress(contents)
    except ImportError:
        raise FormatError(f"{what} is Snappy-compressed (written by TensorFlow <= 1.1); install "
                          "`cramjam` or `python-snappy` to read it") from None


def _block_entries(contents: bytes, what: str):
    if len(contents) < 4:
        raise FormatError(f"bad block contents in {what}: {len(contents)} bytes")
    num_restarts = struct.unpack_from("<I", contents, len(contents) - 4)[0]
    limit = len(contents) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise FormatError(f"bad block contents in {what}: {num_restarts} restarts")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = decode_varint(contents, pos)
        unshared, pos = decode_varint(contents, pos)
        value_len, pos = decode_varint(contents, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise FormatError(f"bad entry in block {what} at byte {pos}")
        key = key[:shared] + contents[pos:pos + unshared]
        pos += unshared
        yield key, contents[pos:pos + value_len]
        pos += value_len


def read_footer(data: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    if len(data) < FOOTER_SIZE:
        raise FormatError(f"file is too short to be an sstable: {len(data)} bytes, a table needs at "
                          f"least {FOOTER_SIZE}")
    footer = data[-FOOTER_SIZE:]
    if footer[40:] != MAGIC_BYTES:
        raise FormatError(f"not an sstable (bad magic number): last 8 bytes are {footer[40:].hex(' ')}, "
                          f"expected {MAGIC_BYTES.hex(' ')}")
    meta_off, pos = decode_varint(footer, 0)
    meta_size, pos = decode_varint(footer, pos)
    index_off, pos = decode_varint(footer, pos)
    index_size, pos = decode_varint(footer, pos)
    return (meta_off, meta_size), (index_off, index_size)


def read_table(data: bytes) -> tuple[list[tuple[bytes, bytes]], list[BlockInfo]]:
    """Every (key, value) in order, and the data blocks they came from."""
    _, (index_off, index_size) = read_footer(data)
    index_contents, _ = _read_block(data, index_off, index_size, "index block")
    items, blocks = [], []
    for separator, handle in _block_entries(index_contents, "index block"):
        offset, pos = decode_varint(handle, 0)
        size, _ = decode_varint(handle, pos)
        what = f"data block {len(blocks)}"
        contents, block_type = _read_block(data, offset, size, what)
        before = len(items)
        items.extend(_block_entries(contents, what))
        blocks.append(BlockInfo(offset, size, separator, block_type, len(items) - before))
    for (a, _), (b, _) in zip(items, items[1:]):
        if b <= a:
            raise FormatError(f"table keys out of order: {shown_key(b)} after {shown_key(a)}")
    return items, blocks
