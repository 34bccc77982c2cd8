"""The store sweep while the server runs: what a killed worker left is removed within an interval.

At start-up ``Archive.prepare`` sweeps once; a worker killed later (out of memory, ``kill -9``, a
timeout) leaves partial uploads and placed files its transaction never indexed. Each server worker
therefore sweeps every ``sweep_interval`` seconds, at a random phase so workers do not sweep
together. The sweep only touches markers of writers that are gone (``BlobStore.sweep``: a process
that no longer exists on this host, or another node's marker older than an hour), so a live
writer, in this process or another, never loses a file.
"""

from __future__ import annotations

import logging
import random
import threading

from xdsi.services.store import InstanceStore

log = logging.getLogger(__name__)


class Sweeper:
    """A daemon thread sweeping ``store`` every ``interval`` seconds until ``stop``."""

    def __init__(self, store: InstanceStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="xdsi-sweep", daemon=True)

    def start(self) -> Sweeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        wait = random.uniform(0, self.interval)  # a phase, not a secret
        while not self.stopped.wait(wait):
            try:
                self.store.sweep(running=True)
            except Exception:  # a failed sweep (database busy, disk error) is retried next time
                log.warning("store sweep failed; retrying in %s s", self.interval, exc_info=True)
            wait = self.interval
