"""Streaming multipart/related: writer->reader round trips, RFC 2046 edge cases, hostile bodies."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import itertools
import os
import random
import re
import shutil
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdsi.errors import InvalidRequest
from xdsi.web.multipart import (
    MAX_BOUNDARY,
    BadMultipartContentType,
    MalformedMultipart,
    MultipartLimits,
    MultipartTooLarge,
    boundary_of,
    content_type,
    iter_multipart,
    iter_parts,
    new_boundary,
)
from xdsi.web.negotiation import parse_media_type

BOUNDARY = "xdsi-5f0c2a9e4b7d4f1e8a6c3b2d1e0f9a8b"
B = BOUNDARY.encode()
DEFAULT_LIMITS = MultipartLimits()

PartSpec = tuple[dict[str, str], bytes]


class Trickle(io.RawIOBase):
    """Hands out a few bytes per read, as a slow socket does, so delimiters straddle every chunk edge."""

    def __init__(self, data: bytes, seed: int = 0, largest: int = 7) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._random = random.Random(seed)
        self._largest = largest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._random.randint(1, self._largest), len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


class Generated(io.RawIOBase):
    """Serves the concatenation of an iterator's chunks without ever holding the whole body."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._current:
            following = next(self._chunks, None)
            if following is None:
                return 0
            self._current = memoryview(following)
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size


def encode(parts: Iterable[tuple[dict[str, str], Iterable[bytes] | bytes]], boundary: str = BOUNDARY) -> bytes:
    return b"".join(iter_multipart(parts, boundary))


def decode(
    stream: io.RawIOBase | io.BytesIO, boundary: str = BOUNDARY, limits: MultipartLimits = DEFAULT_LIMITS
) -> list[PartSpec]:
    return [(part.headers, part.read()) for part in iter_parts(stream, boundary, limits)]  # type: ignore[arg-type]


def lowered(parts: list[PartSpec]) -> list[PartSpec]:
    return [({name.lower(): value for name, value in headers.items()}, body) for headers, body in parts]


def _shapes() -> dict[str, list[PartSpec]]:
    noise = random.Random(7)
    return {
        "no parts": [],
        "one empty part": [({}, b"")],
        "empty parts without headers": [({}, b""), ({}, b""), ({}, b"")],
        "fifty parts": [
            ({"Content-Type": "application/dicom", "Content-Location": f"/studies/1/series/2/instances/{i}"},
             bytes([i]) * i)
            for i in range(50)
        ],
        "crlf and dashes": [
            ({}, b"\r\n"), ({}, b"--"), ({}, b"\r\n--\r\n\r\n"), ({}, b"\r\r\n\n--\r\n-"), ({}, b"\n\r")
        ],
        "boundary prefixes": [
            ({"Content-Type": "application/octet-stream"}, b"\r\n--" + B[:cut] + b"\r\n" + b"--" + B[:cut])
            for cut in range(len(B))
        ]
        + [({}, b"--" + B[:-1]), ({}, b"x\r\n--" + B[:-1])],
        "all byte values": [({"Content-Type": "application/octet-stream"}, bytes(range(256)) * 8)],
        "random binary": [({}, noise.randbytes(n)) for n in (1, 2, 3, 97, 4096, 30_000)],
        "across chunk edges": [({}, noise.randbytes(n)) for n in (65_535, 65_536, 65_537, 2**20 + 3)],
    }


SHAPES = _shapes()


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_round_trip_whole_and_in_random_chunks(shape: str) -> None:
    parts = SHAPES[shape]
    body = encode(parts)
    expected = lowered(parts)
    assert decode(io.BytesIO(body)) == expected
    assert decode(Trickle(body, seed=1, largest=100_000)) == expected
    if len(body) < 300_000:
        assert decode(Trickle(body, seed=2)) == expected


def test_round_trip_of_chunked_bodies_and_a_20_mb_part() -> None:
    big = os.urandom(20 * 2**20)
    parts: list[tuple[dict[str, str], Iterable[bytes] | bytes]] = [
        ({"Content-Type": "application/dicom"}, [big[:10], big[10 : 2**20], big[2**20 :]]),
        ({"Content-Type": "application/dicom"}, iter([b"", b"a", b"", b"bc"])),
    ]
    body = encode(parts)
    for stream in (io.BytesIO(body), Trickle(body, seed=3, largest=200_000)):
        found = iter_parts(stream, BOUNDARY)  # type: ignore[arg-type]
        first = next(found)
        assert hashlib.file_digest(first, "sha256").digest() == hashlib.sha256(big).digest()
        assert next(found).read() == b"abc"
        assert list(found) == []


def test_writer_passes_chunks_through_unchanged() -> None:
    frame = os.urandom(3 * 2**20)
    chunks = list(iter_multipart([({"Content-Type": "image/jpeg"}, frame), ({}, [frame])], BOUNDARY))
    assert sum(chunk is frame for chunk in chunks) == 2
    assert max(len(chunk) for chunk in chunks if chunk is not frame) < 200


def test_writer_output_is_lazy() -> None:
    produced: list[int] = []

    def parts() -> Iterator[tuple[dict[str, str], bytes]]:
        for number in range(3):
            produced.append(number)
            yield {}, b"x"

    body = iter_multipart(parts(), BOUNDARY)
    next(body)
    assert produced == [0]


def test_writer_opens_with_the_boundary_and_closes_it() -> None:
    body = encode([({"Content-Type": "application/dicom"}, b"DICM")])
    # cornerstone's WADO-RS loader reads the first line as the boundary and matches 'Content-Type:'.
    assert body.startswith(b"--" + B + b"\r\nContent-Type: application/dicom\r\n\r\nDICM")
    assert body.endswith(b"\r\n--" + B + b"--\r\n")
    assert encode([]) == b"--" + B + b"--\r\n"


def test_writer_output_parses_with_the_stdlib_mime_parser() -> None:
    parts = [
        ({"Content-Type": "text/plain", "Content-ID": "<a@x>"}, b"line one\r\nline two"),
        ({"Content-Type": "text/plain"}, b"--x\r\n"),
    ]
    head = f"Content-Type: {content_type('text/plain', BOUNDARY)}\r\n\r\n".encode()
    message = email.message_from_bytes(head + encode(parts), policy=email.policy.HTTP)
    assert [(part.get_content_type(), part.get_payload(decode=True)) for part in message.iter_parts()] == [
        ("text/plain", b"line one\r\nline two"),
        ("text/plain", b"--x\r\n"),
    ]


def test_writer_rejects_bad_input() -> None:
    with pytest.raises(BadMultipartContentType):
        encode([], "bad boundary ")
    with pytest.raises(ValueError, match="not a valid header"):
        encode([({"Content-Type": "a\r\nX-Injected: 1"}, b"")])
    with pytest.raises(ValueError, match="not a valid header"):
        encode([({"Bad Name": "x"}, b"")])
    with pytest.raises(TypeError, match="bytes"):
        encode([({}, ["text"])])  # type: ignore[list-item]


def test_new_boundary_is_valid_unique_and_unquoted() -> None:
    boundaries = {new_boundary() for _ in range(1000)}
    assert len(boundaries) == 1000
    for boundary in list(boundaries)[:20]:
        header = content_type("application/dicom", boundary)
        assert header.endswith(f"; boundary={boundary}")
        assert boundary_of(parse_media_type(header)) == boundary


def test_content_type() -> None:
    assert content_type("application/dicom", "abc") == 'multipart/related; type="application/dicom"; boundary=abc'
    assert content_type("application/octet-stream", "a b", transfer_syntax="1.2.840.10008.1.2.1") == (
        'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1; boundary="a b"'
    )


# Orthanc's DICOMweb client joins two UUIDs with '-': 73 characters, past RFC 2046's 70.
ORTHANC_BOUNDARY = "e0d5efa8-2499-4c33-ae6e-ed6ec1ee9c77-e0d5efa8-2499-4c33-ae6e-ed6ec1ee9c77"


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        (
            'multipart/related; type="application/dicom"; boundary="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"',
            "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1",
        ),
        ("multipart/related; type=application/dicom; boundary=abc", "abc"),
        ('Multipart/Related;BOUNDARY = "simple boundary" ;type="application/dicom"', "simple boundary"),
        ('multipart/related; boundary="gc0pJq0M:08jU534c0p"', "gc0pJq0M:08jU534c0p"),
        ("multipart/related; boundary=" + "z" * 70, "z" * 70),
        ('multipart/related; type="application/dicom"; boundary=' + ORTHANC_BOUNDARY, ORTHANC_BOUNDARY),
        ("multipart/related; boundary=" + "z" * MAX_BOUNDARY, "z" * 256),
        ('multipart/related; boundary="' + "a b" * 85 + '"', "a b" * 85),
        ('multipart/related; start="<root>"; boundary="\'()+_,-./:=?"', "'()+_,-./:=?"),
        ("multipart/related;; boundary=0", "0"),
    ],
)
def test_boundary_of(header: str, boundary: str) -> None:
    assert boundary_of(parse_media_type(header)) == boundary


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('multipart/related; type="application/dicom"', "no boundary parameter"),
        ('multipart/related; boundary=""', "it is empty"),
        ("multipart/related; boundary=" + "z" * 257, "257 characters long, more than the 256 accepted"),
        ("multipart/related; boundary=" + "x" * 5000, "5000 characters long, more than the 256 accepted"),
        ('multipart/related; boundary="a@b"', "character '@' is not allowed"),
        ('multipart/related; boundary="caf\xe9"', "character '\xe9' is not allowed"),
        ('multipart/related; boundary="tab\there"', "character '\\t' is not allowed"),
        ('multipart/related; boundary="ends in space "', "ends in a space"),
    ],
)
def test_boundary_of_rejects(header: str, reason: str) -> None:
    with pytest.raises(BadMultipartContentType, match=re.escape(reason)):
        boundary_of(parse_media_type(header))


@pytest.mark.parametrize("boundary", [ORTHANC_BOUNDARY, "z" * 70, "-" * 255 + "x"])
def test_long_boundaries_round_trip_in_random_chunks(boundary: str) -> None:
    # A part holding the delimiter less its last byte, so the reader's overlap must span the whole boundary.
    near_miss = b"\r\n--" + boundary.encode()[:-1]
    parts: list[PartSpec] = [
        ({"Content-Type": "application/dicom", "Content-Length": "5000"}, os.urandom(5000)),
        ({"Content-Type": "application/dicom"}, near_miss * 3 + b"tail"),
    ]
    body = encode(parts, boundary)
    assert decode(io.BytesIO(body), boundary) == lowered(parts)
    assert decode(Trickle(body, seed=5, largest=300), boundary) == lowered(parts)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("multipart/related; boundary=a; boundary=b", "appears twice"),
        ("multipart/related; boundary", "has no '=' value"),
        ('multipart/related; boundary="unterminated', "no valid value"),
        ("multipart/related; boundary=a b", "unexpected text"),
        ("multipart/related; =x", "unexpected text"),
    ],
)
def test_unparsable_multipart_content_type_is_a_bad_request(header: str, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason) as caught:
        parse_media_type(header)
    assert not isinstance(caught.value, BadMultipartContentType)


def test_preamble_and_epilogue_are_ignored() -> None:
    body = (
        b"This is the preamble. --" + B + b" is not at a line start.\r\n"
        b"--" + B + b"\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        b"--" + B + b"\r\n\r\nsecond\r\n"
        b"--" + B + b"--\r\nThis is the epilogue.\r\n--" + B + b"\r\nnot a part\r\n"
    )
    assert decode(io.BytesIO(body)) == [({"content-type": "text/plain"}, b"first"), ({}, b"second")]


def test_transport_padding_after_boundaries() -> None:
    body = b"--" + B + b" \t \r\n\r\none\r\n--" + B + b"\t\r\nA: 1\r\n\r\ntwo\r\n--" + B + b"--  \r\n"
    assert decode(Trickle(body)) == [({}, b"one"), ({"a": "1"}, b"two")]


def test_folded_and_case_insensitive_headers() -> None:
    body = (
        b"--" + B + b"\r\n"
        b"CONTENT-TYPE: multipart/related;\r\n\ttype=\"application/dicom\";\r\n  boundary=x\r\n"
        b"content-location:   /studies/1   \r\n"
        b"Content-ID: <root@xdsi>\r\n"
        b"\r\nbody\r\n--" + B + b"--"
    )
    part = next(iter_parts(io.BytesIO(body), BOUNDARY))
    assert part.headers == {
        "content-type": 'multipart/related; type="application/dicom"; boundary=x',
        "content-location": "/studies/1",
        "content-id": "<root@xdsi>",
    }
    assert (part.content_type, part.content_location, part.content_id) == (
        'multipart/related; type="application/dicom"; boundary=x',
        "/studies/1",
        "<root@xdsi>",
    )


def test_quoted_boundary_with_spaces_in_a_body() -> None:
    boundary = boundary_of(parse_media_type('multipart/related; boundary="simple boundary"'))
    body = b"--simple boundary\r\n\r\nA\r\n--simple boundary\r\n\r\nB\r\n--simple boundary--\r\n"
    assert decode(io.BytesIO(body), boundary) == [({}, b"A"), ({}, b"B")]


def test_dicomweb_client_store_body() -> None:
    # dicomweb-client's _encode_multipart_message: a CRLF before the first boundary and no
    # CRLF after the closing '--' (ImagingDataCommons/dicomweb-client src/dicomweb_client/web.py).
    boundary = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"
    body = b"".join(
        b"\r\n--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + payload
        for payload in (b"first instance", b"second\r\n")
    ) + b"\r\n--" + boundary.encode() + b"--"
    expected = [
        ({"content-type": "application/dicom"}, b"first instance"),
        ({"content-type": "application/dicom"}, b"second\r\n"),
    ]
    assert decode(io.BytesIO(body), boundary) == expected
    assert decode(Trickle(body), boundary) == expected


def test_close_delimiter_only_yields_no_parts() -> None:
    assert decode(io.BytesIO(b"--" + B + b"--")) == []
    assert decode(io.BytesIO(b"preamble\r\n--" + B + b"--\r\n")) == []


def test_unread_parts_are_skipped() -> None:
    parts = [({"N": str(i)}, bytes([65 + i]) * 100_000) for i in range(5)]
    found = iter_parts(Trickle(encode(parts), largest=5000), BOUNDARY)
    starts = []
    previous = None
    for part in found:
        starts.append((part.headers["n"], part.read(3)))
        if previous is not None:
            assert previous.read() == b""
        previous = part
    assert starts == [(str(i), bytes([65 + i]) * 3) for i in range(5)]


def test_part_is_a_file_like_object() -> None:
    payload = os.urandom(300_000)
    found = iter_parts(io.BytesIO(encode([({}, payload), ({}, payload), ({}, payload), ({}, payload)])), BOUNDARY)
    first = next(found)
    assert first.readable()
    copy = io.BytesIO()
    shutil.copyfileobj(first, copy, 1000)
    assert copy.getvalue() == payload
    second = next(found)
    buffer = bytearray(200_000)
    assert second.readinto(buffer) == 200_000 and bytes(buffer) == payload[:200_000]
    assert second.read(0) == b"" and second.read1(0) == b""
    assert second.read1(10) == payload[200_000:200_010]
    assert second.read(None) == payload[200_010:]
    assert second.read1() == b"" and second.readinto(buffer) == 0
    third = next(found)
    assert third.readline() == payload[: payload.index(b"\n") + 1]
    third.close()
    with pytest.raises(ValueError, match="closed"):
        third.read()
    assert next(found).read() == payload


def test_a_large_part_streams_in_bounded_memory() -> None:
    """512 MiB here stands for the multi-gigabyte STOW uploads of production.

    Memory is flat in the part size (one 64 KiB window plus hashlib's buffer), so the peak
    measured for 512 MiB holds for 2 GB; only the time grows, linearly, at about 1 s per 512 MiB.
    """
    size = 512 * 2**20
    block = bytes(range(256)) * 4096

    def chunks() -> Iterator[bytes]:
        yield b"--" + B + b"\r\nContent-Type: application/octet-stream\r\n\r\n"
        for _ in range(size // len(block)):
            yield block
        yield b"\r\n--" + B + b"--\r\n"

    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)
    tracemalloc.start()
    try:
        found = iter_parts(Generated(chunks()), BOUNDARY)
        digest = hashlib.file_digest(next(found), "sha256")
        assert list(found) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest.digest() == expected.digest()
    assert peak < 4 * 2**20


def _consume(body: bytes, boundary: str = BOUNDARY, limits: MultipartLimits = DEFAULT_LIMITS) -> int:
    count = 0
    for part in iter_parts(io.BytesIO(body), boundary, limits):
        part.read()
        count += 1
    return count


def _part(headers: bytes = b"", body: bytes = b"x") -> bytes:
    return b"--" + B + b"\r\n" + headers + b"\r\n" + body + b"\r\n"


CLOSE = b"--" + B + b"--\r\n"

BAD_BODIES: dict[str, tuple[bytes, type[InvalidRequest], str]] = {
    "empty body": (b"", MalformedMultipart, "empty"),
    "CRLF-only body": (b"\r\n", MalformedMultipart, "does not contain the boundary"),
    "no boundary in the body": (b"--AAA\r\n\r\nx\r\n--AAA--\r\n", MalformedMultipart, "does not contain the boundary"),
    "body ends after the first boundary": (b"--" + B, MalformedMultipart, "closing boundary is missing"),
    "body ends inside headers": (b"--" + B + b"\r\nContent-Type: appl", MalformedMultipart, "inside a part's headers"),
    "body ends mid-part": (_part(body=b"truncated data"), MalformedMultipart, "inside a part"),
    "body ends at a boundary": (_part() + b"--" + B, MalformedMultipart, "inside a part"),
    "1,001 parts": (_part() * 1001 + CLOSE, MultipartTooLarge, "more than 1000 parts"),
    "100 KB header block": (
        _part(b"X-Long: " + b"a" * 100_000 + b"\r\n") + CLOSE, MalformedMultipart, "longer than 8192 bytes"
    ),
    "1,000 header lines": (_part(b"A: b\r\n" * 1000) + CLOSE, MalformedMultipart, "more than 32 header lines"),
    "header line without colon": (
        _part(b"Content-Type application/dicom\r\n") + CLOSE, MalformedMultipart, "is not 'Name: value'"
    ),
    "space before colon": (_part(b"Content-Type : x\r\n") + CLOSE, MalformedMultipart, "is not 'Name: value'"),
    "continuation first": (_part(b" folded: x\r\n") + CLOSE, MalformedMultipart, "continues no header"),
    "duplicate header": (_part(b"A: 1\r\na: 2\r\n") + CLOSE, MalformedMultipart, "appears twice"),
    "control character": (_part(b"A: 1\x00\r\n") + CLOSE, MalformedMultipart, "control character"),
    "bare LF in header": (_part(b"A: 1\nB: 2\r\n") + CLOSE, MalformedMultipart, "control character"),
    "non-UTF-8 header": (_part(b"A: \xff\r\n") + CLOSE, MalformedMultipart, "not UTF-8"),
    "preamble of 1 MB": (
        b"p" * 2**20 + b"\r\n" + _part() + CLOSE, MalformedMultipart, "no boundary within the first 65536 bytes"
    ),
    "epilogue of 1 MB": (_part() + CLOSE + b"e" * 2**20, MalformedMultipart, "after the closing boundary"),
    "junk after a boundary": (_part() + b"--" + B + b"junk\r\n" + CLOSE, MalformedMultipart, "other than '--' or CRLF"),
    "one dash after a boundary": (
        _part() + b"--" + B + b"-\r\n" + _part() + CLOSE, MalformedMultipart, "other than '--' or CRLF"
    ),
    "endless transport padding": (
        b"--" + B + b" " * 5000 + b"\r\n\r\nx\r\n" + CLOSE, MalformedMultipart, "transport padding"
    ),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_bodies(case: str) -> None:
    body, error, reason = BAD_BODIES[case]
    started = time.perf_counter()
    with pytest.raises(error, match=reason):
        _consume(body)
    assert time.perf_counter() - started < 0.5


def test_truncation_is_reported_by_reading_the_part() -> None:
    found = iter_parts(io.BytesIO(_part(b"Content-Type: application/dicom\r\n", b"partial")), BOUNDARY)
    part = next(found)
    assert part.read(3) == b"par"
    with pytest.raises(MalformedMultipart, match="closing boundary is missing"):
        part.read()


def test_too_many_parts_fails_after_the_limit() -> None:
    found = iter_parts(io.BytesIO(_part() * 1001 + CLOSE), BOUNDARY)
    for _ in range(1000):
        assert next(found).read() == b"x"
    with pytest.raises(MultipartTooLarge):
        next(found)


def test_part_size_limit() -> None:
    body = _part(body=b"a" * 1000) + _part(body=b"b" * 1001) + CLOSE
    found = iter_parts(io.BytesIO(body), BOUNDARY, MultipartLimits(max_part_bytes=1000))
    assert next(found).read() == b"a" * 1000
    with pytest.raises(MultipartTooLarge, match="larger than 1000 bytes"):
        next(found).read()
    skipped = iter_parts(io.BytesIO(body), BOUNDARY, MultipartLimits(max_part_bytes=1000))
    next(skipped)
    next(skipped)
    with pytest.raises(MultipartTooLarge):
        next(skipped)


@pytest.mark.parametrize("boundary", ["", "a" * 257, "a@b", "trailing ", "caf\xe9", "a\r\nb"])
def test_iter_parts_rejects_invalid_boundaries_at_once(boundary: str) -> None:
    with pytest.raises(BadMultipartContentType):
        iter_parts(io.BytesIO(b"--a--"), boundary)


def _timed(body: bytes, limits: MultipartLimits = DEFAULT_LIMITS) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        _consume(body, "boundary", limits)
        best = min(best, time.perf_counter() - started)
    return best


def _near_misses(size: int) -> bytes:
    return (b"\r\n--boundar" * (size // 11 + 1))[:size]


@pytest.mark.parametrize(
    "filler",
    [_near_misses, lambda size: b"\r\n" * (size // 2), lambda size: (b"\r\n--" + b"-" * 7) * (size // 11)],
    ids=["boundary prefixes", "CRLF runs", "dash runs"],
)
def test_adversarial_parts_parse_in_linear_time(filler: Callable[[int], bytes]) -> None:
    def body(size: int) -> bytes:
        return b"--boundary\r\n\r\n" + filler(size) + b"\r\n--boundary--\r\n"

    one = _timed(body(2**20))
    assert one < 0.5
    assert _timed(body(4 * 2**20)) < 10 * max(one, 0.002)


def test_adversarial_preamble_parses_in_linear_time() -> None:
    body = _near_misses(2**20) + b"\r\n--boundary\r\n\r\nx\r\n--boundary--"
    assert _timed(body, MultipartLimits(max_preamble_bytes=2 * 2**20)) < 0.5


def test_many_small_parts_parse_quickly() -> None:
    body = b"".join(iter_multipart([({}, b"p")] * 1000, "boundary"))
    assert _timed(body) < 0.5


_header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
_header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.strip)
_parts = st.lists(
    st.tuples(
        st.dictionaries(_header_names, _header_values, max_size=4).filter(
            lambda headers: len({name.lower() for name in headers}) == len(headers)
        ),
        st.binary(max_size=400),
        st.lists(st.integers(0, 400), max_size=3),
    ),
    max_size=8,
)


@given(parts=_parts, seed=st.integers(0, 2**32), largest=st.integers(1, 64))
@settings(max_examples=300, deadline=None)
def test_property_arbitrary_parts_round_trip(
    parts: list[tuple[dict[str, str], bytes, list[int]]], seed: int, largest: int
) -> None:
    def split(body: bytes, cuts: list[int]) -> list[bytes]:
        edges = [0, *sorted(min(cut, len(body)) for cut in cuts), len(body)]
        return [body[start:end] for start, end in itertools.pairwise(edges)]

    written = [(headers, split(body, cuts)) for headers, body, cuts in parts]
    expected = lowered([(headers, body) for headers, body, _ in parts])
    assert decode(Trickle(encode(written), seed, largest)) == expected


_fragments = st.sampled_from(
    [b"--B0", b"--B0--", b"\r\n", b"\r", b"\n", b"--", b"-", b"B0", b"\r\n--B0", b"\r\n--B0--", b" ", b"\t",
     b"Content-Type: a/b", b"X:", b":", b"x", b"\x00", b"\xff", b"\r\n\r\n", b" folded"]
)


@given(
    body=st.one_of(st.binary(max_size=600), st.lists(_fragments, max_size=80).map(b"".join)),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_only_invalid_request_escapes(body: bytes, seed: int) -> None:
    limits = MultipartLimits(
        max_parts=5, max_header_bytes=40, max_header_lines=3, max_preamble_bytes=50, max_part_bytes=100
    )
    try:
        for part in iter_parts(Trickle(body, seed, 9), "B0", limits):
            assert len(part.headers) <= 3
            assert len(part.read()) <= 100
    except InvalidRequest:
        pass


@pytest.mark.parametrize("sizes", [[], [0], [5], [1, 0, 70_000], [3] * 40])
def test_body_length_is_exactly_what_the_writer_produces(sizes: list[int]) -> None:
    from xdsi.web.multipart import body_length, iter_multipart, new_boundary

    boundary = new_boundary()
    parts = [({"Content-Type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
               "Content-Location": f"/x/{n}"}, b"z" * size) for n, size in enumerate(sizes)]
    produced = b"".join(iter_multipart(parts, boundary))
    assert body_length([(headers, len(body)) for headers, body in parts], boundary) == len(produced)
