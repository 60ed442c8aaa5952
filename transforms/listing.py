"""List roots: the top level of each root once, then each child recursively on whichever worker gets it."""

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.audit import failure_record
from recovery.discovery import checkpoint_directory
from recovery.listing import everything_under, same_filesystem_path, top_level

from .metrics import counter

CHILDREN, RECORDS = "children", "records"


class ListTopLevel(beam.DoFn):
    """root URL -> ((root, directory), [(path, size, mtime), ...]) for its own files; CHILDREN: (root, child)."""

    def __init__(self, report_dir: str):
        self.report_dir = report_dir

    def process(self, root):
        try:
            fs, path = storage.url_to_fs(root)
            files, children = top_level(fs, path, same_filesystem_path(root, self.report_dir))
        except Exception as exc:  # noqa: BLE001 - a root that fails mid-run is a finding, not a crash
            shown = _display_root(root)
            yield pvalue.TaggedOutput(RECORDS, failure_record(root, "listing", exc, name=shown, root=shown))
            return
        counter("files_listed").inc(len(files))
        yield from by_directory(root, files)
        for child in children:
            yield pvalue.TaggedOutput(CHILDREN, (root, child))


class ListRecursively(beam.DoFn):
    """(root, child directory) -> ((root, directory), [(path, size, mtime), ...]) for every file below it."""

    def __init__(self, report_dir: str):
        self.report_dir = report_dir

    def process(self, element):
        root, child = element
        try:
            fs, _ = storage.url_to_fs(root)
            found = everything_under(fs, child, same_filesystem_path(root, self.report_dir))
        except Exception as exc:  # noqa: BLE001
            name = storage.display(storage.url_to_fs(root)[0], child)
            yield pvalue.TaggedOutput(RECORDS, failure_record(element, "listing", exc, name=name,
                                                              root=_display_root(root)))
            return
        counter("files_listed").inc(len(found))
        yield from by_directory(root, found)


def _display_root(root: str) -> str:
    """The root as records name it (the summary groups by this), or as given if even that fails."""
    try:
        fs, path = storage.url_to_fs(root)
        return storage.display(fs, path)
    except Exception:  # noqa: BLE001
        return root


def by_directory(root: str, files) -> list:
    """Group one lister's files by checkpoint directory before the shuffle: one element per directory,
    not one per file (a 10k-prefix bucket is ~20k files but only ~100 directories)."""
    grouped: dict = {}
    for item in files:   # (path, size, mtime)
        grouped.setdefault((root, checkpoint_directory(item[0])), []).append(tuple(item))
    return list(grouped.items())


def _join_parts(element):
    """A directory's files may come from several listers: concatenate their groups."""
    key, parts = element
    return key, [item for part in parts for item in part]


class ListFiles(beam.PTransform):
    """roots -> ((root, directory), [(path, size, mtime), ...]), plus listing failures as records."""

    def __init__(self, report_dir: str):
        super().__init__()
        self.report_dir = report_dir

    def expand(self, roots):
        top = roots | "List top level" >> beam.ParDo(ListTopLevel(self.report_dir)).with_outputs(
            CHILDREN, RECORDS, main="files")
        below = (top[CHILDREN]
                 | "Spread children" >> beam.Reshuffle()
                 | "List each child" >> beam.ParDo(ListRecursively(self.report_dir)).with_outputs(
                     RECORDS, main="files"))
        grouped = ((top.files, below.files)
                   | "All files" >> beam.Flatten()
                   | "Group by directory" >> beam.GroupByKey()
                   | "Join parts" >> beam.Map(_join_parts))
        failures = (top[RECORDS], below[RECORDS]) | "Listing failures" >> beam.Flatten()
        return grouped, failures
