"""What a listing says about one file, the one shape every step sees from the listing to the vault."""

from typing import NamedTuple


class Listed(NamedTuple):
    """One file as a listing gave it, the one shape every step sees: `mtime` in epoch seconds and
    `identity` the store's name for its bytes (recovery/stores: a GCS generation, an S3 ETag, a local
    mtime, size and inode), each None where the store gives none."""

    path: str
    size: int
    mtime: float | None = None
    identity: str | None = None


def listed(store, name: str, entry: dict) -> Listed:
    """A listing entry (fsspec's dict) as a Listed file of `store`."""
    return Listed(name, int(entry.get("size") or 0), store.mtime(entry), store.identity(entry))
