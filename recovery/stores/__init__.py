"""Which store serves a URL or a filesystem: every backend declared once (base.Store), found here.

Each module of this package that defines `STORE` is a backend (local.py, gcs.py, s3.py, memory.py),
so a new backend is one new module; a store from outside the package (a plugin, a test) calls
`register`. A scheme no store declares gets the plain `Store`: fsspec's own behaviour, which works
but writes by check-then-write and cannot be probed (docs/architecture.md, "A new store").
"""

import importlib
import pkgutil

from .base import Store
from .base import is_transient as _is_transient


def _built_in() -> list:
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        store = getattr(importlib.import_module(f"{__name__}.{module.name}"), "STORE", None)
        if isinstance(store, Store):
            found.append(store)
    return found


_STORES = _built_in()
_ANY = Store()     # a scheme nobody declared: fsspec's defaults
_BY_FS_TYPE: dict = {}   # fsspec protocols are class attributes: one answer per filesystem class


def register(store: Store) -> None:
    """Add a backend for its schemes and fsspec protocols; it takes precedence over earlier ones."""
    _STORES.insert(0, store)
    _BY_FS_TYPE.clear()


def store_for(url: str) -> Store:
    """The store of a URL or local path (a bare path is local)."""
    return next((store for store in _STORES if store.claims(url)), _ANY)


def store_for_fs(fs) -> Store:
    """The store of an fsspec filesystem, by its protocol."""
    found = _BY_FS_TYPE.get(type(fs))
    if found is None:
        found = _BY_FS_TYPE[type(fs)] = next((store for store in _STORES if store.serves(fs)), _ANY)
    return found


def local_path(url: str) -> str | None:
    """Where `url` is on this machine's filesystem, or None when it is in another store."""
    return store_for(url).os_path(url)


def is_transient(exc: BaseException) -> bool:
    """Does this exception (or one it was raised from) say "the store did not answer, try again"?"""
    return _is_transient(exc, _STORES)
