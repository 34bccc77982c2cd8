"""Slow and greedy clients against a real ``xdsi serve``: they are cut after their timeout, and normal
requests are served while more of them trickle than the server has threads.

Slow connections come from other loopback addresses (127.0.1.x) than the normal requests, as they
would from other machines; the per-address limit is tested on its own.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections.abc import Iterator

import pytest

from tests.dicomfiles import make_dataset, to_bytes
from tests.live import LiveServer, Reply

STUDIES = "/dicom-web/studies"


def connect(live: LiveServer, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", live.port))
    return sock


def answer(sock: socket.socket, method: str = "GET") -> Reply:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    return Reply(response.status, response.headers, response.read())


def still_open(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed the connection."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(30)
    return False


def stow_head(length: int, extra: str = "") -> bytes:
    return (f"POST {STUDIES} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/dicom\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    """The first ``count`` answers on ``sock``, each its status line up to its body's end (Content-Length)."""
    received, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, f"the connection closed after {answers!r} and {received!r}"
            received += data
        head, _, received = received.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(received) < length:
            data = sock.recv(65536)
            assert data, f"the connection closed inside the answer {head!r}"
            received += data
        answers.append(head + b"\r\n\r\n" + received[:length])
        received = received[length:]
    return answers


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two-second timeouts and at most 4 connections per address, in one worker."""
    folder = tmp_path_factory.mktemp("strict")
    server = LiveServer(f"sqlite:///{folder / 'x.db'}", folder / "store", workers=1, header_timeout="2",
                        body_timeout="2", body_min_rate="1000", max_client_connections="4")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The default timeouts, in one worker of 4 threads, so a few slow clients would fill it."""
    folder = tmp_path_factory.mktemp("patient")
    server = LiveServer(f"sqlite:///{folder / 'x.db'}", folder / "store", workers=1, threads="4")
    yield server
    server.stop()


def test_a_client_trickling_its_head_is_answered_408_and_closed_after_the_header_timeout(strict: LiveServer) -> None:
    sock = connect(strict, "127.0.1.1")
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    for number in range(8):
        time.sleep(0.5)
        with contextlib.suppress(OSError):
            sock.sendall(b"X-Slow-%d: 1\r\n" % number)
    reply = answer(sock)
    waited = time.monotonic() - started
    assert reply.status == 408 and b"request head did not arrive within 2 s" in reply.body
    assert reply.header("Connection") == "close" and 2 <= waited < 6
    assert sock.recv(1) == b""
    sock.close()
    strict.assert_nothing_internal(reply)


def test_a_client_trickling_a_body_is_answered_408_after_the_body_timeout(strict: LiveServer) -> None:
    sock = connect(strict, "127.0.1.2")
    started = time.monotonic()
    sock.sendall(stow_head(100_000) + b"\0" * 100)
    # 100 bytes earn 0.1 s at 1000 bytes/s: the body must be whole within 2.1 s.
    with contextlib.suppress(OSError):
        for _ in range(10):
            time.sleep(0.5)
            sock.sendall(b"\0")
    reply = answer(sock, "POST")
    waited = time.monotonic() - started
    assert reply.status == 408 and b"slower than 1000 bytes/s after 2 s" in reply.body
    assert 2 <= waited < 6
    sock.close()


def test_a_body_sent_in_pieces_at_a_good_rate_is_stored_with_100_continue_answered_once(strict: LiveServer) -> None:
    """The front answers Expect: 100-continue itself (RFC 9110 10.1.1); the application must not again."""
    ds = make_dataset(rows=256, columns=256)
    data = to_bytes(ds)
    sock = connect(strict, "127.0.1.3")
    sock.sendall(stow_head(len(data), "Expect: 100-continue\r\n"))
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    piece = len(data) // 10 + 1
    for at in range(0, len(data), piece):  # about 260 KB/s: well above the rate
        sock.sendall(data[at:at + piece])
        time.sleep(0.1)
    reply = answer(sock, "POST")
    assert reply.status == 200, reply.body
    sock.close()
    stored = strict.request("GET", f"{STUDIES}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                                   f"{ds.SOPInstanceUID}", headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert stored.status == 200 and stored.body == data


def test_a_body_larger_than_memory_holds_is_stored_whole(strict: LiveServer) -> None:
    """Bodies over 1 MiB wait in a spool file; it must give back every byte, in order."""
    ds = make_dataset(rows=1024, columns=1536)
    data = to_bytes(ds)
    assert len(data) > 3 * 1024 * 1024
    reply = strict.request("POST", STUDIES, data, {"Content-Type": "application/dicom"})
    assert reply.status == 200, reply.body
    stored = strict.request("GET", f"{STUDIES}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                                   f"{ds.SOPInstanceUID}", headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert stored.body == data


def test_pipelined_requests_are_answered_in_order(strict: LiveServer) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first, second = read_answers(sock, 2)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 404")
    sock.close()


@pytest.mark.parametrize("size", [(256, 256), (1024, 1536)], ids=["held in memory", "spooled"])
def test_a_stored_body_and_the_request_pipelined_behind_it_are_both_answered(
        strict: LiveServer, size: tuple[int, int]) -> None:
    """The body is handed to the application as held; the request sent behind it, in the same
    packets, must still be found where it begins."""
    ds = make_dataset(rows=size[0], columns=size[1])
    data = to_bytes(ds)
    sock = connect(strict)
    sock.sendall(stow_head(len(data)) + data + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    stored, health = read_answers(sock, 2)
    sock.close()
    assert stored.startswith(b"HTTP/1.1 200"), stored[:300]
    assert health.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in health
    again = strict.request("GET", f"{STUDIES}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                                  f"{ds.SOPInstanceUID}", headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert again.status == 200 and again.body == data


def test_two_stored_bodies_and_a_request_pipelined_in_one_send_are_all_answered(strict: LiveServer) -> None:
    """The second request reaches gunicorn's parser with the first's leftovers, head, body and the
    request behind it in one piece; its body must end where its length says."""
    datasets = [make_dataset(rows=64, columns=64) for _ in range(2)]
    sock = connect(strict)
    sock.sendall(b"".join(stow_head(len(data)) + data for data in map(to_bytes, datasets))
                 + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first, second, health = read_answers(sock, 3)
    sock.close()
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), (first[:300], second[:300])
    assert health.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in health
    for ds in datasets:
        stored = strict.request("GET", f"{STUDIES}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                                       f"{ds.SOPInstanceUID}", headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert stored.status == 200 and stored.body == to_bytes(ds)


def _chunked(body: bytes, size: int = 50_000) -> bytes:
    pieces = [body[k:k + size] for k in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize(("size", "chunked"), [(50_000, False), (600_000, False), (3_000_000, False),
                                               (600_000, True), (3_000_000, True)],
                         ids=["50 KB", "600 KB held in memory", "3 MB spooled", "600 KB chunked", "3 MB chunked, spooled"])
def test_a_body_the_application_does_not_read_is_skipped_and_the_next_request_answered(
        strict: LiveServer, size: int, chunked: bool) -> None:
    """A 415 is answered before any of the body is read; the next request on the connection
    starts after that body, not inside it, however long the body is: the worker holds it whole
    before the application runs, so skipping it waits on nobody. (gunicorn alone drains at most
    64 KiB of an unread body and then closes a connection its answer said would stay open.)"""
    line = b"GET /nowhere HTTP/1.1\r\n\r\n"
    body = line * (size // len(line))  # a body that looks like requests must not be taken for them
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    with contextlib.closing(connect(strict)) as sock:
        sock.sendall(f"POST {STUDIES} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     f"{framing}\r\n\r\n".encode() + (_chunked(body) if chunked else body)
                     + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        refused, health = read_answers(sock, 2)
    assert refused.startswith(b"HTTP/1.1 415"), refused[:300]
    assert health.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in health


@pytest.mark.parametrize("expect", [True, False], ids=["Expect: 100-continue", "body sent at once"])
def test_a_body_over_the_limit_is_refused_from_its_head_and_the_connection_closed(
        strict: LiveServer, expect: bool) -> None:
    """413 without 100 Continue before it (the body is not invited), and Connection: close: the body
    is not read, so the connection cannot carry another request. The close is at once, with no
    thread waiting for the body the client might still send."""
    head = (f"POST {STUDIES} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/dicom\r\n"
            f"Content-Length: {strict.settings.max_request_bytes + 1}\r\n" + ("Expect: 100-continue\r\n" if expect else "")
            + "\r\n").encode()
    with contextlib.closing(connect(strict)) as sock:
        sock.settimeout(5)
        started = time.monotonic()
        sock.sendall(head + (b"" if expect else b"x" * 100_000))
        received = b""
        while data := sock.recv(65536):
            received += data
    assert time.monotonic() - started < 3
    assert received.startswith(b"HTTP/1.1 413"), received[:300]
    assert b"100 Continue" not in received and b"\r\nConnection: close\r\n" in received, received[:300]


def test_an_unread_chunked_body_that_breaks_its_framing_ends_the_connection_after_the_one_answer(
        strict: LiveServer) -> None:
    """Dropping the unread body meets the broken chunk size: where a next request would start is
    unknown, so the connection closes, and no second answer follows the 415 on it."""
    with contextlib.closing(connect(strict)) as sock:
        sock.sendall(f"POST {STUDIES} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        while data := sock.recv(65536):
            received += data
    assert received.startswith(b"HTTP/1.1 415"), received[:300]
    assert received.count(b"HTTP/1.1 ") == 1, received  # no 400 written behind the answer already sent


def test_a_client_sending_its_next_request_after_an_unread_large_body_is_answered(strict: LiveServer) -> None:
    """As http.client does: the next request goes once the answer is read. The answer said the
    connection stays open, so it must: a resent STOW-RS would otherwise meet a closed socket."""
    ds = make_dataset(rows=512, columns=512)
    data = to_bytes(ds)
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", strict.port, timeout=30)) as connection:
        connection.request("POST", STUDIES, body=data, headers={"Content-Type": "text/plain"})
        refused = connection.getresponse()
        assert refused.status == 415 and refused.getheader("Connection") != "close"
        refused.read()
        connection.request("POST", STUDIES, body=data, headers={"Content-Type": "application/dicom"})
        stored = connection.getresponse()
        assert stored.status == 200, stored.read()[:300]
        stored.read()


def test_connections_closing_after_their_answer_do_not_hold_up_other_clients(patient: LiveServer) -> None:
    """After an answer with Connection: close the server half-closes and reads what the client still
    sends for up to 2 s (RFC 9112 9.6: closing with unread bytes would send a reset that can destroy
    the answer). Clients that neither close nor send must not make that wait the event loop's:
    others are served meanwhile, and each lingering connection is closed after the 2 s."""
    held = []
    for _ in range(5):
        sock = connect(patient)
        sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        held.append(sock)
    try:
        time.sleep(0.2)
        for _ in range(5):
            started = time.monotonic()
            assert patient.request("GET", "/healthz").status == 200
            assert time.monotonic() - started < 1.0
        for sock in held:
            sock.settimeout(10)
            received = b""
            while data := sock.recv(65536):
                received += data
            assert received.startswith(b"HTTP/1.1 404") and b"\r\nConnection: close\r\n" in received
    finally:
        for sock in held:
            sock.close()


def test_one_address_holds_at_most_max_client_connections_and_others_are_served(strict: LiveServer) -> None:
    held = [connect(strict, "127.0.2.1") for _ in range(4)]
    for sock in held:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    extra = connect(strict, "127.0.2.1")
    reply = answer(extra)
    assert reply.status == 429 and reply.header("Retry-After")
    assert b"too many connections" in reply.body
    extra.close()
    strict.assert_nothing_internal(reply)
    assert strict.request("GET", "/healthz").status == 200
    assert all(still_open(sock) for sock in held)
    for sock in held:
        sock.close()
    time.sleep(0.5)
    # Closed connections give their places back.
    again = connect(strict, "127.0.2.1")
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer(again).status == 200
    again.close()


def test_normal_requests_are_served_while_ten_times_more_slow_clients_than_threads_trickle(patient: LiveServer) -> None:
    ds = make_dataset()
    assert patient.request("POST", STUDIES, to_bytes(ds), {"Content-Type": "application/dicom"}).status == 200
    slow = []
    for number in range(40):
        sock = connect(patient, f"127.0.1.{10 + number % 10}")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" if number % 2 else stow_head(1_000_000) + b"\0")
        slow.append(sock)
    time.sleep(0.5)
    instance = f"{STUDIES}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    for _ in range(10):
        started = time.monotonic()
        found = patient.request("GET", f"{STUDIES}?PatientID=PAT-1&StudyInstanceUID={ds.StudyInstanceUID}")
        retrieved = patient.request("GET", instance, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert found.status == 200 and ds.StudyInstanceUID.encode() in found.body
        assert retrieved.status == 200 and retrieved.body == to_bytes(ds)
        assert time.monotonic() - started < 2
    assert all(still_open(sock) for sock in slow)
    for sock in slow:
        sock.close()
