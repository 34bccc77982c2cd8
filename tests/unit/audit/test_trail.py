"""The audit trail never blocks: with the repository unreachable, events beyond the queue are dropped and counted."""

from __future__ import annotations

import time

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
