"""Where one HTTP/1.1 request ends in the bytes of its connection (RFC 9112 6.3, 7.1), found as they arrive.

The serving front (``xdsi.worker``) holds each request until this says it is whole, so no
application thread waits on a slow client. It does not judge the request: gunicorn's parser reads
the held bytes afterwards and answers any fault. Where the framing cannot be followed (a malformed
chunk size, conflicting lengths, a bare LF), the request is ready at once: the parser then meets the
fault in bytes it already holds and answers 400 without waiting on the socket. For the same reason
the line and trailer limits are gunicorn's own: below them the parser would wait for more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gunicorn.http.body import CHUNK_EXT_RE

_HEX = frozenset(b"0123456789abcdefABCDEF")


class Progress(enum.Enum):
    MORE = "more"  # the request goes on: read more
    READY = "ready"  # whole, or unreadable past this point: hand it to the parser
    HEAD_TOO_LARGE = "head too large"  # no end of the head within the limit


class _Body(enum.Enum):
    HEAD = 0
    LENGTH = 1
    SIZE_LINE = 2
    CHUNK_DATA = 3
    CHUNK_END = 4
    TRAILERS = 5
    DONE = 6


@dataclass(frozen=True)
class Step:
    """What one ``feed`` found: the head once it is whole (rewritten, see ``RequestFraming``), the
    bytes of the body, and the bytes past the end of the request (the next request of a pipeline)."""

    progress: Progress
    head: bytes | None = None
    body: bytes = b""
    rest: bytes = b""


class RequestFraming:
    """Follows one request through its head and body.

    An ``Expect: 100-continue`` line is taken out of the head it returns, and
    ``expects_continue`` set: the front answers 100 Continue itself while it reads the body
    (RFC 9110 10.1.1), and the application, reading the body after it is whole, has no reason to.
    A Content-Length over ``max_body`` (or a chunked body growing past it) is ready at once: the
    application refuses it from its head (413) without the body being read, and an
    ``Expect: 100-continue`` is taken out of such a head too, so that the body is not invited.
    ``whole`` says whether the request was followed to its end: only then is all of it held, and
    only then can the connection carry another request after the answer.
    """

    def __init__(self, *, max_head: int, max_chunk_line: int, max_trailers: int, max_body: int) -> None:
        self.max_head, self.max_chunk_line, self.max_trailers, self.max_body = (
            max_head, max_chunk_line, max_trailers, max_body)
        self.state = _Body.HEAD
        self.buffer = bytearray()  # the head, a chunk size line or the trailers, while incomplete
        self.remaining = 0  # bytes left of the body (LENGTH) or of the chunk (CHUNK_DATA)
        self.body_bytes = 0
        self.expects_continue = False
        self.whole = False

    def feed(self, data: bytes) -> Step:
        if self.state is _Body.HEAD:
            return self._feed_head(data)
        return self._feed_body(data, None)

    def _feed_head(self, data: bytes) -> Step:
        self.buffer += data
        # RFC 9112 2.2: empty lines before the request line are ignored.
        while self.buffer[:2] == b"\r\n":
            del self.buffer[:2]
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return Step(Progress.HEAD_TOO_LARGE if len(self.buffer) > self.max_head else Progress.MORE)
        head, after = bytes(self.buffer[:end + 4]), bytes(self.buffer[end + 4:])
        self.buffer = bytearray()
        head, unreadable = self._read_head(head)
        if unreadable:
            self.state = _Body.DONE
            return Step(Progress.READY, head, b"", after)
        return self._feed_body(after, head)

    def _read_head(self, head: bytes) -> tuple[bytes, bool]:
        """The head to pass on and whether its framing cannot be followed; sets the body's state."""
        lines = head[:-4].split(b"\r\n")
        version = lines[0].rsplit(b" ", 1)[-1]
        lengths: list[bytes] = []
        codings: list[bytes] = []
        kept = [lines[0]]
        continue_line = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or line[:1] in (b" ", b"\t") or b"\n" in line:
                return head, True
            key, value = name.lower(), value.strip(b" \t")
            if key == b"content-length":
                lengths.append(value)
            elif key == b"transfer-encoding":
                codings += [c.strip(b" \t").lower() for c in value.split(b",")]
            elif key == b"expect" and value.lower() == b"100-continue" and version == b"HTTP/1.1":
                continue_line = True
                continue
            kept.append(line)
        if codings:
            if lengths or codings[-1] != b"chunked":
                return head, True
            self.state = _Body.SIZE_LINE
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                return head, True
            self.remaining = int(lengths[0])
            if self.remaining > self.max_body:
                return (b"\r\n".join(kept) + b"\r\n\r\n" if continue_line else head), True
            self.state = _Body.LENGTH if self.remaining else _Body.DONE
        else:
            self.state = _Body.DONE
        if continue_line and self.state is not _Body.DONE:
            self.expects_continue = True
            head = b"\r\n".join(kept) + b"\r\n\r\n"
        return head, False

    def _feed_body(self, data: bytes, head: bytes | None) -> Step:
        view = memoryview(data)
        at = 0
        while self.state is not _Body.DONE and at < len(view):
            if self.state in (_Body.LENGTH, _Body.CHUNK_DATA):
                taken = min(self.remaining, len(view) - at)
                at += taken
                self.remaining -= taken
                if not self.remaining:
                    self.state = _Body.DONE if self.state is _Body.LENGTH else _Body.CHUNK_END
            elif self.state is _Body.CHUNK_END:
                piece = view[at:at + 2 - len(self.buffer)]
                self.buffer += piece
                at += len(piece)
                if len(self.buffer) == 2:
                    if self.buffer != b"\r\n":
                        return self._unreadable(data, at, head)
                    self.buffer = bytearray()
                    self.state = _Body.SIZE_LINE
            else:
                at, unreadable = self._feed_line(view, at)
                if unreadable:
                    return self._unreadable(data, at, head)
        self.body_bytes += at
        body, rest = data[:at], data[at:]
        self.whole = self.state is _Body.DONE
        if self.whole or self.body_bytes > self.max_body:
            return Step(Progress.READY, head, body, rest)
        return Step(Progress.MORE, head, body)

    def _feed_line(self, view: memoryview, at: int) -> tuple[int, bool]:
        """Takes bytes of a chunk size line or of the trailer section; whether its framing is broken."""
        trailers = self.state is _Body.TRAILERS
        start = max(0, len(self.buffer) - 3)
        self.buffer += view[at:]
        if trailers:
            end = 0 if self.buffer[:2] == b"\r\n" else self.buffer.find(b"\r\n\r\n", start)
            terminator, limit = 2 if end == 0 else 4, self.max_trailers
        else:
            end, terminator, limit = self.buffer.find(b"\r\n", start), 2, self.max_chunk_line
        if end < 0:
            bare_lf = trailers and self.buffer.count(b"\n") != self.buffer.count(b"\r\n")
            unreadable = len(self.buffer) > limit or bare_lf
            return len(view), unreadable
        used = len(view) - (len(self.buffer) - end - terminator)
        line = bytes(self.buffer[:end])
        self.buffer = bytearray()
        if trailers:
            self.state = _Body.DONE
            return used, False
        size, semicolon, extension = line.partition(b";")
        if semicolon:
            size = size.rstrip(b" \t")
        if not size or not set(size) <= _HEX or (semicolon and not CHUNK_EXT_RE.fullmatch(b";" + extension)):
            return used, True
        self.remaining = int(size, 16)
        self.state = _Body.CHUNK_DATA if self.remaining else _Body.TRAILERS
        return used, False

    def _unreadable(self, data: bytes, at: int, head: bytes | None) -> Step:
        self.state = _Body.DONE
        self.body_bytes += at
        return Step(Progress.READY, head, data[:at], data[at:])
