"""A bounded in-memory cache of rendered images, one per worker process.

Keys name the stored object by its blob key and content digest, so an overwrite (new digest)
never finds the old image, and a delete is answered 404 by the index before the cache is asked.
Per process, not shared: a rendered image is cheap to make again compared with a shared
store's round trip and invalidation, and each gunicorn worker warms its own within a few
requests. Least recently used images are dropped once ``capacity`` bytes are exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class RenderCache:
    """Thread-safe LRU of bytes bounded by their total size; capacity 0 caches nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, data: bytes) -> None:
        # An image over a quarter of the capacity would evict many others for one answer.
        if len(data) > self.capacity // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._entries[key] = data
            self._size += len(data)
            while self._size > self.capacity:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)
