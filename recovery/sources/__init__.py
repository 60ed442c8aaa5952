"""Sources of truth for a lost index, and the order the engine tries them in.

Each is a `Source` (protocol.py): it offers layouts for an orphan and answers the engine's
cross-check questions about them. The first layout that fits the orphan's bytes wins; every other
that fits must agree with it (docs/architecture.md says where a new source goes).
"""

from ..context import OrphanContext  # what every source looks at
from .meta_graph import meta_graph_layouts
from .part_index import part_index_layouts
from .protocol import Source
from .registry_source import registry_layouts
from .savedmodel import savedmodel_layouts
from .sibling import sibling_layouts
from .vault import vault_earlier_save, vault_own_index, vault_siblings

# Best first: the index of these very bytes (vaulted while healthy, or the part indexes of a merge),
# this prefix's own earlier save, a checkpoint of the same run (live, then vaulted), the model's own
# declarations (SavedModel, TF1 graph), then what a person registered.
SOURCES: tuple[Source, ...] = (vault_own_index, part_index_layouts, vault_earlier_save, sibling_layouts,
                               vault_siblings, savedmodel_layouts, meta_graph_layouts, registry_layouts)

__all__ = ["SOURCES", "OrphanContext", "Source"]
