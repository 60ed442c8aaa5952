"""List roots in parallel at object-store latency: the first EXPAND_LEVELS directory levels one
delimiter listing each, every directory on whichever worker gets it, then everything below in
recursive listings of groups of sibling directories (recovery.listing.sibling_groups).

A directory's subdirectories share its budget of listing elements (SPLIT_INTO per root): while they
are fewer than the budget each is expanded with its share, so a root whose one child holds a whole
bucket is still split under that child; once they are as many, they are cut into that many groups,
each one flat listing of a name prefix on GCS and S3. Requests stay near one per directory expanded
plus one per page of objects, and a root of thousands of runs is listed in SPLIT_INTO groups rather
than one listing per run.
"""

import posixpath
from collections.abc import Sequence
from operator import attrgetter
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue

from recovery import storage
from recovery.discovery import by_checkpoint_directory
from recovery.failures import tree_failure
from recovery.listed import Listed
from recovery.listing import (
    everything_under_group,
    same_filesystem_path,
    sibling_groups,
    top_level,
)
from recovery.unread import unread_record

from .collection import collect_less
from .errors import failures_become_records
from .metrics import counter

SPLIT_INTO = 64          # listing elements aimed at per root: a few per worker of a big local run
EXPAND_LEVELS = 3        # directory levels listed one at a time (the root's included)
DEEPER, GROUPS, RECORDS, WHOLE = "deeper", "groups", "records", "whole"


class DirectoryKey(NamedTuple):
    root: str
    directory: str


class DirectoryFiles(NamedTuple):
    """The files of one checkpoint directory (merge temp directories included) found under a root."""

    root: str
    directory: str
    files: Sequence[Listed]     # recovery.listed.Listed: path, size, mtime, identity


class Expand(NamedTuple):
    """A directory to list one level of, with the number of listing elements its subtree may become.
    An empty directory stands for the root itself."""

    root: str
    directory: str
    share: int


class SiblingGroup(NamedTuple):
    """Sibling directories of `parent` to list recursively: exactly those whose names start with `prefix`."""

    root: str
    parent: str
    prefix: str
    members: Sequence[str]


for _element_type in (Listed, DirectoryKey, DirectoryFiles, Expand, SiblingGroup):
    beam.coders.registry.register_coder(_element_type, beam.coders.RowCoder)   # deterministic, schema'd


class ListDirectory(beam.DoFn):
    """Expand -> DirectoryFiles of its own files; DEEPER: Expand of subdirectories; GROUPS: SiblingGroup.
    On the last level every subdirectory goes to a group."""

    def __init__(self, report_dir: str, last: bool):
        self.report_dir = report_dir
        self.last = last

    @failures_become_records("listing", where=lambda self, element: (element.root, element.directory), tag=RECORDS)
    def process(self, element: Expand):
        fs, root_path = storage.url_to_fs(element.root)
        directory = element.directory or root_path
        files, children, unread = top_level(fs, directory, same_filesystem_path(element.root, self.report_dir))
        counter("directories_expanded").inc()
        counter("files_listed").inc(len(files))
        yield from by_directory(element.root, files)
        for entry in unread:
            yield pvalue.TaggedOutput(RECORDS, unread_record(element.root, fs, entry))
        for below in split(element, directory, children, self.last):
            yield pvalue.TaggedOutput(DEEPER if isinstance(below, Expand) else GROUPS, below)


def split(element: Expand, directory: str, children: list, last: bool) -> list:
    """What to list below `directory`: each child expanded with its share of the budget while the
    children are fewer than it, else (or on the last level) the children cut into groups."""
    if not children:
        return []
    parent = directory.rstrip("/") + "/"
    names = [child[len(parent):] if child.startswith(parent) else posixpath.basename(child) for child in children]
    share = element.share // len(children)
    if share > 1 and not last and all(names):      # an empty name cannot be listed by delimiter: a group lists it
        return [Expand(element.root, child, share) for child in children]
    return [SiblingGroup(element.root, directory, prefix, members)
            for prefix, members in sibling_groups(names, element.share)]


class ListGroup(beam.DoFn):
    """SiblingGroup -> DirectoryFiles for every file below its members; a failure is one record per member.

    WHOLE: the directories below a member, whose files (their merge temp directories' included) are
    all in this one listing, in path order. Main output: files that belong to the group's parent (the
    merge temp directories among the members), which the parent's own listing must join."""

    def __init__(self, report_dir: str):
        self.report_dir = report_dir

    def setup(self):
        collect_less()

    def process(self, group: SiblingGroup):
        try:
            fs, _ = storage.url_to_fs(group.root)
            found, unread = everything_under_group(fs, group.parent, group.prefix, tuple(group.members),
                                                   same_filesystem_path(group.root, self.report_dir))
            unread_records = [unread_record(group.root, fs, entry) for entry in unread]
        except Exception as exc:  # noqa: BLE001
            for member in group.members:
                yield pvalue.TaggedOutput(RECORDS, tree_failure(
                    group.root, f"{group.parent.rstrip('/')}/{member}", "listing", exc))
            return
        counter("listing_groups").inc()
        counter("files_listed").inc(len(found))
        for record in unread_records:
            yield pvalue.TaggedOutput(RECORDS, record)
        below_parent = group.parent.rstrip("/") + "/"
        for directory in by_directory(group.root, found):
            if directory.directory.startswith(below_parent):
                yield pvalue.TaggedOutput(WHOLE, directory._replace(files=sorted(directory.files)))
            else:
                yield directory


def by_directory(root: str, files) -> list:
    """Group one lister's files by checkpoint directory before the shuffle: one element per directory,
    not one per file (a 10k-prefix bucket is ~20k files but only ~100 directories)."""
    grouped = by_checkpoint_directory(files, attrgetter("path"))
    return [DirectoryFiles(root, directory, found) for directory, found in grouped.items()]


def _keyed(part: DirectoryFiles):
    return DirectoryKey(part.root, part.directory), list(part.files)


def _joined(element) -> DirectoryFiles:
    """A directory's files may come from several listers (a merge temp directory is listed apart from
    its parent): one element with all of them, in path order."""
    key, parts = element
    return DirectoryFiles(key.root, key.directory, sorted(f for part in parts for f in part))


class ListFiles(beam.PTransform):
    """root URLs -> ({"whole": DirectoryFiles, "joined": DirectoryFiles}, listing failures as records):
    one DirectoryFiles per checkpoint directory, in one of the two.

    Directories a group listing found whole go on from the stage that listed them; only the others
    (the files of expanded directories, merge temp directories listed apart from their parent) are
    joined by a GroupByKey, which a local runner holds in memory whole."""

    def __init__(self, report_dir: str):
        super().__init__()
        self.report_dir = report_dir

    def expand(self, roots):
        pending = roots | "Start" >> beam.Map(lambda root: Expand(root, "", SPLIT_INTO)).with_output_types(Expand)
        files, groups, failures = [], [], []
        for level in range(EXPAND_LEVELS):
            if level:
                pending = pending | f"Spread level {level}" >> beam.Reshuffle()
            listed = pending | f"List level {level}" >> beam.ParDo(
                ListDirectory(self.report_dir, last=level == EXPAND_LEVELS - 1)).with_outputs(
                    DEEPER, GROUPS, RECORDS, main="files")
            files.append(listed.files)
            groups.append(listed[GROUPS])
            failures.append(listed[RECORDS])
            pending = listed[DEEPER]
        below = (tuple(groups)
                 | "All groups" >> beam.Flatten()
                 | "Spread groups" >> beam.Reshuffle()
                 | "List groups" >> beam.ParDo(ListGroup(self.report_dir)).with_outputs(
                     RECORDS, WHOLE, main="files"))
        joined = ((*files, below.files)
                  | "All files" >> beam.Flatten()
                  | "Key by directory" >> beam.Map(_keyed).with_output_types(
                      tuple[DirectoryKey, Sequence[Listed]])
                  | "Group by directory" >> beam.GroupByKey()
                  | "Join parts" >> beam.Map(_joined).with_output_types(DirectoryFiles))
        failures = (*failures, below[RECORDS]) | "Listing failures" >> beam.Flatten()
        return {WHOLE: below[WHOLE], "joined": joined}, failures
