"""One failure policy: how an exception nobody anticipated becomes a record, whatever step raised it
(listing, classification, rebuild, verification) and whatever it was about.

One rule. A store that did not answer (`storage.is_transient`: timeouts, HTTP 408/429/5xx, resets,
still failing after the clients' own retries) is status `error` (exit 3): nothing was decided, run
again; it is never a verdict. Anything else is the step's refusal: the element keeps a verdict it
already had (corrupt, stale), otherwise it is `unrecoverable`, with the exception and where it was
raised, so a person can find the cause. Either way its neighbours keep their own records.
"""

import dataclasses
import traceback
from typing import NamedTuple

from . import storage
from .records import CHECKPOINT, CORRUPT, ERROR, LISTING, STALE, UNRECOVERABLE, Record, inspect_command
from .tasks import OrphanTask


def describe(exc: BaseException) -> str:
    """The exception's own last line and the place it was raised (`package/module.py:line`)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    at = f" (at {'/'.join(frames[-1].filename.split('/')[-2:])}:{frames[-1].lineno})" if frames else ""
    return _last_line(exc) + at


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _status_and_reason(step: str, exc: BaseException, verdict: str = "") -> tuple[str, str]:
    """The rule itself: `error` when the store did not answer, else the `verdict` already made or
    `unrecoverable`, each with its reason."""
    if storage.is_transient(exc):
        return ERROR, (f"could not check: {step} hit storage errors that persisted after retries "
                       f"({_last_line(exc)}); run again")
    return verdict or UNRECOVERABLE, f"{step} failed: {describe(exc)}"


def failure_record(element: "OrphanTask | Record", step: str, exc: BaseException) -> Record:
    """The record of a task or record whose `step` raised `exc`. A stage-only task (its index is there
    but unreadable or stale) keeps that verdict and its finding; a record keeps corrupt or stale."""
    if isinstance(element, OrphanTask):
        status, reason = _status_and_reason(step, exc, element.status_if_staged if element.stage_only else "")
        if element.stage_only and status != ERROR:
            reason = f"{element.finding}; {reason}"
        return element.record(status, reason, command=inspect_command(element.display_prefix))
    status, reason = _status_and_reason(step, exc, element.status if element.status in (CORRUPT, STALE) else "")
    return dataclasses.replace(element, status=status, reason=reason, command=inspect_command(element.prefix))


def item_failure(name: str, root: str, step: str, exc: BaseException, kind: str = CHECKPOINT,
                 directory: str = "") -> Record:
    """The record of an item known only by its name (as a user would type it): a prefix, leftover or
    state file whose judgement raised, a part of a tree that could not be listed."""
    status, reason = _status_and_reason(step, exc)
    return Record(name, status, reason, root, kind, directory, command=inspect_command(name) if name else "")


def isolated(step: str, judge, args: tuple, name: str, root: str, directory: str, kind: str = CHECKPOINT):
    """`judge(*args)`, or, whatever it raises, that item's own record: never its neighbours'."""
    try:
        return judge(*args)
    except Exception as exc:  # noqa: BLE001 - one item's surprise must not take its neighbours' verdicts
        return item_failure(name, root, step, exc, kind, directory)


def tree_failure(root: str, path: str, step: str, exc: BaseException) -> Record:
    """The record of a failed part of a tree: `root` as given, `path` a filesystem path under it
    (or "" for the root itself). A part that could not be listed is of kind `listing`."""
    shown_root = _display_root(root)
    try:
        name = storage.display(storage.url_to_fs(root)[0], path) if path else shown_root
    except Exception:  # noqa: BLE001 - even an unparseable root gets its record
        name = path or root
    return item_failure(name, shown_root, step, exc, LISTING if step == "listing" else CHECKPOINT)


def _display_root(root: str) -> str:
    """The root as records name it (the summary groups by this), or as given if even that fails."""
    try:
        fs, path = storage.url_to_fs(root)
        return storage.display(fs, path)
    except Exception:  # noqa: BLE001
        return root


class RangeFailure(NamedTuple):
    """Why one byte range could not be read, carried to the step that joins its prefix's ranges, where
    it is raised again and becomes the prefix's record: `transient` keeps the rule across the join."""

    text: str
    transient: bool

    @classmethod
    def of(cls, doing: str, exc: BaseException) -> "RangeFailure":
        return cls(f"{doing} failed: {type(exc).__name__}: {exc}", storage.is_transient(exc))

    def as_exception(self) -> Exception:
        return storage.StorageUnavailable(self.text) if self.transient else RuntimeError(self.text)
