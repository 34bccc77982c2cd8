"""SOAP faults (SOAP 1.2 Part 1 5.4, SOAP 1.1 4.4) and WS-Addressing subcodes (WS-Addressing 1.0 SOAP Binding 6)."""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsi import errormap
from xdsi.errors import XdsiError

SENDER = "Sender"
RECEIVER = "Receiver"
MUST_UNDERSTAND = "MustUnderstand"
VERSION_MISMATCH = "VersionMismatch"


@dataclass
class Fault(Exception):
    """A whole request fails: ``code`` is the SOAP 1.2 fault code, ``subcode`` a qualified name
    ('wsa:ActionNotSupported'), ``reason`` words for the client (never a library's text)."""

    code: str
    reason: str
    subcode: tuple[str, str] | None = None  # (namespace, local name)
    problem_action: str | None = None  # WS-Addressing 1.0 SOAP Binding 6.4.1: wsa:ProblemAction detail
    http_status: int | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__(self.reason)

    @property
    def status(self) -> int:
        """SOAP 1.2 Part 2 7.5.2.2: Sender faults are 400 Bad Request, the others 500."""
        if self.http_status is not None:
            return self.http_status
        return 400 if self.code == SENDER else 500

    @classmethod
    def of(cls, error: XdsiError) -> Fault:
        """The fault a domain error raised for the whole request becomes (errormap's SOAP column)."""
        row = errormap.lookup(error)
        return cls(row.soap_fault, str(error), subcode=row.soap_subcode)
