"""Random access to a data file through any seekable binary file object (local, fsspec, BytesIO)."""

import os


class ByteSource:
    """Positional reads over a file object; the size is taken once, up front."""

    def __init__(self, fileobj, size: int | None = None, name: str = "<data>"):
        self._f = fileobj
        self.name = name
        if size is None:
            fileobj.seek(0, os.SEEK_END)
            size = fileobj.tell()
        self.size = size

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer only at the end of the file)."""
        if offset >= self.size or length <= 0:
            return b""
        self._f.seek(offset)
        chunks, remaining = [], min(length, self.size - offset)
        while remaining:
            chunk = self._f.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def iter_range(self, offset: int, length: int, chunk_size: int = 8 << 20):
        """Stream [offset, offset+length) in bounded chunks."""
        end = min(self.size, offset + length)
        self._f.seek(offset)
        while offset < end:
            chunk = self._f.read(min(chunk_size, end - offset))
            if not chunk:
                break
            offset += len(chunk)
            yield chunk

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
