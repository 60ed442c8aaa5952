"""What classification hands on besides records: a prefix whose index must be rebuilt before it can
be judged. Frozen like a Record: it crosses process boundaries, and every step that learns more about
it makes a record of its own instead of changing it."""

from dataclasses import dataclass, field

from .records import CHECKPOINT, CORRUPT, Record


@dataclass(frozen=True)
class OrphanTask:
    """A prefix whose index is missing (or unreadable, or stale) and must be rebuilt before it can be judged."""

    prefix: str                  # filesystem path
    display_prefix: str
    root: str
    directory: str               # display form
    listing: list                # ls-shaped entries of its directory, for the rebuild sources
    data_files: int
    data_bytes: int
    stage_only: bool = False     # its own index exists but is unreadable or stale: never write in place
    finding: str = ""            # what classification saw, e.g. "index unreadable: bad magic"
    data_sizes: dict = field(default_factory=dict)   # path -> listed size
    status_if_staged: str = CORRUPT   # the status of a stage-only rebuild: CORRUPT (unreadable) or STALE
    mtime: float | None = None   # newest file of the prefix (epoch seconds)

    def record(self, status: str, reason: str, **fields) -> Record:
        """This prefix's record: what became of it, with what classification listed of its data."""
        return Record(self.display_prefix, status, reason, self.root, CHECKPOINT, self.directory,
                      data_files=self.data_files, data_bytes=self.data_bytes, mtime=self.mtime, **fields)
