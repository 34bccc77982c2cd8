"""MTOM/XOP messages (W3C SOAP MTOM, XOP 1.0; ITI TF-2x V.3.6): reading a request's root part,
and writing an answer as a stream.

An answer is ``multipart/related; type="application/xop+xml"``: the envelope first, then one
binary part per document, named by the ``cid:`` of the ``xop:Include`` that stands for it in the
envelope. A part's bytes are produced only when the stream reaches it (a stored file read in
chunks, or one transcoded instance), so a whole study goes out with the memory of one document.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from werkzeug.http import parse_options_header

from xdsi.soap.envelope import SoapVersion
from xdsi.soap.faults import SENDER, Fault

ROOT_ID = "root.message@xdsi"
XOP_TYPE = "application/xop+xml"


@dataclass(frozen=True)
class Attachment:
    """One binary part: ``produce`` is called when the stream reaches it."""

    content_id: str
    media_type: str
    produce: Callable[[], Iterable[bytes]]
    length: int | None = None

    @property
    def href(self) -> str:
        """The xop:Include href: RFC 2392 cid URL, with the id percent-encoded."""
        return "cid:" + quote(self.content_id, safe="@.-_")


def new_content_id(index: int) -> str:
    return f"{index}.{uuid.uuid4().hex}@xdsi"


def new_boundary() -> str:
    return f"MIMEBoundary_{uuid.uuid4().hex}"


def content_type(version: SoapVersion, boundary: str, action: str) -> str:
    return (f'multipart/related; boundary="{boundary}"; type="{XOP_TYPE}"; start="<{ROOT_ID}>"; '
            f'start-info="{version.content_type}"; action="{action}"')


def _root_headers(version: SoapVersion, boundary: str) -> bytes:
    return (f"--{boundary}\r\nContent-Type: {XOP_TYPE}; charset=UTF-8; type=\"{version.content_type}\"\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{ROOT_ID}>\r\n\r\n").encode("ascii")


def _part_headers(attachment: Attachment, boundary: str) -> bytes:
    return (f"\r\n--{boundary}\r\nContent-Type: {attachment.media_type}\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{attachment.content_id}>\r\n\r\n").encode("ascii")


def _closing(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def iter_message(version: SoapVersion, boundary: str, root: bytes,
                 attachments: Sequence[Attachment]) -> Iterator[bytes]:
    """The message, the envelope at once and each attachment as it is produced."""
    yield _root_headers(version, boundary) + root
    for attachment in attachments:
        yield _part_headers(attachment, boundary)
        yield from attachment.produce()
    yield _closing(boundary)


def message_length(version: SoapVersion, boundary: str, root: bytes, attachments: Sequence[Attachment]) -> int | None:
    """The length of ``iter_message``'s bytes, when every attachment's length is known in advance."""
    total = len(_root_headers(version, boundary)) + len(root) + len(_closing(boundary))
    for attachment in attachments:
        if attachment.length is None:
            return None
        total += len(_part_headers(attachment, boundary)) + attachment.length
    return total


def root_part(content_type_header: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The envelope of an MTOM request (the part named by ``start``, else the first), and the
    parameters of its Content-Type (``action`` may be there)."""
    _, params = parse_options_header(content_type_header)
    boundary = params.get("boundary")
    if not boundary:
        raise Fault(SENDER, "the multipart/related request has no boundary")
    start = params.get("start", "").strip().strip("<>")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    parts = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            continue
        headers = _headers(head)
        parts.append((headers, content.removesuffix(b"\r\n")))
    if not parts:
        raise Fault(SENDER, "the multipart/related request has no parts")
    for headers, content in parts:
        if not start or headers.get("content-id", "").strip().strip("<>") == start:
            return content, params
    raise Fault(SENDER, f"no part of the request has the start Content-ID <{start[:80]}>")


def _headers(block: bytes) -> dict[str, str]:
    found = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            found[name.strip().lower()] = value.strip()
    return found
