"""What a nightly run knows about itself and the run before it (plain data, shipped to every worker),
and what it counts besides records (`NightCounts`: directories carried or judged, indexes kept)."""

import dataclasses
import datetime
from dataclasses import dataclass

DAY = 86400.0


def iso(epoch: float) -> str:
    """Epoch seconds as records and entries say them: ISO 8601, UTC, to the second."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str) -> float | None:
    """ISO 8601 (with Z or an offset) back to epoch seconds; None for "" or text that is not a time."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def compact(epoch_seconds: float) -> str:
    """A time as a name that sorts by time: 20261205T023000Z."""
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class PreviousRun:
    """The run this one is compared with."""

    run_id: str
    report_dir: str
    started: str                  # ISO 8601
    finished: str
    roots: tuple = ()
    live: tuple = ()              # (root, records other than `deleted`) of each root it audited
    verify_round: int | None = None

    def summary_field(self) -> dict:
        return {"run_id": self.run_id, "report_dir": self.report_dir, "finished": self.finished}

    def live_under(self, root: str) -> int:
        return dict(self.live).get(root, 0)


@dataclass(frozen=True)
class Nightly:
    """What every worker needs to remember and compare: shipped with the DoFns (small, frozen)."""

    run_id: str
    now: float                    # the run's clock (epoch seconds): since, first seen, retention
    report_dir: str
    vault: str | None = None      # where directories' records are kept and carried from (--vault)
    compare: str | None = None    # the memory compared with: the vault, or an earlier report's (--previous)
    previous: PreviousRun | None = None
    full: bool = False            # --full: judge every directory, carry none
    keep_days: float = 30.0       # --vault-keep-days
    verify_share: int | None = None   # --verify-share 1/N: N; None verifies every healthy checkpoint
    verify_round: int = 0         # this run's place in the rotation
    judged_with: str = ""         # digest of what a verdict depends on besides the listing

    @property
    def now_iso(self) -> str:
        return iso(self.now)

    @property
    def known(self) -> bool:
        """Is there a previous run to say new / persists / resolved against?"""
        return self.previous is not None

    def expired(self, since: str) -> bool:
        """Older than --vault-keep-days at this run's clock."""
        then = epoch(since)
        return then is not None and self.now - then > self.keep_days * DAY


@dataclass
class NightCounts:
    """What a run counts besides records (summary.json's `directories` and `vault`): `add` per event
    where it happens, `merge` across workers."""

    listed: int = 0               # checkpoint directories listed this run
    carried: int = 0              # ... carried forward (listing unchanged, verdicts final)
    judged: int = 0               # ... read and judged
    gone: int = 0                 # directories the previous run saw that are gone now
    kept: int = 0                 # indexes the vault holds now that it did not (new entries)
    kept_bytes: int = 0
    pruned: int = 0               # vault entries removed (retention)
    vault_failed: int = 0         # keeps and snapshots the vault did not take (it did not answer): warned

    def add(self, other: "NightCounts") -> "NightCounts":
        return self.merge([other])

    def merge(self, others) -> "NightCounts":
        for other in others:
            for name in (f.name for f in dataclasses.fields(self)):
                setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def any(self) -> bool:
        return any(dataclasses.astuple(self))
