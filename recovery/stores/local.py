"""This machine's filesystem (bare paths, file://, local://): the store where the OS itself gives the
guarantees. A create-only write is a hard link of a fsynced temp file (a link never replaces a
file), and the identity of a file's bytes is what rsync's quick check uses plus the inode."""

import errno
import io
import os
import stat
from operator import attrgetter, itemgetter

from ..listed import Listed
from .base import DANGLING, LINKED_DIRECTORY, SPECIAL, UPLOAD_PART_BYTES, NotARegularFile, Store, read_parts
from .names import temp_beside


class LocalStore(Store):
    name = "local"
    schemes = ("", "file", "local")
    protocols = ("file", "local")
    mtime_keys = ("mtime",)
    local = True

    def display(self, fs, path: str) -> str:
        return path

    def os_path(self, url: str) -> str:
        for prefix in ("file://", "local://"):
            if url.startswith(prefix):
                return url[len(prefix):]
        return url

    def find(self, fs, path: str, **options) -> dict:
        """fsspec's local `find` entries (the fields the audit reads), from one os.scandir per directory:
        fsspec's own walk stats every entry through several layers of calls, which was most of listing
        a 200,000-file tree (BENCHMARKS.md, 2026-12-07). Like it, an entry is lstat'ed: a symbolic link
        is "other" with `islink` (listed() resolves it) and is never descended into."""
        if options:
            return super().find(fs, path, **options)
        top = fs._strip_protocol(path).rstrip("/") or "/"      # the names fsspec gives (absolute, posix)
        if not os.path.isdir(top):
            return super().find(fs, path)        # a file, or nothing: as fsspec says
        found = {}
        for entry, found_stat in _walk(top):
            found[entry.path] = _entry(entry, found_stat)
        return {name: found[name] for name in sorted(found)}

    def files_under(self, fs, path: str):
        """find()'s regular files made Listed straight from their stat (the same path, size, mtime and
        identity as from find's entries), without an entry dict each: a carried night lists every file
        of the tree, and the entries were a fifth of its listing. Other entries as find gives them."""
        top = fs._strip_protocol(path).rstrip("/") or "/"
        if not os.path.isdir(top):
            return None
        files, others = [], []
        for entry, found in _walk(top):
            if stat.S_ISREG(found.st_mode):
                mtime = found.st_mtime
                files.append(Listed(entry.path, found.st_size, float(mtime), _identity(mtime, found.st_size,
                                                                                       found.st_ino)))
            else:
                others.append(_entry(entry, found))
        files.sort(key=attrgetter("path"))
        others.sort(key=itemgetter("name"))
        return files, others

    def listed(self, entry: dict) -> dict:
        """fsspec types every entry that is not a plain file or directory "other" (by lstat): a symbolic
        link to a regular file is that file (its size, time and inode); anything else says what it is."""
        if entry.get("type") != "other":
            return entry
        if not entry.get("islink"):
            return {**entry, "what": what_mode(entry.get("mode")), "unread": SPECIAL}
        target = entry.get("destination") or os.readlink(entry["name"])
        try:
            found = os.stat(entry["name"])
        except OSError:
            return {**entry, "what": f"a dangling symbolic link (to {target}, which does not exist)",
                    "unread": DANGLING}
        if stat.S_ISREG(found.st_mode):
            return {**entry, "type": "file", "size": found.st_size, "mtime": found.st_mtime, "ino": found.st_ino}
        return {**entry, "what": f"a symbolic link to {what_mode(found.st_mode)} ({target})",
                "unread": LINKED_DIRECTORY if stat.S_ISDIR(found.st_mode) else SPECIAL}

    def occupant(self, path: str) -> str | None:
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(found.st_mode):
            listed = self.listed({"name": path, "type": "other", "islink": True})
            return None if listed["type"] == "file" else listed["what"]
        return None if stat.S_ISREG(found.st_mode) else what_mode(found.st_mode)

    def identity(self, entry: dict) -> str | None:
        """Modification time in nanoseconds, size and inode. A file rewritten in place keeps its inode
        but not its mtime; one replaced by a rename (rsync, most savers) gets a new inode. Only a
        rewrite that also sets the old mtime back on the same inode (`cp -p` onto the existing file,
        same size) keeps all three. The listing gives the mtime as a float, so two times within
        about 0.2 microseconds of each other read the same."""
        mtime, size, inode = entry.get("mtime"), entry.get("size"), entry.get("ino")
        if mtime is None or size is None or inode is None:
            return None
        return _identity(mtime, size, inode)

    def create_new(self, fs, path: str, data: bytes, durable: bool = True) -> None:
        self.create_new_from(fs, path, io.BytesIO(data), len(data), durable=durable)

    def create_new_from(self, fs, path: str, source, size: int, part_bytes: int = UPLOAD_PART_BYTES,
                        durable: bool = True) -> None:
        """Write a temp file beside `path`, fsync it, then hard-link it into place (link never replaces).

        `durable=False` skips both fsyncs, for files whose readers verify them and a crash may lose:
        the vault's content-addressed entries (a lost or torn one is read as absent or damaged and kept
        again), written by the thousand on an audit's first night."""
        directory = os.path.dirname(path) or "."
        tmp = temp_beside(os.path.join(directory, os.path.basename(path)))
        try:
            with open(tmp, "xb") as f:
                for part in read_parts(source, size, part_bytes):
                    f.write(part)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.link(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if durable:
            _fsync_dir(directory)

    def write_replaceable(self, fs, path: str, data: bytes) -> None:
        """Atomic replace: readers see the old file or the new one, never half of it."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = temp_beside(path)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def open_regular(path: str):
    """`open(path, "rb")` of a regular file (or a link to one), refusing anything else without ever
    opening it: a FIFO would block until a writer came, a device may act on being opened. The type is
    checked again on the opened descriptor (opened non-blocking), so a swap in between cannot hang it."""
    found = os.stat(path)
    if not stat.S_ISREG(found.st_mode):
        raise _not_regular(path, found.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise _not_regular(path, opened.st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(path: str, mode: int) -> OSError:
    if stat.S_ISDIR(mode):
        return IsADirectoryError(errno.EISDIR, "is a directory, not a file", path)
    return NotARegularFile(errno.EINVAL, f"is {what_mode(mode)}, not a regular file; never opened", path)


def _walk(top: str):
    """(DirEntry, its lstat) of everything below the directory `top` but directories, from one os.scandir
    per directory. Like fsspec's walk: an entry is lstat'ed (a symbolic link is never descended into),
    one gone since its directory was read is skipped, a directory that cannot be read is left out."""
    pending = [top]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        else:
                            yield entry, entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        pass
        except OSError:
            pass


def _entry(entry: os.DirEntry, found: os.stat_result) -> dict:
    """One entry as fsspec's LocalFileSystem.info gives it (the size of a link's target, the rest lstat's)."""
    link = stat.S_ISLNK(found.st_mode)
    size = found.st_size
    if link:
        try:
            size = os.stat(entry.path).st_size
        except OSError:
            size = 0
    out = {"name": entry.path, "size": size, "type": "file" if stat.S_ISREG(found.st_mode) else "other",
           "islink": link, "mode": found.st_mode, "mtime": found.st_mtime, "ino": found.st_ino}
    if link:
        out["destination"] = os.readlink(entry.path)
    return out


def _identity(mtime: float, size: int, inode: int) -> str:
    return f"{round(mtime * 1e9)}:{size}:{inode}"


def what_mode(mode: int | None) -> str:
    """A file type in words, from a stat mode."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISREG, "a regular file"))
    return next((words for test, words in kinds if mode is not None and test(mode)), "not a regular file")



def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


STORE = LocalStore()
