"""The audit trail: events queued without waiting, written and sent by a thread of their own.

A slow or absent Audit Record Repository never holds a request: ``record`` only puts the event
in a bounded queue. The sender keeps the message at the head and tries again (waiting longer
each time, up to ``MAX_BACKOFF``) until the repository takes it; meanwhile events beyond the
queue's capacity are dropped and counted. UDP (RFC 5426) cannot tell a sent datagram from a lost
one, so only TLS makes the count complete. One trail per process: the thread starts with the
first event, in the process that records it (gunicorn forks workers after the app is built).

A fork waits for the message being prepared or sent. Forked in the middle of it, a child would
inherit locks the sender holds inside OpenSSL (loading the CA and the key, a handshake) or the
import system, which no thread of the child ever releases: the gunicorn worker forked just after
the master recorded Application Start then waited forever on its own TLS context. The wait is
bounded by the transport's timeouts (``syslog.CONNECT_TIMEOUT`` for the connection and the send).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from xdsi.audit.messages import Event, Source, to_xml
from xdsi.audit.syslog import Transport, frame

log = logging.getLogger(__name__)

MIN_BACKOFF = 0.2
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Counts:
    """What this process's trail did: sent, waiting, and dropped (queue full, or unsendable)."""

    sent: int
    queued: int
    dropped: int


class AuditTrail:
    def __init__(self, transport: Callable[[], Transport], source: Source, *, capacity: int) -> None:
        self._transport_factory = transport
        self.source = source
        self.capacity = capacity
        self.hostname = socket.gethostname()
        self._sent = 0
        self._dropped = 0
        self._reset()
        # A forked worker inherits the queue and locks but not the thread: it starts afresh.
        trail = weakref.ref(self)
        os.register_at_fork(before=partial(_call, trail, "_hold_sender"),
                            after_in_parent=partial(_call, trail, "_release_sender"),
                            after_in_child=partial(_call, trail, "_reset"))

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # Held by the sender while it prepares or sends a message, and by a fork (see the module's docstring).
        self._sending = threading.Lock()
        self._queue: queue.Queue[Event | None] = queue.Queue(self.capacity)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, event: Event) -> None:
        """Queue ``event`` for sending; never blocks. A full queue drops it (counted)."""
        self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.warning("audit queue full (%d): %s dropped", self.capacity, event.event_id.meaning)

    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._sent, self._queue.qsize(), self._dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop; what is left counts as dropped."""
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        while self._queue.qsize() and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        self._stop.set()  # wakes a sender waiting to try again: it gives up, counting what is left as dropped
        with contextlib.suppress(queue.Full):  # a full queue: the sender stops at its next failure
            self._queue.put_nowait(None)
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="xdsi-audit", daemon=True)
                self._thread.start()

    def _hold_sender(self) -> None:
        self._sending.acquire()

    def _release_sender(self) -> None:
        self._sending.release()

    def _run(self) -> None:
        transport: Transport | None = None
        while True:
            event = self._queue.get()
            if event is None:
                break
            with self._sending:
                message = frame(to_xml(event, self.source), hostname=self.hostname, when=event.when)
            backoff = MIN_BACKOFF
            while True:
                with self._sending:
                    transport, failure = self._try_sending(transport, message)
                if failure is None:
                    break
                if self._stop.is_set():
                    self._give_up()
                    return
                log.warning("audit repository unreachable (%s); trying again in %.1f s", failure, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        if transport is not None:
            with self._sending:
                transport.close()

    def _try_sending(self, transport: Transport | None, message: bytes) -> tuple[Transport | None, OSError | None]:
        """One attempt: the transport to keep, and the failure to try again after (None once sent or dropped)."""
        try:
            transport = transport or self._transport_factory()
            transport.send(message)
        except ValueError as exc:  # unsendable whatever the repository: too large for a datagram
            log.error("audit message dropped: %s", exc)
            with self._lock:
                self._dropped += 1
            return transport, None
        except OSError as exc:
            if transport is not None:
                transport.close()
            return None, exc
        with self._lock:
            self._sent += 1
        return transport, None

    def _give_up(self) -> None:
        """Count the message held and those still queued (not the stop sentinel) as dropped."""
        lost = 1
        with contextlib.suppress(queue.Empty):
            while True:
                lost += self._queue.get_nowait() is not None
        with self._lock:
            self._dropped += lost


def _call(trail: weakref.ref[AuditTrail], method: str) -> None:
    """Calls ``method`` of the trail if it still exists (fork hooks cannot be removed, and must not keep it)."""
    if (alive := trail()) is not None:
        getattr(alive, method)()
