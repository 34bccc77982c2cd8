"""The audit trail never blocks: with the repository unreachable, events beyond the queue are dropped and counted."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings

from tests.live import free_port
from xdsi.audit import messages as audit
from xdsi.audit.syslog import transport_for
from xdsi.audit.trail import AuditTrail

EVENT = audit.Event(audit.APPLICATION_ACTIVITY, "E", audit.SUCCESS,
                    [audit.Participant("xdsi", False, audit.APPLICATION)], [audit.APPLICATION_START])


def test_an_unreachable_repository_costs_the_caller_nothing_and_drops_are_counted() -> None:
    port = free_port()  # nothing listens: every TLS connection is refused
    trail = AuditTrail(lambda: transport_for(f"tls://127.0.0.1:{port}"), audit.Source("xdsi"), capacity=3)
    started = time.monotonic()
    for _ in range(20):
        trail.record(EVENT)
    assert time.monotonic() - started < 0.5
    counts = trail.counts()
    assert counts.sent == 0
    # One held by the sender for its next attempt, three queued, the rest dropped.
    assert counts.dropped >= 20 - 3 - 1
    trail.close(timeout=0.5)
    assert trail.counts().dropped >= 19


def test_a_fork_waits_for_the_message_being_sent() -> None:
    """A child forked while the sender is inside OpenSSL (loading certificates, a handshake) would inherit
    locks that none of its threads ever releases, and wait forever on its own first TLS context: gunicorn
    forks its workers just after the master recorded Application Start. So a fork waits for the send."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        trail = AuditTrail(lambda: transport_for(f"tls://127.0.0.1:{port}"), audit.Source("xdsi"), capacity=3)
        trail.record(EVENT)
        peer, _ = listener.accept()
        with peer:
            assert peer.recv(1)  # the ClientHello: the sender waits in its handshake for the server's answer
            threading.Timer(1.0, peer.close).start()  # then the handshake fails, and the sender lets go
            started = time.monotonic()
            with warnings.catch_warnings():  # Python >= 3.12 warns of fork() beside threads: the very case here
                warnings.simplefilter("ignore", DeprecationWarning)
                child = os.fork()
            if child == 0:
                os._exit(0)
            forked_after = time.monotonic() - started
            os.waitpid(child, 0)
    trail.close(timeout=0.5)
    assert forked_after >= 0.8, f"forked after {forked_after:.2f} s, in the middle of the handshake"
