"""Bounded in-memory caches of the rendering service, one of each per worker process: rendered
images, and the parsed headers they are rendered from.

Keys name the stored object by its blob key and content digest, so an overwrite (new digest)
never finds the old entry, and a delete is answered 404 by the index before a cache is asked.
Per process, not shared: a rendered image or a parsed header is cheap to make again compared
with a shared store's round trip and invalidation, and each gunicorn worker warms its own within
a few requests. Least recently used entries are dropped once ``capacity`` bytes are exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class RenderCache(Generic[V]):
    """Thread-safe LRU bounded by the sizes its callers state; capacity 0 caches nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        # An entry over a quarter of the capacity would evict many others for one answer.
        if size > self.capacity // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._entries[key] = (value, size)
            self._size += size
            while self._size > self.capacity:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= dropped

    @property
    def size(self) -> int:
        """Bytes held now, as stated by the callers."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)
