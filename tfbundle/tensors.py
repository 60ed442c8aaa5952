"""Tensor bytes inside a data file: sizes, TensorFlow's per-tensor CRC32C, in-band checksums.

Everything here streams: a checksummer is fed the tensor's bytes in chunks of any size and keeps
only a few bytes of state, so a multi-gigabyte tensor is checksummed in constant memory.
"""

import struct
from math import prod

import numpy as np

from . import crc
from .dtypes import DT_STRING, DT_VARIANT, DType, complex_part_mask, dtype
from .errors import FormatError
from .source import ByteSource
from .varint import VarintReader, decode_varint

_U32_MAX = 0xFFFFFFFF


def num_elements(shape) -> int:
    return prod(shape) if shape else 1


def numeric_size(dt: DType, shape) -> int:
    if dt.itemsize is None:
        raise ValueError(f"{dt.name} tensors have no fixed size")
    return num_elements(shape) * dt.itemsize


class NumericChecksum:
    """CRC of raw bytes, optionally counting Inf/NaN elements of a float dtype on the way.

    Each chunk is first screened with one cheap reduction (BLAS dot(v, v) for 32/64-bit floats,
    the max of the exponent bits otherwise); only a chunk that fails the screen is counted exactly.
    A false alarm (a finite square overflowing) costs time, never a wrong count.
    """

    _BLAS_FLOATS = {4: np.dtype("<f4"), 8: np.dtype("<f8")}

    def __init__(self, dt: DType, size: int, count_nonfinite: bool = True):
        self.size = size
        self.consumed = 0
        self.crc = 0
        self.nonfinite = 0
        self._bits = None
        if count_nonfinite:
            part = complex_part_mask(dt)
            word, exp_mask = part if part else (dt.itemsize, dt.float_exponent_mask)
            if exp_mask and word in (2, 4, 8):
                word_dtype = np.dtype(f"<u{word}")
                # (w << 1) drops the sign bit: a word is Inf/NaN iff that is >= the shifted exponent mask.
                threshold = (exp_mask << 1) & ((1 << (8 * word)) - 1)
                self._bits = (word_dtype, np.array(exp_mask, dtype=word_dtype), self._BLAS_FLOATS.get(word),
                              np.array(threshold, dtype=word_dtype))
        self._carry = b""

    @property
    def done(self) -> bool:
        return self.consumed >= self.size

    def feed(self, chunk) -> int:
        take = min(len(chunk), self.size - self.consumed)
        piece = chunk if take == len(chunk) else chunk[:take]
        self.crc = crc.extend(self.crc, piece)
        self.consumed += take
        if self._bits is not None and take:
            self._count_nonfinite(piece)
        return take

    def _count_nonfinite(self, piece):
        word_dtype, exp_mask, blas_dtype, threshold = self._bits
        if self._carry:
            piece = self._carry + bytes(piece)
        whole = len(piece) - len(piece) % word_dtype.itemsize
        self._carry = bytes(piece[whole:])
        if not whole:
            return
        count = whole // word_dtype.itemsize
        if blas_dtype is not None:
            values = np.frombuffer(piece, dtype=blas_dtype, count=count)
            with np.errstate(over="ignore", invalid="ignore"):
                if np.isfinite(np.dot(values, values)):
                    return
        words = np.frombuffer(piece, dtype=word_dtype, count=count)
        if blas_dtype is None and np.max(np.left_shift(words, 1)) < threshold:
            return
        self.nonfinite += int(np.count_nonzero((words & exp_mask) == exp_mask))

    def masked_crc(self) -> int:
        return crc.mask(self.crc)


class StringChecksum:
    """DT_STRING: N varint lengths, masked crc of the lengths (as u32, or u64 when huge), the bytes.

    The entry CRC covers the lengths as fixed-width integers, not their varint bytes.
    The length checksum is verified on the way; a mismatch raises FormatError.
    """

    def __init__(self, count: int):
        self.count = count
        self.lengths_seen = 0
        self.consumed = 0
        self.crc = 0
        self.payload_left = 0
        self._varint = VarintReader()
        self._check_bytes = b""
        self._phase = "lengths" if count else "check"
        self.size = None  # known once the length checksum has been read

    @property
    def done(self) -> bool:
        return self._phase == "done"

    def feed(self, chunk) -> int:
        pos, n = 0, len(chunk)
        while pos < n and self._phase != "done":
            if self._phase == "lengths":
                byte = chunk[pos]
                pos += 1
                if self._varint.feed_byte(byte):
                    length = self._varint.take()
                    fmt = "<I" if length <= _U32_MAX else "<Q"
                    self.crc = crc.extend(self.crc, struct.pack(fmt, length))
                    self.payload_left += length
                    self.lengths_seen += 1
                    if self.lengths_seen == self.count:
                        self._phase = "check"
            elif self._phase == "check":
                need = 4 - len(self._check_bytes)
                self._check_bytes += bytes(chunk[pos:pos + need])
                pos += min(need, n - pos)
                if len(self._check_bytes) == 4:
                    expected = crc.mask(self.crc)
                    stored = int.from_bytes(self._check_bytes, "little")
                    if stored != expected:
                        raise FormatError(f"string tensor length checksum does not match (stored {stored:#010x}, "
                                          f"computed {expected:#010x})")
                    self.crc = crc.extend(self.crc, self._check_bytes)
                    self.size = self.consumed + pos + self.payload_left
                    self._phase = "payload" if self.payload_left else "done"
            else:
                take = min(n - pos, self.payload_left)
                self.crc = crc.extend(self.crc, chunk[pos:pos + take])
                pos += take
                self.payload_left -= take
                if not self.payload_left:
                    self._phase = "done"
        self.consumed += pos
        return pos

    def masked_crc(self) -> int:
        return crc.mask(self.crc)


class VariantChecksum:
    """DT_VARIANT: per element varint length, the serialized bytes, a masked running CRC.

    The running CRC covers each length as a u64, the bytes, and each stored 4-byte checksum.
    Every element's checksum is verified on the way; a mismatch raises FormatError.
    """

    def __init__(self, count: int):
        self.count = count
        self.elements_done = 0
        self.consumed = 0
        self.crc = 0
        self._varint = VarintReader()
        self._payload_left = 0
        self._check_bytes = b""
        self._phase = "length" if count else "done"

    @property
    def done(self) -> bool:
        return self._phase == "done"

    def feed(self, chunk) -> int:
        pos, n = 0, len(chunk)
        while pos < n and self._phase != "done":
            if self._phase == "length":
                byte = chunk[pos]
                pos += 1
                if self._varint.feed_byte(byte):
                    self._payload_left = self._varint.take()
                    self.crc = crc.extend(self.crc, struct.pack("<Q", self._payload_left))
                    self._phase = "payload" if self._payload_left else "check"
            elif self._phase == "payload":
                take = min(n - pos, self._payload_left)
                self.crc = crc.extend(self.crc, chunk[pos:pos + take])
                pos += take
                self._payload_left -= take
                if not self._payload_left:
                    self._phase = "check"
            else:
                need = 4 - len(self._check_bytes)
                self._check_bytes += bytes(chunk[pos:pos + need])
                pos += min(need, n - pos)
                if len(self._check_bytes) == 4:
                    stored = int.from_bytes(self._check_bytes, "little")
                    if stored != crc.mask(self.crc):
                        raise FormatError(f"variant element {self.elements_done} checksum does not match")
                    self.crc = crc.extend(self.crc, self._check_bytes)
                    self._check_bytes = b""
                    self.elements_done += 1
                    self._phase = "done" if self.elements_done == self.count else "length"
        self.consumed += pos
        return pos

    @property
    def size(self):
        return self.consumed if self.done else None

    def masked_crc(self) -> int:
        return crc.mask(self.crc)


def checksummer(dtype_number: int, shape, size: int | None = None, count_nonfinite: bool = True):
    """The streaming checksum TensorFlow's BundleWriter computes for a tensor of this dtype and shape."""
    if dtype_number == DT_STRING:
        return StringChecksum(num_elements(shape))
    if dtype_number == DT_VARIANT:
        return VariantChecksum(num_elements(shape))
    dt = dtype(dtype_number)
    if dt.itemsize is None:
        raise FormatError(f"dtype {dt.name} cannot be stored in a checkpoint")
    return NumericChecksum(dt, numeric_size(dt, shape) if size is None else size, count_nonfinite)


def measure(source: ByteSource, offset: int, dtype_number: int, shape, read_size: int = 1 << 16):
    """Size in bytes of the tensor stored at `offset`, reading only what is needed.

    Numeric sizes follow from the shape. Strings are sized from their length header and its
    checksum; variants are walked element by element. Raises FormatError where the bytes at the
    offset are not such a tensor, or it would run past the end of the file.
    """
    if dtype_number not in (DT_STRING, DT_VARIANT):
        size = numeric_size(dtype(dtype_number), shape)
    else:
        summer = checksummer(dtype_number, shape)
        pos = offset
        while summer.size is None:
            chunk = source.read_at(pos, read_size)
            if not chunk:
                break
            summer.feed(chunk)
            pos += len(chunk)
        size = summer.size
        if size is None:
            raise FormatError(f"{dtype(dtype_number).name} tensor at byte {offset} runs past the end of "
                              f"{source.name}")
    if offset + size > source.size:
        raise FormatError(f"tensor at byte {offset} needs {size} bytes but {source.name} ends at {source.size}, "
                          f"{offset + size - source.size} bytes short (a truncated copy?)")
    return size


def probe_string_count(source: ByteSource, offset: int, max_count: int = 1 << 20) -> int:
    """Element count of a string tensor whose shape is unknown: the first N whose length checksum fits."""
    header = source.read_at(offset, min(source.size - offset, 10 * max_count + 4))
    running, pos = 0, 0
    for count in range(max_count + 1):
        if pos + 4 <= len(header) and int.from_bytes(header[pos:pos + 4], "little") == crc.mask(running):
            return count
        try:
            length, pos = decode_varint(header, pos)
        except FormatError:
            raise FormatError(f"no string tensor at byte {offset}: no length checksum fits") from None
        running = crc.extend(running, struct.pack("<I" if length <= _U32_MAX else "<Q", length))
    raise FormatError(f"no string tensor at byte {offset} with at most {max_count} elements")


def count_variant_elements(source: ByteSource, offset: int, chunk_size: int = 1 << 20) -> tuple[int, int]:
    """(element count, bytes) of the DT_VARIANT tensor at `offset`: walk while each element's checksum verifies.

    A variant tensor's element count can change between saves (a tf.data iterator's state does),
    so a layout from another checkpoint cannot be trusted for it. Each element ends with the masked
    running CRC of everything before it, so the walk stops at the first element that does not verify
    (the next tensor's bytes) or would run past the end of the file: a false continuation needs a
    2^-32 coincidence.
    """
    count, pos, running = 0, offset, 0
    while True:
        head = source.read_at(pos, 10)
        try:
            length, used = decode_varint(head, 0)
        except FormatError:
            return count, pos - offset
        payload_start = pos + used
        end = payload_start + length + 4
        if end > source.size:
            return count, pos - offset
        element_crc = crc.extend(running, struct.pack("<Q", length))
        for chunk in source.iter_range(payload_start, length, chunk_size):
            element_crc = crc.extend(element_crc, chunk)
        stored = source.read_at(payload_start + length, 4)
        if int.from_bytes(stored, "little") != crc.mask(element_crc):
            return count, pos - offset
        running = crc.extend(element_crc, stored)
        count += 1
        pos = end
