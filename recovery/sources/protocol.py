"""What the rebuild engine knows of a source of truth: this interface, nothing else.

A source offers layouts (or refusals saying why it cannot) for one orphan. The rest are the
questions the engine's cross-checks ask about a layout the source offered; a source answers
only for its own layouts.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable

from ..context import OrphanContext
from ..fingerprint import attach_fingerprint
from ..layout import Layout, Refusal


class Source(ABC):
    name: str = ""                   # for people, e.g. in the refusal when the source itself fails
    chosen_by: str = ""              # the option by which a person picks this source: "template" or "arch"
    own_declaration: bool = False    # the checkpoint's own SavedModel or .meta: it cross-checks a chosen source

    @abstractmethod
    def layouts(self, ctx: OrphanContext) -> Iterable["Layout | Refusal"]:
        """Every layout this source holds for the orphan, best first, and a refusal for each it rejects."""

    def __call__(self, ctx: OrphanContext) -> list:
        """The layouts offered, each with the exact check its SavedModel's fingerprint.pb gives, if any."""
        offered = list(self.layouts(ctx))
        for found in offered:
            if isinstance(found, Layout):
                attach_fingerprint(ctx, found)
        return offered

    def exact(self, layout: Layout) -> bool:
        """The index of these very bytes: nothing can improve on it, and its shapes need no cross-check."""
        return False

    def declares_shapes(self, layout: Layout) -> bool:
        """The layout's shapes are the model's declaration for this checkpoint, not what another one held."""
        return False

    def choice(self, layout: Layout) -> str:
        """The command-line option that makes this layout the chosen one, or "" if there is none."""
        return ""
