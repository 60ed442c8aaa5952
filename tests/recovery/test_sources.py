"""The engine's view of the sources: one declared order, one interface, and a source that cannot be
imported stops the import instead of quietly leaving the rebuild without it."""

import subprocess
import sys

from recovery.context import OrphanContext
from recovery.fitting import chosen_sources
from recovery.sources import SOURCES, Source
from recovery.sources.meta_graph import meta_graph_layouts
from recovery.sources.registry_source import registry_layouts
from recovery.sources.savedmodel import savedmodel_layouts
from recovery.sources.sibling import sibling_layouts


def test_sources_are_tried_in_one_declared_order_through_one_interface():
    assert all(isinstance(source, Source) for source in SOURCES)
    assert [source.name for source in SOURCES] == ["vault", "part index", "vault (earlier save)", "sibling",
                                                   "vault (siblings)", "saved_model.pb", "TF1 graph", "registry"]


def _context(**options) -> OrphanContext:
    return OrphanContext(fs=None, prefix="/d/ckpt-7", display_prefix="/d/ckpt-7", data_files=[],
                         directory_listing=[], **options)


def test_a_chosen_source_comes_first_and_the_checkpoints_own_declarations_cross_check_it():
    own = [savedmodel_layouts, meta_graph_layouts]
    assert chosen_sources(_context(template="/other/ckpt-3")) == [sibling_layouts, *own]
    assert chosen_sources(_context(arch="resnet50")) == [registry_layouts, *own]


def test_a_source_that_cannot_be_imported_is_an_error_not_a_missing_source():
    """pyfarmhash absent: the SavedModel source and its exact check cannot load, and the import says so."""
    probe = ("import sys; sys.modules['farmhash'] = None\n"
             "try:\n    import recovery.sources\nexcept ImportError as exc:\n    print('ImportError', exc.name)\n"
             "else:\n    print('imported', [s.name for s in recovery.sources.SOURCES])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ImportError", "farmhash"]
