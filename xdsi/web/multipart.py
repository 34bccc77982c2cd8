"""Streaming multipart/related reader and writer (RFC 2046 5.1, RFC 2387) for STOW-RS and WADO-RS."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from xdsi.errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType
from xdsi.services.stow_assembly import Readable
from xdsi.web.negotiation import CONTROL, TOKEN, MediaRange, format_media_type


class BadMultipartContentType(UnsupportedMediaType):
    """The Content-Type is not multipart or carries no usable boundary; STOW-RS answers 415."""


class MalformedMultipart(InvalidRequest):
    """The body breaks RFC 2046 5.1.1 or a structural limit; the message names the fault (400)."""


class MultipartTooLarge(RequestTooLarge, InvalidRequest):
    """Too many parts, or a part over ``max_part_bytes``: 413 alone, or a failure beside the parts before it.

    Raised while iterating, after the parts within the limit were yielded (and possibly stored).
    """


@dataclass(frozen=True)
class MultipartLimits:
    """Caps on everything a sender controls, so a hostile body costs bounded memory and time."""

    max_parts: int = 1000
    max_header_bytes: int = 8192
    max_header_lines: int = 32
    max_preamble_bytes: int = 65536
    max_part_bytes: int | None = None


# Large reads: a WSGI server buffers what it received beyond a read and copies that remainder
# on every read, so 64 KiB reads of a fast upload cost more in copying than in parsing.
_CHUNK = 1 << 20
# RFC 2046 5.1.1: transport padding is LWSP; senders must not add any, so a long run is hostile.
_MAX_PADDING = 1024
_LWSP = re.compile(rb"[ \t]*")
# RFC 2046 5.1.1 caps a boundary at 70 characters, but Orthanc's DICOMweb client sends two UUIDs
# joined by '-' (73). Any longer cap only widens the delimiter overlap kept between reads.
MAX_BOUNDARY = 256
# RFC 2046 5.1.1: bchars := bcharsnospace / " "; bcharsnospace := DIGIT / ALPHA / "'" / "(" / ")" /
# "+" / "_" / "," / "-" / "." / "/" / ":" / "=" / "?"
_NOT_BCHAR = re.compile(r"[^0-9A-Za-z'()+_,\-./:=? ]", re.ASCII)


def _snippet(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _check_boundary(boundary: str) -> None:
    if not boundary:
        raise BadMultipartContentType(
            "invalid multipart boundary: it is empty; RFC 2046 5.1.1 requires at least one character"
        )
    if len(boundary) > MAX_BOUNDARY:
        raise BadMultipartContentType(
            f"invalid multipart boundary {_snippet(boundary)}: it is {len(boundary)} characters long, "
            f"more than the {MAX_BOUNDARY} accepted (RFC 2046 5.1.1 allows 70)"
        )
    if bad := _NOT_BCHAR.search(boundary):
        raise BadMultipartContentType(
            f"invalid multipart boundary {_snippet(boundary)}: character {bad.group()!r} is not allowed; "
            "RFC 2046 5.1.1 allows letters, digits, '()+_,-./:=? and space"
        )
    if boundary.endswith(" "):
        raise BadMultipartContentType(
            f"invalid multipart boundary {_snippet(boundary)}: it ends in a space, which RFC 2046 5.1.1 forbids"
        )


def boundary_of(media: MediaRange) -> str:
    """The boundary of a parsed multipart Content-Type, validated before any byte of the body is read.

    Raised errors are ``BadMultipartContentType`` because PS3.18 10.5.3 answers an unusable
    Content-Type with 415, not 400.
    """
    boundary = media.params.get("boundary")
    if boundary is None:
        raise BadMultipartContentType("multipart Content-Type has no boundary parameter")
    _check_boundary(boundary)
    return boundary


class _Reader:
    """Owns the stream; finds delimiters in a window holding one chunk plus a delimiter's length."""

    def __init__(self, stream: Readable, boundary: bytes, limits: MultipartLimits) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        self._limits = limits
        # RFC 2046 5.1.1: the first dash-boundary may open the body without a CRLF; starting the
        # window with one makes it an ordinary delimiter.
        self._buf = b"\r\n"
        self._pos = 0
        self._scan = 0
        self._eof = False
        self._received = 0
        self.in_body = False
        self.at_close = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._stream.read(_CHUNK)
        if not data:
            self._eof = True
            return False
        self._received += len(data)
        self._scan = max(self._scan - self._pos, 0)
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def _next_delimiter(self) -> tuple[int, int | None, bool]:
        """(end of bytes known to precede any delimiter, index after the delimiter line or None, is close).

        Each byte is searched once, plus the ``len(delimiter) - 1`` bytes kept as overlap per
        refill, so a body of near-miss boundaries still parses in linear time.
        """
        buf, delimiter = self._buf, self._delimiter
        at = buf.find(delimiter, max(self._pos, self._scan))
        if at < 0:
            self._scan = len(buf) if self._eof else max(self._pos, len(buf) - len(delimiter) + 1)
            return self._scan, None, False
        self._scan = at
        after = at + len(delimiter)
        if len(buf) < after + 2:
            return at, None, False
        if buf[after : after + 2] == b"--":
            return at, after + 2, True
        # RFC 2046 5.1.1: delimiter transport-padding CRLF; padding is LWSP.
        found = _LWSP.match(buf, after)  # matches the empty string too: never None
        padded = found.end() if found else after
        if padded - after > _MAX_PADDING:
            raise MalformedMultipart(f"more than {_MAX_PADDING} bytes of transport padding after a boundary")
        if len(buf) < padded + 2:
            return at, None, False
        if buf[padded : padded + 2] != b"\r\n":
            # RFC 2046 5.1.1: the boundary must not prefix any line of a part, so this is no content.
            raise MalformedMultipart("a boundary line is followed by something other than '--' or CRLF")
        return at, padded + 2, False

    def _advance(self, limit: int) -> bytes | None:
        """Up to ``limit`` bytes before the next delimiter; b"" once it is consumed; None at end of stream."""
        while True:
            safe, after, is_close = self._next_delimiter()
            if safe > self._pos:
                end = min(safe, self._pos + limit)
                data = self._buf[self._pos : end]
                self._pos = end
                return data
            if after is not None:
                self._pos = after
                self._scan = after
                self.at_close = is_close
                return b""
            if self._eof:
                return None
            # At end of stream the next pass releases the tail kept back as delimiter overlap.
            self._fill()

    def skip_preamble(self) -> None:
        limit = self._limits.max_preamble_bytes
        skipped = 0
        while (data := self._advance(_CHUNK)) is not None:
            if not data:
                return
            skipped += len(data)
            if skipped > limit + 2:
                raise MalformedMultipart(
                    f"no boundary within the first {limit} bytes: the preamble is too long or the "
                    "body does not use the boundary declared in Content-Type"
                )
        if not self._received:
            raise MalformedMultipart("the body is empty: expected a multipart body opening with its boundary")
        if self._buf.startswith(self._delimiter, self._pos):
            raise MalformedMultipart("the body ends at its first boundary: the closing boundary is missing")
        raise MalformedMultipart("the body does not contain the boundary declared in Content-Type")

    def read_body(self, size: int) -> bytes:
        if not self.in_body:
            return b""
        data = self._advance(size)
        if data is None:
            raise MalformedMultipart("the body ends inside a part: the closing boundary is missing")
        if not data:
            self.in_body = False
        return data

    def read_headers(self) -> dict[str, str]:
        limit = self._limits.max_header_bytes
        searched = 0
        while True:
            pending = len(self._buf) - self._pos
            if pending >= 2 and self._buf.startswith(b"\r\n", self._pos):
                self._pos += 2
                self._scan = self._pos
                self.in_body = True
                return {}
            end = self._buf.find(b"\r\n\r\n", self._pos + searched) if pending >= 4 else -1
            if end >= 0 and end - self._pos <= limit:
                block = self._buf[self._pos : end]
                self._pos = end + 4
                self._scan = self._pos
                self.in_body = True
                return _parse_headers(block, self._limits.max_header_lines)
            if end >= 0 or pending > limit + 3:
                raise MalformedMultipart(f"a part's header block is longer than {limit} bytes")
            searched = max(pending - 3, 0)
            if not self._fill():
                raise MalformedMultipart("the body ends inside a part's headers: the closing boundary is missing")

    def skip_epilogue(self) -> None:
        limit = self._limits.max_preamble_bytes
        skipped = len(self._buf) - self._pos
        self._buf, self._pos, self._scan = b"", 0, 0
        while skipped <= limit and self._fill():
            skipped += len(self._buf)
            self._buf = b""
        if skipped > limit:
            raise MalformedMultipart(f"more than {limit} bytes after the closing boundary")


def _parse_headers(block: bytes, max_lines: int) -> dict[str, str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedMultipart(f"a part header is not UTF-8 (byte {error.start})") from None
    lines = text.split("\r\n")
    if len(lines) > max_lines:
        raise MalformedMultipart(f"a part has more than {max_lines} header lines")
    headers: dict[str, str] = {}
    name = ""
    for number, line in enumerate(lines, 1):
        if CONTROL.search(line):
            raise MalformedMultipart(f"part header line {number} contains a control character")
        if line[:1] in (" ", "\t"):
            # RFC 5322 2.2.3 / RFC 9110 5.5 obs-fold: a continuation line joins the previous field.
            if not name:
                raise MalformedMultipart(f"part header line {number} continues no header")
            headers[name] = headers[name] + " " + line.strip(" \t")
            continue
        field, colon, value = line.partition(":")
        if not colon or not TOKEN.fullmatch(field):
            raise MalformedMultipart(f"part header line {number} is not 'Name: value': {_snippet(line)}")
        name = field.lower()
        if name in headers:
            raise MalformedMultipart(f"part header {field!r} appears twice")
        headers[name] = value.strip(" \t")
    return headers


class Part(io.BufferedIOBase):
    """One body part, read as a stream straight from the request body.

    It stays readable only until the iterator moves on: asking for the next part discards
    whatever of this one was not read.
    """

    def __init__(self, reader: _Reader, headers: dict[str, str], max_bytes: int | None) -> None:
        super().__init__()
        self.headers = headers
        self.content_type = headers.get("content-type")
        self.content_location = headers.get("content-location")
        self.content_id = headers.get("content-id")
        self._reader = reader
        self._max_bytes = max_bytes
        self._size = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _chunk(self, size: int) -> bytes:
        if self._done:
            return b""
        data = self._reader.read_body(size)
        if not data:
            self._done = True
            return data
        self._size += len(data)
        if self._max_bytes is not None and self._size > self._max_bytes:
            raise MultipartTooLarge(f"a part is larger than {self._max_bytes} bytes")
        return data

    def read1(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed part")
        if size == 0:
            return b""
        return self._chunk(_CHUNK if size is None or size < 0 else size)

    def read(self, size: int | None = -1) -> bytes:
        """Exactly ``size`` bytes unless the part ends first (b"" at its end); -1 reads the rest."""
        if self.closed:
            raise ValueError("read from a closed part")
        if size is None or size < 0:
            return b"".join(iter(lambda: self._chunk(_CHUNK), b""))
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0 and (data := self._chunk(wanted)):
            pieces.append(data)
            wanted -= len(data)
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and (data := self.read1(len(view) - filled)):
            view[filled : filled + len(data)] = data
            filled += len(data)
        return filled

    def _drain(self) -> None:
        while self._chunk(_CHUNK):
            pass


def iter_parts(stream: Readable, boundary: str, limits: MultipartLimits = MultipartLimits()) -> Iterator[Part]:
    """Yield each body part in turn without buffering any part whole.

    The boundary is checked at once; body faults surface while iterating, and a truncated last
    part is only detectable, and reported, when that part is read to its end.
    """
    _check_boundary(boundary)
    return _parts(_Reader(stream, boundary.encode("ascii"), limits), limits)


def _parts(reader: _Reader, limits: MultipartLimits) -> Iterator[Part]:
    reader.skip_preamble()
    count = 0
    while not reader.at_close:
        count += 1
        if count > limits.max_parts:
            raise MultipartTooLarge(f"more than {limits.max_parts} parts")
        part = Part(reader, reader.read_headers(), limits.max_part_bytes)
        yield part
        part._drain()
    reader.skip_epilogue()


def new_boundary() -> str:
    """A boundary no part can contain by chance (122 random bits) that needs no quoting."""
    return f"xdsi-{uuid.uuid4().hex}"


def _header_bytes(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if not TOKEN.fullmatch(name) or CONTROL.search(value):
            raise ValueError(f"part header {name!r} is not a valid header field")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8")


def iter_multipart(parts: Iterable[tuple[dict[str, str], Iterable[bytes] | bytes]], boundary: str) -> Iterator[bytes]:
    """The body of a multipart/related response, produced lazily as a WSGI iterable.

    Part chunks are passed on as the same objects, so a large frame is never copied or split.
    The first boundary opens the body with no preamble, which clients that look for
    ``--boundary`` on the first line (cornerstone's WADO-RS loader) rely on.
    """
    _check_boundary(boundary)
    dash = b"--" + boundary.encode("ascii")
    lead = b""
    for headers, body in parts:
        yield lead + dash + b"\r\n" + _header_bytes(headers) + b"\r\n"
        lead = b"\r\n"
        chunks = (body,) if isinstance(body, bytes) else body
        for chunk in chunks:
            if not isinstance(chunk, bytes):
                raise TypeError(f"part chunks must be bytes, not {type(chunk).__name__}")
            if chunk:
                yield chunk
    # RFC 2046 5.1.1: close-delimiter := delimiter "--".
    yield lead + dash + b"--\r\n"


def body_length(parts: Iterable[tuple[dict[str, str], int]], boundary: str) -> int:
    """The exact length of what ``iter_multipart`` writes for parts of these headers and sizes.

    Knowing it lets a response carry Content-Length, so the connection stays alive without
    chunked encoding.
    """
    dash = 2 + len(boundary.encode("ascii"))
    total = 0
    count = 0
    for headers, size in parts:
        total += (2 if count else 0) + dash + 2 + len(_header_bytes(headers)) + 2 + size
        count += 1
    return total + (2 if count else 0) + dash + 4


def content_type(media_type: str, boundary: str, **params: str | None) -> str:
    """The Content-Type of a multipart/related body whose root parts are ``media_type``.

    Python names cannot hold '-', so an underscore in a keyword becomes one
    (``transfer_syntax=`` gives ``transfer-syntax=``); ``None`` values are left out.
    """
    _check_boundary(boundary)
    return format_media_type("multipart/related", type=media_type, **params, boundary=boundary)
