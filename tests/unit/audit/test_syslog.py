"""Syslog framing (RFC 5424 for ITI-20) and the transports' refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from xdsi.audit.syslog import MAX_DATAGRAM, frame, transport_for


def test_a_message_is_rfc5424_with_the_atna_header() -> None:
    message = frame(b"<AuditMessage/>", hostname="pacs 1\n", when=datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    header, _, body = message.partition(b"\xef\xbb\xbf")
    assert re.fullmatch(rb"<85>1 2026-01-02T03:04:05\.006Z pacs1 xdsi \d+ IHE\+RFC-3881 - ", header), header
    assert body == b"<AuditMessage/>"


@pytest.mark.parametrize("url", ["tcp://host:514", "udp://host", "tls://:6514", "host:514"])
def test_only_udp_and_tls_urls_name_a_transport(url: str) -> None:
    with pytest.raises(ValueError):
        transport_for(url)


def test_a_datagram_too_large_is_refused_not_cut() -> None:
    transport = transport_for("udp://127.0.0.1:9")
    try:
        with pytest.raises(ValueError, match="does not fit"):
            transport.send(b"x" * (MAX_DATAGRAM + 1))
    finally:
        transport.close()
