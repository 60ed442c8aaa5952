"""Small per-process caches that the threads of one Beam SDK worker share safely.

Beam's Python SDK harness runs bundles on several threads of one process, so a module-level dict
with check-then-insert-then-evict would race (two threads evicting the same oldest key raise
KeyError; iteration during insertion raises RuntimeError). Here every access holds a lock; the
value is computed outside it, so slow reads never serialize, and a failed computation (e.g. the
store did not answer) is not cached.
"""

import threading
from collections import OrderedDict


class SharedCache:
    """A bounded least-recently-used mapping, safe under concurrent threads."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key, compute):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()            # outside the lock: two threads may both compute; both get a value
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
