"""The one place where a DoFn's unanticipated exception becomes a record, so one bad checkpoint
never fails the run, and where a failed byte range is carried to the step that joins its prefix."""

import functools
from typing import NamedTuple

from recovery import storage
from recovery.audit import failure_record


def failures_become_records(step: str, subject=None):
    """Decorate `DoFn.process`: if it raises, its outputs are dropped and the element's failure record
    is the one output, so a prefix never gets a partial set of outputs and a failure record.

    `subject(self, element) -> (what failed, name, root)` for elements that are neither an OrphanTask
    nor a Record (failure_record says why it needs them); by default the element itself.
    """
    def decorate(process):
        @functools.wraps(process)
        def wrapped(self, element, *args, **kwargs):
            try:
                outputs = list(process(self, element, *args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - becomes this element's record
                what, name, root = subject(self, element) if subject else (element, "", "")
                yield failure_record(what, step, exc, name=name, root=root)
                return
            yield from outputs

        return wrapped

    return decorate


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
