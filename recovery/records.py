"""What the audit says about one prefix: a flat record a person, a script and a scheduler can read,
and the exact command that follows from it (promote a staged index, or look closer)."""

import os
import shlex
from dataclasses import dataclass, field, replace

from . import stores

HEALTHY, REBUILT, UNRECOVERABLE, CORRUPT, INCOMPLETE = "healthy", "rebuilt", "unrecoverable", "corrupt", "incomplete"
# STALE: an index that does not describe the data beside it (a save to a reused prefix crashed between
# TensorFlow's data rename and its index write). IN_PROGRESS: files younger than --min-age, judged later.
STALE, IN_PROGRESS = "stale", "in-progress"
# The store kept failing (timeouts, 429/5xx, resets) after retries: nothing was decided; run again.
ERROR = "error"
# DELETED: the previous run saw it and it is gone now (a CheckpointManager deletes old checkpoints at every
# save, a lifecycle rule, a mistake): a finding reported every night until its vault entries are pruned,
# which by itself needs no person.
DELETED = "deleted"
STATUSES = (HEALTHY, REBUILT, UNRECOVERABLE, CORRUPT, INCOMPLETE, STALE, IN_PROGRESS, ERROR, DELETED)
NEEDS_A_PERSON = (UNRECOVERABLE, CORRUPT, INCOMPLETE, STALE)

# What changed since the previous run (a record's `change`; "" when no previous run is known).
NEW, PERSISTS, RESOLVED = "new", "persists", "resolved"
CHANGES = (NEW, PERSISTS, RESOLVED)

# Exit codes of every command. EXIT_CODES is the one table: docs/running.md, the README and `--help`
# show it, and a test holds them to it.
EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_COULD_NOT_CHECK = 0, 1, 2, 3
EXIT_NOTHING_CHECKED = 4     # an empty or missing root, or one that held checkpoints last run and holds none now
EXIT_NOT_FINISHED, EXIT_NO_RUN, EXIT_OTHER_RUN = 5, 6, 7   # `ckpt-rescue status` only
EXIT_CODES = (
    (EXIT_OK, "ok", "nothing needs a person"),
    (EXIT_ATTENTION, "needs a person", "something is unrecoverable, corrupt, incomplete or stale (wins over 3 and 4)"),
    (EXIT_USAGE, "usage", "a usage or configuration error, found before any work started"),
    (EXIT_COULD_NOT_CHECK, "could not check", "storage kept failing after retries, or the pipeline itself failed: "
                                              "nothing was decided for some prefixes (records say `error`); run again"),
    (EXIT_NOTHING_CHECKED, "nothing checked", "a root is empty or missing, or held checkpoints in the previous run "
                                              "and holds none now, or most of what was found was deferred as "
                                              "in-progress (wins over 3)"),
    (EXIT_NOT_FINISHED, "not finished", "status: the run has started and has not written its summary (still running, "
                                        "or it died); wait longer or look at the job"),
    (EXIT_NO_RUN, "no run", "status: no audit has started in this report directory"),
    (EXIT_OTHER_RUN, "other run", "status: the report directory holds another run than --run-id"),
)

# What a record is about: a checkpoint prefix, something an interrupted save left, a `checkpoint`
# state file, or a part of the tree that could not be listed.
CHECKPOINT, LEFTOVER, STATE_FILE, LISTING = "checkpoint", "leftover", "state-file", "listing"


@dataclass(frozen=True)
class Record:
    """Made once and never changed: a step that learns more makes a new one (`dataclasses.replace`).
    Records cross process boundaries (Beam pickles them), so `checks` and `refusals` are tuples."""

    prefix: str                 # as the user would type it (gs://..., s3://..., or a local path)
    status: str
    reason: str
    root: str
    kind: str = CHECKPOINT
    directory: str = ""
    source: str = ""            # the layout a rebuild used: "sibling ckpt-56", "part index in ..."
    index_path: str = ""        # the index that exists, was written in place, or was staged
    staged: bool = False        # index_path is under the report directory, not beside the data
    data_files: int = 0
    data_bytes: int = 0         # listed size of the prefix's data files
    bytes_scanned: int = 0      # data bytes this run read (rebuild, --verify-data, --rehearse)
    checks: tuple = ()
    refusals: tuple = ()
    command: str = ""           # what a person runs next; "" when nothing is to be done
    rehearsal: str | None = None   # --rehearse: byte-identical | differs | refused
    seconds: float = 0.0        # time spent rebuilding or verifying this prefix
    # A rebuild's evidence (recovery.evidence.Evidence as a dict): confirmed, cannot_confirm,
    # reference_matched, reference_total, matched_keys. Empty when nothing was rebuilt or fitted.
    evidence: dict = field(default_factory=dict)
    mtime: float | None = None  # newest modification time of its files (epoch seconds), where the store gives one
    # What `ckpt-rescue salvage` would keep of a prefix refused for damage (recovery.salvage.assess):
    # kept_tensors, total_tensors, kept_bytes, total_bytes, unconfirmed_tensors, command. Empty otherwise.
    salvage: dict = field(default_factory=dict)
    # What changed since the previous run (recovery/memory/changes.py): NEW, PERSISTS, RESOLVED or "" when no
    # previous run is known; since when this status holds (ISO 8601, the run that first saw it); and the run
    # whose reading this record carries because its directory's listing is unchanged ("" when read this run).
    change: str = ""
    since: str = ""
    carried_from: str = ""

    def __post_init__(self):
        for name in ("checks", "refusals"):     # lists as given (or read back from JSON) become tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def needs_a_person(self) -> bool:
        return self.status in NEEDS_A_PERSON


def assembled(fields: dict) -> Record:
    """The Record of exactly these fields (every one of them, `checks` and `refusals` tuples, as __init__
    leaves them), without __init__'s generated call: a nightly audit reads back and carries forward a
    hundred thousand records a night (replace and __init__ were 5% and more of a carried night)."""
    record = object.__new__(Record)
    record.__dict__.update(fields)
    return record


def amended(record: Record, **changes) -> Record:
    """`dataclasses.replace(record, **changes)` by `assembled`: `changes` as __init__ leaves them."""
    return assembled({**vars(record), **changes})


def promote_command(report_dir: str, prefix: str) -> str:
    """Put the index staged for `prefix` in place, create-only (`ckpt-rescue promote`, recovery/promotion.py:
    it finds the staged file under the report directory, and says what to pass when the report has moved)."""
    return shlex.join(["ckpt-rescue", "promote", report_dir, prefix])


def replace_command(report_dir: str, prefix: str) -> str:
    """Keep the existing index aside (unreadable, or stale: P.index.unreadable, P.index.stale, create-only),
    then put the staged one in its place; nothing is overwritten (recovery/promotion.py)."""
    return shlex.join(["ckpt-rescue", "promote", report_dir, prefix, "--replace"])


def inspect_command(prefix: str, options: tuple = ()) -> str:
    """Look closer at `prefix`; `options` (carried_options) go on into the rebuild command inspect suggests."""
    return shlex.join(["ckpt-rescue", "inspect", prefix, *options])


def carried_options(registry: str | None = None, vault: str | None = None, allow_zeros: bool = False) -> tuple:
    """The options that made a finding, as the commands that follow it take them: a `rebuild` suggested
    after an audit with --registry must use that registry, or it is refused for want of it. A local
    registry is named by its absolute path, so the command works from any directory."""
    options = []
    for flag, place in (("--registry", registry), ("--vault", vault)):
        if place:
            options += [flag, os.path.abspath(stores.local_path(place)) if stores.local_path(place) else place]
    if allow_zeros:
        options.append("--allow-zeros")
    return tuple(options)


INSPECT = "ckpt-rescue inspect "


def with_options(record: "Record", options: tuple) -> "Record":
    """The record with the run's options added to the `inspect` command it offers (every step makes
    its command without knowing them; the audit adds them once, before the record is reported)."""
    if not options or not record.command.startswith(INSPECT) or "&&" in record.command:
        return record
    return replace(record, command=f"{record.command} {shlex.join(options)}")
