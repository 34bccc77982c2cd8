"""STOW-RS bodies whose HTTP framing breaks, sent as raw bytes to a running server.

A broken chunked body (RFC 9112 7.1) is the client's error: 400 with a reason, one log line,
and a worker that goes on serving. A body cut short follows one rule whatever its framing:
the instances before the break are stored, the break is reported as a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import JSON, MULTIPART_DICOM, dicom_parts, indexed, values
from tests.live import LiveServer, Reply

INSTANCE = "application/dicom"


def _exchange(live: LiveServer, content_type: str, framing: str, body: bytes) -> Reply:
    """POST ``body`` as it is, close the write side, and read the answer."""
    head = (f"POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nContent-Type: {content_type}\r\n"
            f"Accept: {JSON}\r\n{framing}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", live.port), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        # A body that breaks early may be answered, and the connection closed, before all of it is sent.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        reply = Reply(response.status, response.headers, response.read())
    if reply.status >= 400:
        live.assert_nothing_internal(reply)
    return reply


def _chunked(data: bytes, size: int = 7000) -> bytes:
    """``data`` as complete chunks, without the last chunk that ends the body."""
    return b"".join(f"{len(data[i:i + size]):x}\r\n".encode() + data[i:i + size] + b"\r\n"
                    for i in range(0, len(data), size))


TRAILERS = b"".join(b"X-Trailer-%d: v\r\n" % n for n in range(1000)) + b"\r\n"
# Each case: (name, the chunked body around an instance's bytes, words of the reason).
CASES = [
    ("bad chunk size", lambda data: b"zz\r\n" + data + b"\r\n0\r\n\r\n", "Invalid chunk size: b'zz'"),
    ("20-digit chunk size", lambda data: b"99999999999999999999\r\n" + data, "the connection closed"),
    ("cut-off body", lambda data: _chunked(data[: len(data) // 2]), "the connection closed"),
    ("100 KB chunk extension", lambda data: b"%x;ext=" % len(data) + b"x" * 100_000 + b"\r\n" + data + b"\r\n0\r\n\r\n",
     "line over"),
    ("1,000 trailers", lambda data: _chunked(data) + b"0\r\n" + TRAILERS, "trailer section is refused"),
]


def _send_broken(live: LiveServer, frame: Callable[[bytes], bytes]) -> tuple[Reply, str]:
    ds = make_dataset()
    return _exchange(live, INSTANCE, "Transfer-Encoding: chunked", frame(to_bytes(ds))), ds.SOPInstanceUID


@pytest.mark.parametrize(("frame", "reason"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_broken_chunked_body_answers_400_and_the_server_serves_on(
    live: LiveServer, frame: Callable[[bytes], bytes], reason: str
) -> None:
    reply, uid = _send_broken(live, frame)
    assert reply.status == 400, reply.body
    text = reply.body.decode()
    assert reason in text
    assert not indexed(live, uid)
    following = make_dataset()
    after = live.request("POST", "/dicom-web/studies", to_bytes(following), {"Content-Type": INSTANCE, "Accept": JSON})
    assert after.status == 200, after.body
    assert indexed(live, following.SOPInstanceUID)


def test_each_broken_body_is_one_log_line_and_no_traceback(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store", workers=1)
    try:
        statuses = [_send_broken(server, frame)[0].status for _, frame, _ in CASES]
    finally:
        log = server.stop()
    assert statuses == [400] * len(CASES)
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "request body from 127.0.0.1 breaks off: " in line]
    assert len(lines) == len(CASES), log
    assert all(" WARNING xdsi.web.stow_rs: " in line for line in lines)


def _cut_inside_part_4(live: LiveServer, chunked: bool) -> tuple[Reply, list[str]]:
    datasets = [make_dataset() for _ in range(4)]
    body = dicom_parts(*(to_bytes(ds) for ds in datasets))
    last = body.rindex(b"--xdsi-test-boundary\r\n")
    sent = body[: last + (len(body) - last) // 2]
    content_type = MULTIPART_DICOM.format("xdsi-test-boundary")
    if chunked:
        reply = _exchange(live, content_type, "Transfer-Encoding: chunked", _chunked(sent))
    else:
        reply = _exchange(live, content_type, f"Content-Length: {len(body)}", sent)
    return reply, [ds.SOPInstanceUID for ds in datasets]


def _shape(reply: Reply, uids: list[str]) -> tuple[int, list[int], list[int], list[int], str]:
    """What the answer says, with this upload's UIDs replaced by their part numbers.

    The instances' UIDs differ in length between uploads, so the byte count of the break does too.
    """
    answer = json.loads(reply.body)
    stored = [uids.index(values(item, "00081155")[0]) + 1 for item in values(answer, "00081199")]
    failed = [uids.index(values(item, "00081155")[0]) + 1 for item in values(answer, "00081198")]
    other = [values(item, "00081197")[0] for item in values(answer, "0008119A")]
    return reply.status, stored, failed, other, re.sub(r"after \d+ bytes", "after N bytes", reply.header("Warning"))


def test_a_body_cut_inside_part_4_keeps_parts_1_to_3_whatever_its_framing(live: LiveServer) -> None:
    shapes = []
    for chunked in (False, True):
        reply, uids = _cut_inside_part_4(live, chunked)
        assert reply.status == 202, reply.body
        assert [indexed(live, uid) for uid in uids] == [True, True, True, False]
        shape = _shape(reply, uids)
        assert shape[1] == [1, 2, 3]
        assert shape[3] and "breaks off" in shape[4], "the break is reported as a failure"
        shapes.append(shape)
    assert shapes[0] == shapes[1]
