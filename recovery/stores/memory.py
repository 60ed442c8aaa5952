"""fsspec's in-memory filesystem (memory://), for notebooks and tests: the store declared once.

It lives in this process only, so an audit of it runs in this process (Beam workers elsewhere would
see an empty filesystem). A create-only write is a check then a write, safe with one writer; the
listing gives no identity of an object's bytes, so nothing is carried from one run to the next.
"""

from .base import Store


class MemoryStore(Store):
    name = "memory"
    schemes = ("memory",)
    protocols = ("memory",)
    mtime_keys = ("created",)
    in_process = True


STORE = MemoryStore()
