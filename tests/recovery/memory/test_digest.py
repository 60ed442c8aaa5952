"""recovery/memory/digest.py: a directory's listing digest changes with any file's name, size or
identity, and does not exist where the store gives no identity (such a directory is never carried)."""

import os

from recovery import storage
from recovery.listed import Listed
from recovery.listing import everything_under
from recovery.memory.digest import listing_digest


def _listed(directory) -> list:
    fs, path = storage.url_to_fs(str(directory))
    return everything_under(fs, path)


def test_the_digest_follows_names_sizes_and_identities_in_any_order(tmp_path):
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001", "ckpt-1_temp/part-00000-of-00001.index"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 10)
    files = _listed(tmp_path)
    first = listing_digest(str(tmp_path), files)
    assert first and listing_digest(str(tmp_path), list(reversed(files))) == first
    assert listing_digest(str(tmp_path), _listed(tmp_path)) == first          # listed again, nothing changed
    path = tmp_path / "ckpt-1.data-00000-of-00001"
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))            # touched: another identity
    assert listing_digest(str(tmp_path), _listed(tmp_path)) != first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert listing_digest(str(tmp_path), _listed(tmp_path)) == first
    (tmp_path / "checkpoint").write_text("x")                                   # a new file
    assert listing_digest(str(tmp_path), _listed(tmp_path)) != first


def test_no_identity_no_digest():
    files = [Listed("/m/run/ckpt-1.index", 5, 1.0, None), Listed("/m/run/ckpt-1.data-00000-of-00001", 7, 1.0, "g 1")]
    assert listing_digest("/m/run", files) is None
    assert listing_digest("/m/run", []) is not None      # an empty directory is unchanged while it stays empty


def test_the_digest_is_the_one_earlier_vaults_hold():
    """The bytes hashed are fixed: a head written by an earlier version holds this digest, and a
    different one would have every directory judged afresh (and its snapshot written again) once."""
    files = [Listed("/d/run/ckpt-2.index", 973, 1.5, "1.5:973:11"),
             Listed("/d/run/ckpt-2_temp/part-00000-of-00001.index", 10, 2.0, "2.0:10:12"),
             Listed("/d/run/ckpt-\udcf3.data-00000-of-00001", 4801, 1.5, "g7")]
    assert listing_digest("/d/run/", files) == "8a245c00864461a14ea3cc491351aaa9cc0190091d8740727800076dffe9658b"
