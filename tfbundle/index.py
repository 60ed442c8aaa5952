"""A whole `.index` file: the header entry plus one BundleEntryProto per key, read and written."""

from dataclasses import dataclass, field

from .errors import FormatError
from .messages import BundleEntry, BundleHeader
from .slices import decode_slice_key, is_slice_key
from .table import BlockInfo, build_table, read_table

HEADER_KEY = b""


def as_key(key: str | bytes) -> bytes:
    return key.encode("utf-8", errors="surrogateescape") if isinstance(key, str) else key


@dataclass
class BundleIndex:
    header: BundleHeader
    entries: dict = field(default_factory=dict)   # bytes key -> BundleEntry, in bytewise order
    blocks: list = field(default_factory=list)    # BlockInfo of the table that was read

    def tensor_names(self) -> list[str]:
        """Names TensorFlow lists: slice keys are hidden (checkpoint_reader.cc BuildV2VarMaps)."""
        return [k.decode("utf-8", errors="surrogateescape") for k in self.entries if not is_slice_key(k)]

    def slices_of(self, name: str) -> list[tuple[bytes, BundleEntry]]:
        """(slice key, entry) of each stored slice of a partitioned tensor, in key order."""
        out = []
        for key, entry in self.entries.items():
            if is_slice_key(key) and decode_slice_key(key)[0] == name:
                out.append((key, entry))
        return out

    def data_entries(self) -> list[tuple[bytes, BundleEntry]]:
        """Entries that own bytes in a data file (not full entries of partitioned tensors)."""
        return [(k, e) for k, e in self.entries.items() if not e.slices]

    def to_bytes(self) -> bytes:
        return write_index(self.header, self.entries)


def read_index(data: bytes) -> BundleIndex:
    items, blocks = read_table(data)
    if not items or items[0][0] != HEADER_KEY:
        raise FormatError("failed to seek to header entry: the table's first key is not the empty header key")
    try:
        header = BundleHeader.decode(items[0][1])
    except FormatError as exc:
        raise FormatError(f"unable to parse the header entry: {exc}") from exc
    entries = {}
    for key, value in items[1:]:
        try:
            entries[key] = BundleEntry.decode(value)
        except FormatError as exc:
            shown = key.decode("utf-8", errors="backslashreplace")
            raise FormatError(f"unable to parse the entry of {shown}: {exc}") from exc
    return BundleIndex(header, entries, blocks)


def write_index(header: BundleHeader, entries) -> bytes:
    """Index bytes exactly as TensorFlow writes them for these entries (keys are sorted here)."""
    encoded = sorted((as_key(k), e.encode()) for k, e in entries.items())
    if encoded and encoded[0][0] == HEADER_KEY:
        raise ValueError("an entry may not use the empty key: it is reserved for the header")
    return build_table([(HEADER_KEY, header.encode())] + encoded)


__all__ = ["BlockInfo", "BundleIndex", "HEADER_KEY", "read_index", "write_index", "as_key"]
