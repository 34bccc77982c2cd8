"""The request body of known length as the worker hands it to the application (``HeldBody``)."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from xdsi.worker import ClientSocket, HeldBody


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    yield ours, theirs
    theirs.close()
    for client in _clients.pop(ours, []):
        client.close()  # with the spool files it still holds
    ours.close()


_clients: dict[socket.socket, list[ClientSocket]] = {}


def held_socket(sock: socket.socket, *pieces: bytes | str) -> ClientSocket:
    """A client socket holding ``pieces``; a str piece is held in a spool file, as a large body is."""
    client = ClientSocket(sock, 5.0, lambda: None)
    _clients.setdefault(sock, []).append(client)
    for piece in pieces:
        if isinstance(piece, str):
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the socket once read
            spool.write(piece.encode())
            spool.seek(0)
            client.held.append(spool)
        else:
            client.held.append(piece)
    return client


def request(client: ClientSocket) -> tuple[RequestParser, HeldBody]:
    parser = RequestParser(Config(), client, ("127.0.0.1", 1))
    message = next(parser)
    return parser, HeldBody(message.body, client)


def head(length: int) -> bytes:
    return b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % length


def test_reads_span_held_pieces_and_spool_files_and_stop_at_the_bodys_end(pair) -> None:
    client = held_socket(pair[0], head(12), b"abc", b"defgh", "ijkl", b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    parser, body = request(client)
    assert body.read(5) == b"abcde"
    assert body.read(100) == b"fghijkl"
    assert body.read() == b"" and body.read(10) == b""
    nxt = next(parser)  # the pipelined request is where it begins
    assert (nxt.method, nxt.path) == ("GET", "/next")


def test_a_body_left_partly_unread_is_skipped_by_gunicorn_before_the_next_request(pair) -> None:
    client = held_socket(pair[0], head(10), b"0123", b"456789GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    parser, body = request(client)
    assert body.read(6) == b"012345"
    nxt = next(parser)
    assert (nxt.method, nxt.path) == ("GET", "/after")


def test_a_request_whose_body_gunicorn_read_with_its_head_leaves_what_follows_to_gunicorn(pair) -> None:
    """Pipelined bytes reach the parser in one piece (the head, the body and the next requests):
    the body is what its length says, and the rest is still there for gunicorn, read or not."""
    client = held_socket(pair[0], head(10) + b"0123456789" + head(4) + b"abcdGET /last HTTP/1.1\r\nHost: a\r\n\r\n")
    parser, body = request(client)
    assert body.read(4) == b"0123" and body.read(100) == b"456789" and body.read() == b""
    second = next(parser)
    following = HeldBody(second.body, client)
    assert following.read(2) == b"ab"  # the rest of this body is left unread
    last = next(parser)
    assert (last.method, last.path) == ("GET", "/last")


def test_read_all_readinto_and_lines_give_the_same_bytes(pair) -> None:
    client = held_socket(pair[0], head(13), b"one\ntw", "o\nthree")
    _, body = request(client)
    buffer = bytearray(3)
    assert body.readinto(buffer) == 3 and bytes(buffer) == b"one"
    assert body.readline() == b"\n"
    assert list(body) == [b"two\n", b"three"]


def test_a_body_cut_short_ends_where_the_client_stopped(pair) -> None:
    """The event loop hands over a body whose client closed early; reads then meet the socket's end."""
    client = held_socket(pair[0], head(100), b"only this")
    pair[1].shutdown(socket.SHUT_WR)
    _, body = request(client)
    assert body.read(1000) == b"only this"
    assert body.read(1000) == b""


def test_a_socket_failure_marks_the_body_failed_so_the_connection_closes(pair) -> None:
    client = held_socket(pair[0], head(100), b"part")
    _, body = request(client)
    assert body.read(4) == b"part"
    pair[0].settimeout(0.05)  # the client sends nothing more and does not close
    with pytest.raises(TimeoutError):
        body.read(10)
    assert body.body.failed is True


def test_skip_drops_held_bytes_and_spool_files_up_to_the_size_and_leaves_the_rest(pair) -> None:
    client = held_socket(pair[0], b"abc", "defgh", b"ijklmn")
    assert client.skip(2) == 2 and client.recv(2) == b"c"
    assert client.skip(3) == 3 and client.recv(100) == b"gh"  # in the spool file, by seeking
    assert client.skip(4) == 4 and client.recv(100) == b"mn"
    assert client.skip(10) == 0  # nothing held: the socket itself is never read


def test_while_held_only_a_read_past_the_held_bytes_meets_the_end_instead_of_the_client(pair) -> None:
    ours, theirs = pair
    client = held_socket(ours, b"ab")
    theirs.sendall(b"from the client")
    client.held_only = True
    assert client.recv(10) == b"ab" and client.recv(10) == b""
    client.held_only = False
    assert client.recv(100) == b"from the client"


def test_drop_rest_drops_the_unread_body_where_it_is_held_and_says_whether_all_of_it_was(pair) -> None:
    client = held_socket(pair[0], head(12) + b"abcd", b"efgh", "ijkl", b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    parser, body = request(client)
    assert body.read(2) == b"ab"  # "cd" stays with gunicorn's parser, the rest is held
    assert body.drop_rest() is True and body.read() == b""
    nxt = next(parser)  # the next request is where it begins, found without reading the body out
    assert (nxt.method, nxt.path) == ("GET", "/next")
    cut = held_socket(pair[0], head(100), b"only this")  # a body the client stopped sending
    _, short = request(cut)
    assert short.drop_rest() is False
