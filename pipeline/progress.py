"""Progress of long local work (a rebuild or rehearsal streaming GBs) on stderr.

Quiet for small checkpoints; at most one line a second otherwise, rewritten in place on a terminal
and appended elsewhere (logs of a scheduled run).
"""

import sys
import time

MIN_TOTAL = 256 << 20      # below this the work ends before anyone would look
INTERVAL = 1.0             # seconds between updates


class Progress:
    """A callable `on_bytes(n)` for the streaming scan: counts bytes and reports now and then."""

    def __init__(self, total: int, label: str, stream=None, min_total: int = MIN_TOTAL, interval: float = INTERVAL):
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total >= min_total
        self.interval = interval
        self.done = 0
        self.started = self.last = time.monotonic()
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.shown = False

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            self._show(now)

    def finish(self) -> None:
        if self.enabled and self.shown:
            self._show(time.monotonic())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()

    def _show(self, now: float) -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * self.done / self.total if self.total else 100.0
        line = (f"{self.label}: {self.done / 1e9:.2f} of {self.total / 1e9:.2f} GB ({percent:.0f}%), "
                f"{rate / 1e6:.0f} MB/s, {elapsed:.1f} s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()
        self.shown = True
