"""RequestFraming: where a request ends, fed one byte at a time or all at once, and when it gives up."""

from __future__ import annotations

import pytest

from xdsi.request_framing import Progress, RequestFraming, Step


def framing(max_body: int = 1 << 30) -> RequestFraming:
    return RequestFraming(max_head=4096, max_chunk_line=64, max_trailers=256, max_body=max_body)


def feed_all(data: bytes, pieces: int) -> tuple[list[Step], RequestFraming]:
    """Feeds DATA in pieces of PIECES bytes (0: all at once) until the request is ready."""
    f, steps = framing(), []
    size = pieces or len(data)
    for at in range(0, len(data), size):
        steps.append(f.feed(data[at:at + size]))
        if steps[-1].progress is not Progress.MORE:
            break
    return steps, f


def joined(steps: list[Step]) -> tuple[bytes, bytes, bytes]:
    heads = [s.head for s in steps if s.head is not None]
    assert len(heads) <= 1
    return (heads[0] if heads else b""), b"".join(s.body for s in steps), b"".join(s.rest for s in steps)


CHUNKED = (b"POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n")
REQUESTS = {
    "no body": (b"GET /studies HTTP/1.1\r\nHost: h\r\n\r\n", 0),
    "content-length": (b"POST /s HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 10),
    "chunked": (CHUNKED, len(CHUNKED) - CHUNKED.index(b"\r\n\r\n") - 4),
    "empty lines first": (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0),
}


@pytest.mark.parametrize("pieces", [0, 1, 3, 7])
@pytest.mark.parametrize("name", REQUESTS)
def test_a_request_is_ready_at_its_last_byte_however_it_arrives(name: str, pieces: int) -> None:
    request, body_length = REQUESTS[name]
    next_request = b"GET /next HTTP/1.1\r\n\r\n"
    steps, f = feed_all(request + next_request, pieces)
    assert [s.progress for s in steps[:-1]] == [Progress.MORE] * (len(steps) - 1)
    assert steps[-1].progress is Progress.READY
    head, body, rest = joined(steps)
    assert head + body == request.lstrip(b"\r\n")
    assert len(body) == body_length == f.body_bytes
    # What follows the request is handed back whole (when fed at once) or in part (a byte at a time).
    assert next_request.startswith(rest)


def test_a_request_cut_short_is_not_ready() -> None:
    for request, _ in REQUESTS.values():
        steps, f = feed_all(request[:-1], 0)
        assert steps[-1].progress is Progress.MORE and not f.whole


@pytest.mark.parametrize("name", REQUESTS)
def test_a_request_followed_to_its_end_is_whole(name: str) -> None:
    _steps, f = feed_all(REQUESTS[name][0], 1)
    assert f.whole


def test_expect_100_continue_is_taken_out_of_the_head_and_noted() -> None:
    f = framing()
    step = f.feed(b"POST /s HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
    assert step.progress is Progress.MORE and f.expects_continue
    assert step.head == b"POST /s HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
    assert f.feed(b"abc").progress is Progress.READY


def test_expect_without_a_body_or_on_http_1_0_is_left_to_the_parser() -> None:
    for head in (b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                 b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"):
        f = framing()
        step = f.feed(head)
        assert step.head == head and not f.expects_continue


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nX: a\r\n folded\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nno colon\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;bad ext\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 65,
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X: 1\r\n" * 50,
], ids=["length and chunked", "two lengths", "bad length", "not chunked last", "folded line", "no colon",
        "bad size", "bad extension", "no CRLF after data", "size line over the limit", "bare LF in trailers",
        "trailers over the limit"])
def test_framing_it_cannot_follow_is_ready_at_once_for_the_parser_to_refuse(request_bytes: bytes) -> None:
    f = framing()
    assert f.feed(request_bytes).progress is Progress.READY and not f.whole


def test_a_body_over_the_limit_is_ready_at_once_for_the_application_to_refuse() -> None:
    f = framing(max_body=100)
    assert f.feed(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").progress is Progress.READY and not f.whole
    f = framing(max_body=100)
    assert f.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").progress is Progress.MORE
    assert f.feed(b"ffff\r\n" + b"x" * 50).progress is Progress.MORE
    assert f.feed(b"x" * 60).progress is Progress.READY and not f.whole


def test_a_body_over_the_limit_is_not_invited_with_100_continue() -> None:
    """The parser would answer 100 Continue to the Expect line, and the client would send what the
    application is about to refuse: the line is taken out of such a head."""
    f = framing(max_body=100)
    step = f.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n")
    assert step.progress is Progress.READY and step.head == b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"
    assert not f.expects_continue and not f.whole


def test_a_head_without_end_past_the_limit_is_too_large() -> None:
    f = framing()
    assert f.feed(b"GET / HTTP/1.1\r\n").progress is Progress.MORE
    assert f.feed(b"X-Long: " + b"a" * 5000).progress is Progress.HEAD_TOO_LARGE
