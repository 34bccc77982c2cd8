"""Which credentials this process saw lately: a login is audited once, not on each request it makes.

HTTP has no sessions: a viewer sends the same Basic credentials, token or client certificate with
each of its hundred requests. PS3.15 A.5.3.12 audits a user's login, so the first request with a
credential counts as the login, and the same credential again within ``REMEMBER_SECONDS`` does
not. Credentials are remembered by a keyed hash, never as themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict

REMEMBER_SECONDS = 300
REMEMBER_MAX = 4096


class RecentLogins:
    def __init__(self, seconds: float = REMEMBER_SECONDS, capacity: int = REMEMBER_MAX) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._secret = os.urandom(32)
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, mechanism: str, credential: str) -> bool:
        """True if ``credential`` was not seen within the last ``seconds`` (and remembers it from now)."""
        key = hmac.new(self._secret, f"{mechanism}\0{credential}".encode("utf-8", "replace"), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            until = self._seen.pop(key, None)
            self._seen[key] = now + self.seconds
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return until is None or until < now
