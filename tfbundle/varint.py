"""Base-128 varints as LevelDB tables and string tensors write them (int64 negatives as 10 bytes).

Protobuf messages are coded by the `protobuf` package (tfbundle.schema); these varints are the
ones outside any message: SSTable block entries and handles, string-tensor lengths, the length
header of the object-graph tensor.
"""

from .errors import FormatError

MAX_VARINT_BYTES = 10


def encode_varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf, pos: int = 0) -> tuple[int, int]:
    """Return (value, position after the varint); raise FormatError when cut short or too long."""
    result = 0
    shift = 0
    end = len(buf)
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= end:
            raise FormatError(f"varint at byte {pos} runs past the end of the buffer")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result >> 64:        # a tenth byte above 1: no uint64 (protobuf refuses it too)
                raise FormatError(f"varint at byte {pos} does not fit in 64 bits")
            return result, pos + i + 1
        shift += 7
    raise FormatError(f"varint at byte {pos} is longer than {MAX_VARINT_BYTES} bytes")


class VarintReader:
    """decode_varint one byte at a time, for lengths that straddle the chunks of a streamed read.

    Holds the same rules: at most ten bytes, and a value that fits a uint64.
    """

    def __init__(self):
        self.value = 0
        self.shift = 0

    def feed_byte(self, byte: int) -> bool:
        """Take one byte; True once the varint is complete (then `take` it)."""
        if self.shift >= 7 * MAX_VARINT_BYTES:
            raise FormatError(f"varint longer than {MAX_VARINT_BYTES} bytes")
        self.value |= (byte & 0x7F) << self.shift
        self.shift += 7
        if byte < 0x80 and self.value >> 64:
            raise FormatError("varint does not fit in 64 bits")
        return byte < 0x80

    def take(self) -> int:
        value, self.value, self.shift = self.value, 0, 0
        return value
