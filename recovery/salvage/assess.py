"""What a salvage would keep of a prefix the audit could not rebuild, and the exact command that does it.

The audit calls `assess_salvage` for a prefix refused for damage (or incomplete) with what it already
has: the filesystem, the prefix, its directory listing, the resolved registry and its file, the vault,
and what its rebuild already read of the data. It reads and checksums the rest as a salvage would, and
writes nothing; the command it returns reproduces the assessment from any directory.
"""

import posixpath
import shlex
from dataclasses import dataclass

from tfbundle import FormatError

from .. import storage
from .damaged import NotDamaged, Refused
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
    bytes_read: int = 0         # data bytes the assessment read (none where a rebuild's pass was reused)
    damaged: bool = True        # False: asked about damage only (damaged_only), and none was seen

    def record_field(self) -> dict:
        """The record's `salvage` field (docs/running.md): {} when nothing can be salvaged."""
        if not self.salvageable:
            return {}
        return {"kept_tensors": self.kept, "total_tensors": self.total, "kept_bytes": self.kept_bytes,
                "total_bytes": self.total_bytes, "unconfirmed_tensors": self.unconfirmed, "command": self.command}

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
                   registry_path: str | None = None, output: str | None = None, vault=None, streamed=None,
                   damaged_only: bool = False) -> SalvageAssessment:
    """What `ckpt-rescue salvage` would keep of `prefix` (a filesystem path), and the command.

    `registry_layouts`: name -> Layout, as the audit resolved them; `registry_path`: the registry file they
    came from (named in the command, which then finds what the audit found, from any directory); `output`:
    where the command writes (default `suggested_output`); `vault`: the audit's index vault (a
    recovery.vault.Vault, named in the command by its URL); `streamed`: what the audit's rebuild already
    read of these shards (scan.streamed), not read again; `damaged_only`: only where damage is seen
    (`damaged` False otherwise, having read as little as it could). Storage that keeps failing raises,
    as everywhere (status `error`).
    """
    display = storage.display(fs, prefix)
    output = output or suggested_output(display)
    try:
        plan = plan_salvage(fs, prefix, listing, registry_layouts, vault=vault, registry_path=registry_path or "",
                            output_args=f"--output {shlex.quote(output)}", streamed=streamed,
                            damaged_only=damaged_only)
    except NotDamaged as exc:
        return SalvageAssessment(display, False, exc.reason, damaged=False, bytes_read=exc.bytes_read)
    except Refused as exc:
        return SalvageAssessment(display, False, exc.reason, bytes_read=exc.bytes_read)
    except (FormatError, OSError, ValueError) as exc:
        if storage.is_transient(exc):
            raise
        return SalvageAssessment(display, False, f"could not be assessed: {type(exc).__name__}: {exc}")
    options = (f"--registry {shlex.quote(registry_path)}" if registry_path else "",
               f"--vault {shlex.quote(vault.url)}" if vault is not None else "")
    kept = plan.kept
    return SalvageAssessment(display, True, kept=len(kept), total=len(plan.tensors),
                             kept_bytes=sum(t.nbytes for t in kept), total_bytes=sum(t.nbytes for t in plan.tensors),
                             unconfirmed=len(plan.having(UNCONFIRMED)),
                             command=salvage_command(display, output, *options), bytes_read=plan.ctx.bytes_read)
