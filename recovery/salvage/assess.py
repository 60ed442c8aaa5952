"""What a salvage would keep of a prefix the audit could not rebuild, and the exact command that does it.

The audit calls `assess_salvage` for an unrecoverable (or incomplete) prefix with what it already
has: the filesystem, the prefix, its directory listing and the resolved registry. It reads and
checksums the data as a salvage would, and writes nothing.
"""

import posixpath
import shlex
from dataclasses import dataclass

from tfbundle import FormatError

from .. import storage
from .damaged import Refused
from .manifest import kept_in_words, salvage_command
from .plan import plan_salvage
from .verdicts import UNCONFIRMED

SALVAGED_DIR = "salvaged"


@dataclass(frozen=True)
class SalvageAssessment:
    prefix: str                 # as a user would type it
    salvageable: bool
    reason: str = ""            # why nothing can be salvaged
    kept: int = 0               # tensors a salvage keeps (proven or placed), of `total`
    total: int = 0
    kept_bytes: int = 0
    total_bytes: int = 0
    unconfirmed: int = 0        # tensors kept only with --include-unconfirmed
    command: str = ""           # the salvage to run, exactly as printed

    @property
    def summary(self) -> str:
        """"salvageable: 212 of 230 tensors, 93% of bytes", or why not."""
        if not self.salvageable:
            return f"not salvageable: {self.reason}"
        more = f" ({self.unconfirmed} more unconfirmed: --include-unconfirmed)" if self.unconfirmed else ""
        return "salvageable: " + kept_in_words(self.kept, self.total, self.kept_bytes, self.total_bytes) + more


def suggested_output(display_prefix: str) -> str:
    """`DIR/salvaged/NAME` for `DIR/NAME`: beside the run, not in its directory, where the audit would take
    the partial checkpoint for a sibling of the run."""
    trimmed = display_prefix.rstrip("/")
    directory, name = posixpath.split(trimmed)
    return posixpath.join(directory, SALVAGED_DIR, name) if directory else posixpath.join(SALVAGED_DIR, name)


def assess_salvage(fs, prefix: str, listing: list | None = None, registry_layouts=None,
                   registry_path: str | None = None, output: str | None = None) -> SalvageAssessment:
    """What `ckpt-rescue salvage` would keep of `prefix` (a filesystem path), and the command.

    `registry_layouts`: name -> Layout, as the audit resolved them; `registry_path`: the registry file the
    user gave, named in the command when the layout comes from it; `output`: where the command writes
    (default `suggested_output`). Storage that keeps failing raises, as everywhere (status `error`).
    """
    display = storage.display(fs, prefix)
    output = output or suggested_output(display)
    try:
        plan = plan_salvage(fs, prefix, listing, registry_layouts)
    except Refused as exc:
        return SalvageAssessment(display, False, exc.reason)
    except (FormatError, OSError, ValueError) as exc:
        if storage.is_transient(exc):
            raise
        return SalvageAssessment(display, False, f"could not be assessed: {type(exc).__name__}: {exc}")
    from_registry = registry_path and plan.source.startswith("registered `")
    registry = f"--registry {shlex.quote(registry_path)}" if from_registry else ""
    kept = plan.kept
    return SalvageAssessment(display, True, kept=len(kept), total=len(plan.tensors),
                             kept_bytes=sum(t.nbytes for t in kept), total_bytes=sum(t.nbytes for t in plan.tensors),
                             unconfirmed=len(plan.having(UNCONFIRMED)),
                             command=salvage_command(display, output, registry))
