"""Where a DoFn's unanticipated exception is caught, so one bad checkpoint never fails the run; what
it becomes is recovery.failures' one rule."""

import functools

from apache_beam import pvalue

from recovery.failures import failure_record, tree_failure


def failures_become_records(step: str, subject=None, where=None, tag: str | None = None, batch: bool = False):
    """Decorate `DoFn.process`: if it raises, its outputs are dropped and the element's failure record
    is the one output, so a prefix never gets a partial set of outputs and a failure record.

    `subject(self, element) -> the OrphanTask or Record that failed` when that is not the element
    itself; `where(self, element) -> (root, path)` names a failed part of a tree instead (a directory,
    a group of them); `tag`: the tagged output records go to when the main output is not records;
    `batch`: records go out in batches (lists), and so does the failure record, as a batch of one.
    """
    def decorate(process):
        @functools.wraps(process)
        def wrapped(self, element, *args, **kwargs):
            try:
                outputs = list(process(self, element, *args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - becomes this element's record
                if where:
                    record = tree_failure(*where(self, element), step, exc)
                else:
                    record = failure_record(subject(self, element) if subject else element, step, exc)
                out = [record] if batch else record
                yield pvalue.TaggedOutput(tag, out) if tag else out
                return
            yield from outputs

        return wrapped

    return decorate
