"""Syslog transport of audit messages: RFC 5424 messages over UDP (RFC 5426) or TLS (RFC 5425).

ITI-20 (IHE ITI TF-2 3.20.6.1): facility 10 (security/authorization), severity 5 (notice),
MSGID 'IHE+RFC-3881', the audit XML as MSG. Over TLS each message is octet-counted
(RFC 5425 4.3: ``MSG-LEN SP SYSLOG-MSG``); over UDP one message is one datagram.
"""

from __future__ import annotations

import os
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

FACILITY_AUTHPRIV = 10
SEVERITY_NOTICE = 5
PRI = FACILITY_AUTHPRIV * 8 + SEVERITY_NOTICE
MSGID = "IHE+RFC-3881"
APP_NAME = "xdsi"
# RFC 5424 6.4: a MSG that is UTF-8 starts with the byte order mark.
BOM = b"\xef\xbb\xbf"
# RFC 5426 3.2 asks for 2048 octets unless the path is known to carry more; an audit message of
# a large study is longer, and IPv4 carries 65,507 octets in a datagram: beyond that, TLS is the way.
MAX_DATAGRAM = 65_507
CONNECT_TIMEOUT = 5.0


def frame(xml: bytes, *, hostname: str, when: datetime | None = None) -> bytes:
    """An RFC 5424 SYSLOG-MSG carrying ``xml``."""
    stamp = (when or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = f"<{PRI}>1 {stamp} {_field(hostname, 255)} {APP_NAME} {os.getpid()} {MSGID} - "
    return header.encode("ascii") + BOM + xml


def _field(text: str, limit: int) -> str:
    """RFC 5424 6: header fields are printable US-ASCII without spaces, '-' when empty."""
    cleaned = "".join(ch for ch in text if "!" <= ch <= "~")[:limit]
    return cleaned or "-"


class Transport(Protocol):
    def send(self, message: bytes) -> None: ...

    def close(self) -> None: ...


class UdpTransport:
    """RFC 5426: one datagram per message, no connection, no acknowledgement."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)

    def send(self, message: bytes) -> None:
        if len(message) > MAX_DATAGRAM:
            raise ValueError(f"an audit message of {len(message)} bytes does not fit a UDP datagram")
        self.socket.sendto(message, self.address)

    def close(self) -> None:
        self.socket.close()


class TlsTransport:
    """RFC 5425: a TLS connection (server certificate checked against ``ca``; ours presented when
    given, as ATNA's mutual authentication asks), octet-counted messages, reconnected on failure."""

    def __init__(self, host: str, port: int, *, ca: Path | None, cert: Path | None, key: Path | None) -> None:
        self.host, self.port = host, port
        self.context = ssl.create_default_context(cafile=str(ca) if ca else None)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            self.context.load_cert_chain(str(cert), str(key) if key else None)
        self.connection: ssl.SSLSocket | None = None

    def send(self, message: bytes) -> None:
        if self.connection is None:
            raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
            try:
                self.connection = self.context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
        try:
            self.connection.sendall(str(len(message)).encode("ascii") + b" " + message)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def transport_for(url: str, *, ca: Path | None = None, cert: Path | None = None,
                  key: Path | None = None) -> Transport:
    """The transport ``udp://host:port`` or ``tls://host:port`` names."""
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tls") or not parts.hostname or not parts.port:
        raise ValueError(f"{url!r} is not udp://host:port or tls://host:port")
    if parts.scheme == "udp":
        return UdpTransport(parts.hostname, parts.port)
    return TlsTransport(parts.hostname, parts.port, ca=ca, cert=cert, key=key)
