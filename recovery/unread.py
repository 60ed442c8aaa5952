"""The record of a listed entry the audit never reads (recovery.listing.Unread: a FIFO, a device, a
socket, a dangling link, a link to a directory): what it is, and whether a person must act on it."""

import posixpath
import shlex

from tfbundle import INDEX_SUFFIX, parse_data_filename

from . import storage
from .discovery import STATE_FILE, checkpoint_directory
from .listing import Unread
from .records import HEALTHY, LISTING, UNRECOVERABLE, Record
from .stores.base import DANGLING, LINKED_DIRECTORY


def unread_record(root: str, fs, unread: Unread) -> Record:
    """The record of an entry the audit does not read. One named like a checkpoint's file needs a person
    (whatever it is, TensorFlow cannot read it as that file); a symbolic link to a directory outside the
    root says which checkpoints were not audited (its `source` is the target, which summary.json counts);
    anything else is noted."""
    fs_root = storage.url_to_fs(root)[1]
    shown_root, shown = storage.display(fs, fs_root), storage.display(fs, unread.path)

    def record(status: str, reason: str, **fields) -> Record:
        return Record(shown, status, reason, shown_root, LISTING,
                      storage.display(fs, checkpoint_directory(unread.path)), **fields)

    if unread.why == LINKED_DIRECTORY:
        target, real_root = posixpath.realpath(unread.path), posixpath.realpath(fs_root).rstrip("/")
        if target == real_root or target.startswith(real_root + "/"):
            return record(HEALTHY, f"{unread.what}: not followed; its target lies inside this root, where its "
                                   "checkpoints are audited under their own path")
        return record(HEALTHY, f"{unread.what}: not followed, so checkpoints reached only through it were not "
                               f"audited; give {target} as a ROOT to audit them", source=target)
    leaf = posixpath.basename(unread.path)
    named = ("the index of a checkpoint" if leaf.endswith(INDEX_SUFFIX) else
             "a checkpoint's data file" if parse_data_filename(leaf) else
             "TensorFlow's `checkpoint` state file" if leaf == STATE_FILE else None)
    if named is None:
        return record(HEALTHY, f"{unread.what}, not a regular file: never opened (its name is not a checkpoint "
                               "file's)")
    why = ("the file it pointed at is gone" if unread.why == DANGLING else
           "TensorFlow cannot read it as that file, and the audit never opens it (a FIFO would block, a device may "
           "act on being opened)")
    return record(UNRECOVERABLE, f"{unread.what}, named like {named}: {why}; the checkpoint of that name is judged "
                                 "without it. Put the real file in its place, or remove it",
                  command=f"ls -l -- {shlex.quote(shown)}")
