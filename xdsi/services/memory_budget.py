"""A byte budget the requests of one process draw on together, and the return of freed heap to the system.

STOW-RS metadata parts are held whole until the bulk data parts after them have arrived, and
parsing them costs a multiple of their size; a few large ones at once could take the machine's
memory. Each request claims the bytes it holds and gives them back when it ends; a request that
would go past the budget is refused at once (``Overloaded``, answered 503 with Retry-After), not
queued, so no thread waits on another's upload. The budget is per process: N workers hold at most
N times it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from xdsi.errors import Overloaded

log = logging.getLogger(__name__)

# Below this, what a request freed is left to the allocator to reuse.
TRIM_AFTER_BYTES = 16 << 20


class MemoryBudget:
    """``limit`` bytes shared by the threads of this process; ``what`` names it in refusals."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.used = 0
        self._lock = threading.Lock()

    @contextmanager
    def claim(self) -> Iterator[Claim]:
        """A claim that grows as the request takes bytes, returned whole when the block ends."""
        claim = Claim(self)
        try:
            yield claim
        finally:
            held = claim.held
            self._give_back(held)
            if held >= TRIM_AFTER_BYTES:
                trim_heap()

    def _take(self, size: int) -> None:
        with self._lock:
            if self.used + size > self.limit:
                raise Overloaded(f"the server holds as much {self.what} as it may at once "
                                 f"({self.limit} bytes); send the request again later")
            self.used += size

    def _give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


class Claim:
    """The bytes one request holds of a budget."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> None:
        """Hold ``size`` more bytes, or raise Overloaded (holding no more than before)."""
        self.budget._take(size)
        self.held += size


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim if name else None
    except (OSError, AttributeError):  # not glibc: musl and others have no malloc_trim
        return None


_TRIM = _malloc_trim()


def trim_heap() -> None:
    """glibc keeps freed memory in its arenas, where the next large request may not fit it; after
    a parse of tens of megabytes, 1.7 GB stayed resident (bench/stow_metadata.py). malloc_trim
    gives the free pages back."""
    if _TRIM is not None:
        _TRIM(0)
