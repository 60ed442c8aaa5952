"""Which group of the page's "what changed since the previous run" a record belongs to (its
`change` and status, recovery/memory/changes.py), in the order the page shows them: new first."""

from ..records import DELETED, ERROR, HEALTHY, NEEDS_A_PERSON, NEW, PERSISTS, RESOLVED
from .schema import field_of

CHANGE_GROUPS = ("new", "deleted", "persists", "resolved")


def change_group(record) -> str | None:
    """A new finding, a deletion, a finding that persists, one resolved; None for a healthy checkpoint
    that stays or is first seen (the summary counts those)."""
    change, status = field_of(record, "change", ""), record.status
    if status == DELETED:
        return "deleted"
    if change == RESOLVED:
        return "resolved"
    if change == NEW and status != HEALTHY:
        return "new"
    if change == PERSISTS and (status in NEEDS_A_PERSON or status == ERROR):
        return "persists"
    return None
