"""The one place where a DoFn's unanticipated exception becomes a record, so one bad checkpoint
never fails the run, and where a failed byte range is carried to the step that joins its prefix."""

import dataclasses
import functools
from typing import NamedTuple

from apache_beam import pvalue

from recovery import storage
from recovery.audit import failure_record
from recovery.records import LISTING


def failures_become_records(step: str, subject=None, where=None, tag: str | None = None):
    """Decorate `DoFn.process`: if it raises, its outputs are dropped and the element's failure record
    is the one output, so a prefix never gets a partial set of outputs and a failure record.

    `subject(self, element) -> what failed` when that is not the element itself (failure_record
    reads an OrphanTask or a Record); `where(self, element) -> (root, path)` names a failed part of
    a tree that is neither; `tag`: the tagged output records go to when the main output is not records.
    """
    def decorate(process):
        @functools.wraps(process)
        def wrapped(self, element, *args, **kwargs):
            try:
                outputs = list(process(self, element, *args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - becomes this element's record
                what = subject(self, element) if subject else element
                root, path = where(self, element) if where else ("", "")
                record = failure_as_record(what, step, exc, root, path)
                yield pvalue.TaggedOutput(tag, record) if tag else record
                return
            yield from outputs

        return wrapped

    return decorate


def failure_as_record(element, step: str, exc: BaseException, root: str = "", path: str = ""):
    """The record of one failed element. `root` and `path` name what failed when the element is
    neither an OrphanTask nor a Record (a directory, a group of them): `path` as the user would
    type it, else the root. A part of the tree that could not be listed is of kind `listing`."""
    if not root:
        return failure_record(element, step, exc)
    shown_root = display_root(root)
    try:
        name = storage.display(storage.url_to_fs(root)[0], path) if path else shown_root
    except Exception:  # noqa: BLE001 - even an unparseable root gets its record
        name = path or root
    record = failure_record(element, step, exc, name=name, root=shown_root)
    return dataclasses.replace(record, kind=LISTING) if step == "listing" else record


def display_root(root: str) -> str:
    """The root as records name it (the summary groups by this), or as given if even that fails."""
    try:
        fs, path = storage.url_to_fs(root)
        return storage.display(fs, path)
    except Exception:  # noqa: BLE001
        return root


class RangeFailure(NamedTuple):
    """Why one byte range could not be read, joined with the others of its prefix; `transient` when the
    store kept failing (the prefix is then `error`, never a verdict)."""

    text: str
    transient: bool

    @classmethod
    def of(cls, doing: str, exc: BaseException) -> "RangeFailure":
        return cls(f"{doing} failed: {type(exc).__name__}: {exc}", storage.is_transient(exc))

    def as_exception(self) -> Exception:
        return storage.StorageUnavailable(self.text) if self.transient else RuntimeError(self.text)
