"""Has the audit in a report directory finished, and how did it end?

A detached run (Dataflow, a Flex Template, Flink) returns before any work is done, so a scheduler
learns the outcome afterwards from the two files every audit writes: the marker
(`.ckpt-rescue-report`: tool, run_id, started) before any work, and summary.json (with the same
run_id and the exit code) last. A summary carrying the run's id means the run finished and every
report file is complete; a marker without it means the run is still going, or died.
"""

import dataclasses
import json
import time

from . import storage
from .listing import REPORT_MARKER
from .records import EXIT_NO_RUN, EXIT_NOT_FINISHED, EXIT_OTHER_RUN
from .report.readback import read_summary


class NotAReport(Exception):
    """The marker or summary.json is there but is not what an audit writes: a person must look."""


@dataclasses.dataclass(frozen=True)
class RunState:
    """What one look at a report directory found, for the run asked about (`run_id`, None: the latest)."""

    report_dir: str
    asked: str | None          # --run-id, or None for "the run the marker names"
    marker: dict | None        # the marker's contents, None when there is none
    summary: dict | None       # summary.json's contents, None when there is none

    @property
    def run_id(self) -> str | None:
        """The run this answer is about."""
        if self.asked:
            return self.asked
        if self.marker:
            return self.marker["run_id"]
        return self.summary["run_id"] if self.summary else None

    @property
    def finished(self) -> dict | None:
        """The run's summary when it has finished, else None."""
        if self.summary and self.summary.get("run_id") == self.run_id:
            return self.summary
        return None

    @property
    def holder(self) -> dict | None:
        """The run the directory holds now: the marker's (written first), else the summary's."""
        return self.marker or self.summary

    @property
    def exit_code(self) -> int:
        if self.finished:
            return int(self.finished["exit_code"])
        if self.holder is None:
            return EXIT_NO_RUN
        if self.asked and not (self.marker and self.marker["run_id"] == self.asked):
            return EXIT_OTHER_RUN
        return EXIT_NOT_FINISHED

    @property
    def settled(self) -> bool:
        """Will waiting change the answer? Not once the run finished, nor when another run holds the directory."""
        return self.exit_code not in (EXIT_NOT_FINISHED, EXIT_NO_RUN)


def look(report_dir: str, run_id: str | None = None) -> RunState:
    """One look: the marker, then summary.json (a run that finishes in between is seen finished)."""
    fs, path = storage.url_to_fs(report_dir)
    base = path.rstrip("/")
    marker = _read(lambda: json.loads(storage.read_bytes(fs, f"{base}/{REPORT_MARKER}")),
                   storage.display(fs, f"{base}/{REPORT_MARKER}"))
    summary = _read(lambda: read_summary(report_dir), storage.display(fs, f"{base}/summary.json"))
    if marker is not None and (marker.get("tool") != "ckpt-rescue" or not isinstance(marker.get("run_id"), str)):
        raise NotAReport(f"{storage.display(fs, f'{base}/{REPORT_MARKER}')} is not a ckpt-rescue marker "
                         f"(tool and run_id expected): {json.dumps(marker)[:200]}")
    if summary is not None and not (isinstance(summary.get("run_id"), str)
                                    and isinstance(summary.get("exit_code"), int)):
        raise NotAReport(f"{storage.display(fs, f'{base}/summary.json')} has no run_id or exit_code: "
                         "it is not an audit's summary")
    return RunState(report_dir, run_id, marker, summary)


def _read(read, shown: str) -> dict | None:
    """The parsed JSON object, or None when the file is not there."""
    try:
        value = read()
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise NotAReport(f"{shown} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NotAReport(f"{shown} is not a JSON object")
    return value


def follow(report_dir: str, run_id: str | None = None, wait: float = 0.0, interval: float = 60.0,
           clock=time.monotonic, sleep=time.sleep, waiting=None) -> RunState:
    """Look every `interval` seconds until the run finished, another run holds the directory, or `wait`
    seconds have passed (the last look is at the end of the wait); `clock` and `sleep` are injectable
    so tests never wait. A look the store did not answer counts only when it is the last one: then
    StorageUnavailable is raised (exit 3, run again). `waiting(state)` is called once, before the first wait.
    """
    deadline = clock() + max(0.0, wait)
    said = False
    while True:
        try:
            state, failure = look(report_dir, run_id), None
        except storage.StorageUnavailable as exc:
            state, failure = None, exc
        if state is not None and state.settled:
            return state
        remaining = deadline - clock()
        if remaining <= 0:
            if failure is not None:
                raise failure
            return state
        if waiting is not None and not said and state is not None:
            waiting(state)
            said = True
        sleep(min(interval, remaining))
