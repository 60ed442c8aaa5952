"""This machine's filesystem (bare paths, file://, local://): the store where the OS itself gives the
guarantees. A create-only write is a hard link of a fsynced temp file (a link never replaces a
file), and the identity of a file's bytes is what rsync's quick check uses plus the inode."""

import io
import os
import uuid

from .base import UPLOAD_PART_BYTES, Store, read_parts


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

    def identity(self, entry: dict) -> str | None:
        """Modification time in nanoseconds, size and inode. A file rewritten in place keeps its inode
        but not its mtime; one replaced by a rename (rsync, most savers) gets a new inode. Only a
        rewrite that also sets the old mtime back on the same inode (`cp -p` onto the existing file,
        same size) keeps all three. The listing gives the mtime as a float, so two times within
        about 0.2 microseconds of each other read the same."""
        mtime, size, inode = entry.get("mtime"), entry.get("size"), entry.get("ino")
        if mtime is None or size is None or inode is None:
            return None
        return f"{round(mtime * 1e9)}:{size}:{inode}"

    def create_new(self, fs, path: str, data: bytes, durable: bool = True) -> None:
        self.create_new_from(fs, path, io.BytesIO(data), len(data), durable=durable)

    def create_new_from(self, fs, path: str, source, size: int, part_bytes: int = UPLOAD_PART_BYTES,
                        durable: bool = True) -> None:
        """Write a temp file beside `path`, fsync it, then hard-link it into place (link never replaces).

        `durable=False` skips both fsyncs, for files whose readers verify them and a crash may lose:
        the vault's content-addressed entries (a lost or torn one is read as absent or damaged and kept
        again), written by the thousand on an audit's first night."""
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(path)}.ckpt-rescue-{uuid.uuid4().hex}.tmp")
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
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


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
