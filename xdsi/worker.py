"""The gunicorn worker of ``xdsi serve``: gthread, with each request read whole before a thread serves it.

gunicorn's gthread worker hands a connection to an application thread as soon as its first byte
arrives; the thread then reads the rest of the head and the body from the socket. Sixteen clients
sending one byte every few seconds held all sixteen threads of a server and stopped it. This worker
reads heads and bodies in its event loop instead, without blocking, as nginx does in front of an
application (``proxy_request_buffering``): a request reaches a thread only once it is whole (held in
memory up to ``MEMORY_PER_REQUEST``, spooled to an unnamed file in the store's folder beyond), so a
slow client costs a socket and a buffer, never a thread. Measured against the other ways of
serving (docs/deployment.md, bench/results/slowclients-*.json).

The event loop also enforces what threads cannot:
- the head must arrive within ``header_timeout`` seconds, the body within ``body_timeout`` plus
  one second per ``body_min_rate`` bytes received (Apache's mod_reqtimeout rule); past either,
  the answer is 408 and the connection closes;
- one client address holds at most ``max_client_connections`` connections in each worker process
  (429 beyond), except the ``trusted_proxies``, which carry many clients;
- a thread writing an answer waits at most ``send_timeout`` seconds for a client that reads none of it.
gunicorn's parser reads each request from the held bytes afterwards, so framing faults are
answered exactly as before (``xdsi.request_framing`` says why that never waits on the socket).
A body of known length is then handed to the application as held (``HeldBody``), not copied
through gunicorn's buffers.

With ``tls_cert`` set the event loop speaks TLS itself (``security.tls``): it performs each
handshake without blocking, under the same ``header_timeout`` as the head (a client that opens
TLS and never finishes the handshake is cut), then reads decrypted bytes. gunicorn's own TLS
settings stay off, since its threads would do the handshake blocking. Answers are written
through the TLS socket: the kernel's sendfile cannot encrypt, so file answers go by writes.
The verified client certificate's subject reaches the application in the WSGI environ.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import logging
import selectors
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from gunicorn.http.body import DEFAULT_MAX_TRAILER_SECTION, Body, LengthReader
from gunicorn.http.errors import NoMoreData, ParseException
from gunicorn.workers.gthread import TConn, ThreadWorker

from xdsi.config import Network, Settings
from xdsi.request_framing import Progress, RequestFraming
from xdsi.security.tls import CLIENT_SUBJECT, client_subject, server_context

log = logging.getLogger(__name__)

# A request's body is held in memory up to this size; a larger one goes to a spool file. All
# requests being read in one worker hold at most MEMORY_BUDGET in memory together.
MEMORY_PER_REQUEST = 1 << 20
MEMORY_BUDGET = 64 << 20
# Heads of DICOMweb requests are a few hundred bytes; gunicorn's own limit is near 800 KB.
MAX_HEAD = 64 << 10
_RECV = 256 << 10
# OpenSSL's reasons for a handshake refused because a required client certificate was not sent.
_NO_CERTIFICATE = frozenset({"PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_REQUIRED"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# gunicorn's bounds for a graceful close (RFC 9112 9.6): what the client still sends after the last
# answer is read and dropped for at most this long and this much, then the connection closes.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 64 << 10


class ClientSocket:
    """A client's socket whose first bytes are the request the event loop held back.

    gunicorn's parser reads it like the socket itself: ``recv`` returns the held head and body
    (bytes in memory, then the spool file) before reading the socket again. Blocking mode, which
    the application thread sets, has a timeout, so a client that takes nothing of its answer
    frees the thread. ``close`` also releases the client address's connection count.
    """

    def __init__(self, sock: socket.socket, io_timeout: float, on_close: Any) -> None:
        self.sock = sock
        self.io_timeout = io_timeout
        self.held: deque[bytes | BinaryIO] = deque()
        self._on_close = on_close
        self._closed = False
        # Over TLS: the verified client certificate's subject, once the handshake is done.
        self.peer_subject: str | None = None
        # While set, reads past the held bytes meet the end of the stream instead of the client.
        self.held_only = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int, flags: int = 0) -> bytes:
        piece = self._piece(size)
        if piece is not None:
            return piece
        return b"" if self.held_only else self.sock.recv(size, flags)

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes as one piece: the held ones joined (the one copy a body read
        costs), or, once none are held, one read of the socket."""
        pieces: list[bytes] = []
        wanted = size
        while wanted and (piece := self._piece(wanted)) is not None:
            pieces.append(piece)
            wanted -= len(piece)
        if not pieces:
            return self.sock.recv(size)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _piece(self, wanted: int) -> bytes | None:
        """The next held bytes, at most ``wanted`` of them; None once nothing is held."""
        while self.held:
            first = self.held[0]
            if isinstance(first, bytes):
                if len(first) > wanted:
                    self.held[0] = first[wanted:]
                    return first[:wanted]
                self.held.popleft()
                return first
            data = first.read(wanted)
            if data:
                return data
            self.held.popleft()
            first.close()
        return None

    def skip(self, size: int) -> int:
        """Drops up to ``size`` held bytes without reading them out; how many were dropped."""
        dropped = 0
        while dropped < size and self.held:
            first = self.held[0]
            if isinstance(first, bytes):
                count = min(len(first), size - dropped)
                if count < len(first):
                    self.held[0] = first[count:]
                else:
                    self.held.popleft()
            else:
                here = first.tell()
                end = first.seek(0, io.SEEK_END)
                count = min(end - here, size - dropped)
                first.seek(here + count)
                if here + count == end:
                    self.held.popleft()
                    first.close()
            dropped += count
        return dropped

    def take_held(self) -> bytes:
        """What is still held once a request is served: the next requests of a pipeline, including
        bytes TLS already decrypted (they no longer make the socket readable to the poller)."""
        ahead = []
        while self.held:
            first = self.held.popleft()
            if isinstance(first, bytes):
                ahead.append(first)
            else:
                ahead.append(first.read())
                first.close()
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            ahead.append(self.sock.recv(self.sock.pending()))
        return b"".join(ahead)

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.sock.settimeout(self.io_timeout)
        else:
            self.sock.setblocking(False)

    def shutdown(self, how: int) -> None:
        """gunicorn ends a connection gracefully with a half close; over TLS a close_notify goes first
        (RFC 8446 6.1), so that a client reading an answer to its end knows it was not cut short."""
        if isinstance(self.sock, ssl.SSLSocket):
            self.sock.setblocking(False)
            with contextlib.suppress(OSError, ValueError):  # sent; the client's own close_notify is not awaited
                self.sock.unwrap()
        socket.socket.shutdown(self.sock, how)

    def close(self) -> None:
        while self.held:
            first = self.held.popleft()
            if not isinstance(first, bytes):
                first.close()
        self.sock.close()
        if not self._closed:
            self._closed = True
            self._on_close()


class HeldBody(io.RawIOBase):
    """``wsgi.input`` of a body of known length, read from what the event loop holds.

    gunicorn's own body reader copies every received piece into one buffer, then again into
    another, each grown piece by piece: 0.3 ms for a 0.5 MB STOW-RS instance, several times
    what parsing its head costs. Here a read joins the held pieces it spans, once. gunicorn's
    reader is told what was taken, so that after the answer it skips only what the
    application left unread and finds the next request where it begins.
    """

    def __init__(self, body: Body, sock: ClientSocket) -> None:
        super().__init__()
        self.body = body
        self.reader: LengthReader = body.reader
        self.sock = sock

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self.reader.length
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        data = self._buffered(wanted)
        if not data:
            try:
                data = self.sock.take(wanted)
            except OSError:
                self.body.failed = True  # where the next request starts is unknown: the connection closes
                raise
        self.reader.length = left - len(data)
        return data

    def drop_rest(self) -> bool:
        """Drops what the application left of the body where it is held, without reading it out;
        whether all of it was held (else where the next request starts is unknown)."""
        left = self.reader.length
        left -= len(self._buffered(left))
        left -= self.sock.skip(left)
        self.reader.length = left
        return not left

    def _buffered(self, wanted: int) -> bytes:
        """What gunicorn's parser read past the head, at most ``wanted`` of it. What is not wanted
        stays with it: a body left unread, or a pipelined request, is where gunicorn looks for it."""
        unreader = self.reader.unreader
        data = unreader.take_buffered()
        if len(data) > wanted:
            unreader.unread(data[wanted:])
            data = data[:wanted]
        return data

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _held_input(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """The application, given a body of known length straight from the held bytes."""
    body = environ.get("wsgi.input")
    sock = environ.get("gunicorn.socket")
    if isinstance(body, Body) and isinstance(body.reader, LengthReader) and isinstance(sock, ClientSocket):
        environ["wsgi.input"] = HeldBody(body, sock)
    return app(environ, start_response)


@dataclass
class Intake:
    """A request being read by the event loop."""

    conn: TConn
    framing: RequestFraming
    deadline: float
    head: bytes | None = None
    body_started: float = 0.0
    memory: list[bytes] = field(default_factory=list)
    memory_bytes: int = 0
    spool: BinaryIO | None = None
    handshaking: bool = False


@dataclass
class _Lingering:
    """A connection half-closed after its last answer, waiting for the client to close its side."""

    deadline: float
    left: int = _LINGER_BYTES


class _Conn(TConn):
    """gthread's connection, whose graceful close waits in the event loop, not on it.

    gunicorn half-closes a connection that ends after its answer and reads what the client still
    sends, for up to 2 s, before closing: closing with bytes unread sends a reset that can destroy
    the answer. It reads in the event loop's own thread, blocking it: five clients that asked for
    ``Connection: close`` and then neither sent nor closed held every other client up for 8 s.
    """

    def __init__(self, worker: BufferingWorker, sock: ClientSocket, client: Any, server: Any) -> None:
        super().__init__(worker.cfg, sock, client, server)
        self.worker = worker
        self.ready = False  # its request is held and goes to a thread
        self.held_whole = False  # ... and was followed to its end (RequestFraming.whole)

    def close(self, graceful: bool = False) -> None:
        if graceful and threading.current_thread() is self.worker.loop_thread:
            self.worker.linger(self.sock)
        else:  # an application thread may wait (gunicorn's own graceful close), the event loop may not
            super().close(graceful)


class BufferingWorker(ThreadWorker):
    """gthread whose event loop reads every request whole before an application thread serves it."""

    def init_process(self) -> None:
        settings: Settings = self.app.settings
        self.settings = settings
        self.spool_folder: Path = self.app.spool_folder
        self.trusted: tuple[Network, ...] = settings.trusted_proxy_networks
        self.intakes: dict[TConn, Intake] = {}
        self.memory_in_use = 0
        self.notified = 0.0
        self.per_address: Counter[str] = Counter()
        self.per_address_lock = threading.Lock()
        self.lingering: dict[ClientSocket, _Lingering] = {}
        self.loop_thread = threading.current_thread()
        if self.cfg.is_ssl:
            raise RuntimeError("xdsi's worker does TLS itself (tls_cert, tls_key); gunicorn's TLS settings stay off")
        self.tls: ssl.SSLContext | None = server_context(settings) if settings.tls_enabled else None
        super().init_process()

    def notify(self) -> None:
        """The arbiter's liveness check (gunicorn touches a file on every turn of the event loop, one
        system call per request on a busy worker): once a second is enough for a ``timeout`` of
        minutes."""
        now = time.monotonic()
        if now - self.notified >= 1.0:
            self.notified = now
            super().notify()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = partial(_held_input, self.wsgi)  # type: ignore[has-type]
        if self.tls is not None:
            self.wsgi = partial(_over_tls, self.wsgi)

    # -- connections in ------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = client[0] if isinstance(client, tuple) else ""
        with self.per_address_lock:
            crowded = (self.per_address[address] >= self.settings.max_client_connections
                       and not self._is_trusted(address))
            if not crowded:
                self.per_address[address] += 1
        if crowded:
            log.warning("refused a connection from %s: it already holds %d", address,
                        self.settings.max_client_connections)
            if self.tls is None:
                _answer_and_close(sock, 429, "this client holds too many connections to the server; retry later",
                                  retry_after=5)
            else:  # an answer would need a handshake first, which is what the limit spares the worker
                sock.close()
            return
        self.nr_conns += 1
        wrapped = ClientSocket(sock, float(self.settings.send_timeout), partial(self._released, address))
        conn = _Conn(self, wrapped, client, listener.getsockname())
        if self.tls is None:
            self._start_intake(conn, b"")
            return
        try:
            wrapped.sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError:  # the client is gone already
            conn.close()
            self.nr_conns -= 1
            return
        self._start_intake(conn, b"", handshake=True)

    def enqueue_req(self, conn: TConn) -> None:
        """Every path to a thread comes here: a request held whole goes on, any other starts an intake.

        gthread calls this for a new connection, a kept-alive one that became readable, and one
        whose parser read ahead into the next request (those bytes start the intake).
        """
        if conn.ready:
            conn.ready = False
            super().enqueue_req(conn)
            return
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self._start_intake(conn, ahead)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """Whether the connection serves another request once an answer that said it would is sent.

        gunicorn drains at most 64 KiB of a body the application left unread (a 415 or 401 answered
        before the body is looked at) and closes the connection beyond: the client's next request,
        sent on a connection the answer announced as kept alive, then meets a closed socket. Here a
        request whose answer keeps the connection was held whole before a thread served it
        (``handle_request``), so draining costs less than receiving did and never waits on the
        client: the rest of a body of known length is dropped where it is held, and a chunked one
        is read to its end through gunicorn's reader, which finds it, from the held bytes only. A
        framing fault met on the way closes the connection, as gunicorn would.
        """
        if not keepalive:
            return False
        body = conn.parser.mesg.body
        if isinstance(body.reader, LengthReader) and not HeldBody(body, conn.sock).drop_rest():
            return False
        conn.sock.held_only = True
        try:
            return bool(conn.parser.finish_body())
        except (NoMoreData, ParseException):
            return False
        finally:
            conn.sock.held_only = False

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """A request not held to its end (a body over ``max_request_bytes``, refused from its head,
        or one the client cut short) is answered with ``Connection: close``: the rest of its body
        is not read, so the connection cannot carry another request."""
        if not conn.held_whole:
            req.must_close = True
        return bool(super().handle_request(req, conn))

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """gthread reads a request again at once when its parser holds bytes past the last one; the
        bytes held past it here are given to the parser, so a pipelined request is not forgotten."""
        ahead = conn.sock.take_held()
        if ahead and conn.parser is not None:
            unreader = conn.parser.unreader
            unreader.unread(unreader.take_buffered() + ahead)
        super().finish_request(conn, fs)

    def _start_intake(self, conn: TConn, ahead: bytes, *, handshake: bool = False) -> None:
        conn.sock.setblocking(False)
        framing = RequestFraming(
            max_head=MAX_HEAD, max_chunk_line=self.cfg.limit_request_field_size or 8190,
            max_trailers=DEFAULT_MAX_TRAILER_SECTION, max_body=self.settings.max_request_bytes)
        # The handshake and the head share one deadline: a trickled handshake earns no extra time.
        intake = Intake(conn, framing, time.monotonic() + self.settings.header_timeout, handshaking=handshake)
        self.intakes[conn] = intake
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, intake))
        if handshake:
            self._shake(intake)
        elif ahead:
            self._take(intake, ahead)

    def _shake(self, intake: Intake) -> None:
        """One step of the TLS handshake, as far as the client's bytes allow without waiting."""
        conn = intake.conn
        tls_sock = conn.sock.sock
        try:
            tls_sock.do_handshake()
        except ssl.SSLWantReadError:
            self._await(intake, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._await(intake, selectors.EVENT_WRITE)
            return
        except OSError as exc:
            # A client of another CA, without a required certificate, offering TLS 1.1, or not speaking TLS.
            reason = getattr(exc, "reason", None) or str(exc)
            log.warning("TLS handshake with %s failed: %s", _address(conn), reason)
            if isinstance(exc, ssl.SSLCertVerificationError) or reason in _NO_CERTIFICATE:
                self.app.auditor.refused_node(_address(conn), f"TLS client certificate refused: {reason}")
            # What the client sent is dropped before the close, which would otherwise send a reset that
            # destroys the TLS alert telling it why (a TLS 1.3 client sends its request at once).
            self._drop(intake, linger=True)
            return
        intake.handshaking = False
        conn.sock.peer_subject = client_subject(tls_sock)
        self._await(intake, selectors.EVENT_READ)
        # The request may have come with the handshake's last flight, already read by TLS.
        self._readable(intake, None)

    def _await(self, intake: Intake, events: int) -> None:
        """Wait for the socket to be readable or writable (a handshake may need either)."""
        if self.poller.get_key(intake.conn.sock).events != events:
            self.poller.modify(intake.conn.sock, events, partial(self._readable, intake))

    def _readable(self, intake: Intake, _fileobj: object) -> None:
        if intake.handshaking:
            self._shake(intake)
            return
        data = _receive(intake.conn.sock.sock)
        if data is None:
            return
        if data:
            self._take(intake, data)
        elif intake.head is not None:
            # The client stopped sending inside the body: the application meets the end where it
            # is and answers it as a body cut short (the parts before it are kept).
            self._hand_over(intake, b"")
        else:
            self._drop(intake)

    def _take(self, intake: Intake, data: bytes) -> None:
        step = intake.framing.feed(data)
        if step.progress is Progress.HEAD_TOO_LARGE:
            self._refuse(intake, 431, f"the request head is longer than {MAX_HEAD} bytes")
            return
        if step.head is not None:
            intake.head = step.head
            intake.body_started = time.monotonic()
            if intake.framing.expects_continue and step.progress is Progress.MORE:
                _send_quietly(intake.conn.sock.sock, _CONTINUE)
        if step.body and not self._hold(intake, step.body):
            return
        if intake.head is not None:
            intake.deadline = (intake.body_started + self.settings.body_timeout
                               + intake.framing.body_bytes / self.settings.body_min_rate)
        if step.progress is Progress.READY:
            self._hand_over(intake, step.rest)

    def _hold(self, intake: Intake, body: bytes) -> bool:
        """Keeps body bytes in memory or the spool file; False (and the connection answered) if the
        spool cannot be written."""
        fits = (intake.memory_bytes + len(body) <= MEMORY_PER_REQUEST
                and self.memory_in_use + len(body) <= MEMORY_BUDGET)
        if intake.spool is None and fits:
            intake.memory.append(body)
            intake.memory_bytes += len(body)
            self.memory_in_use += len(body)
            return True
        try:
            if intake.spool is None:
                intake.spool = tempfile.TemporaryFile(dir=self.spool_folder)  # noqa: SIM115 - closed by ClientSocket
                intake.spool.write(b"".join(intake.memory))
                self._free_memory(intake)
            intake.spool.write(body)
        except OSError as exc:
            log.error("cannot spool a request body to %s: %s", self.spool_folder, exc.strerror)
            # The same answer as the store's when it is full (a sender retries a 503).
            self._refuse(intake, 503, "the server is out of space to receive the request body; retry later",
                         retry_after=1)
            return False
        return True

    def _hand_over(self, intake: Intake, rest: bytes) -> None:
        """The request is whole (or cut short): its bytes go first on the socket, and a thread serves it."""
        conn = intake.conn
        self._forget(intake)
        held = conn.sock.held
        held.append(intake.head)
        held.extend(intake.memory)
        if intake.spool is not None:
            intake.spool.seek(0)
            held.append(intake.spool)
        if rest:
            held.append(rest)
        self._free_memory(intake)
        conn.data_ready = True
        conn.ready = True
        conn.held_whole = intake.framing.whole
        self.enqueue_req(conn)

    # -- connections out -----------------------------------------------------------------------

    def linger(self, sock: ClientSocket) -> None:
        """Half-closes ``sock`` after its last answer; it closes once the client has closed its side,
        sent 64 KiB more or let 2 s pass, each noticed by the event loop."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self.lingering[sock] = _Lingering(time.monotonic() + _LINGER_SECONDS)
        self.poller.register(sock, selectors.EVENT_READ, partial(self._lingering_readable, sock))

    def _lingering_readable(self, sock: ClientSocket, _fileobj: object) -> None:
        lingering = self.lingering[sock]
        try:
            data = socket.socket.recv(sock.sock, _RECV)  # as sent: over TLS, no record is read any more
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        lingering.left -= len(data)
        if not data or lingering.left <= 0:
            self._end_linger(sock)

    def _end_linger(self, sock: ClientSocket) -> None:
        del self.lingering[sock]
        self.poller.unregister(sock)
        sock.close()

    def murder_pending(self) -> None:
        """Runs once per turn of the event loop: also ends the intakes past their deadline, and the
        lingering closes past theirs."""
        super().murder_pending()
        now = time.monotonic()
        for sock in [sock for sock, lingering in self.lingering.items() if lingering.deadline < now]:
            self._end_linger(sock)
        for intake in [i for i in self.intakes.values() if i.deadline < now]:
            if intake.handshaking:
                # No HTTP answer can reach a client that has not finished its handshake.
                log.warning("closed the connection of %s: the TLS handshake did not finish within %s s",
                            _address(intake.conn), self.settings.header_timeout)
                self._drop(intake)
                continue
            if intake.head is None:
                reason = f"the request head did not arrive within {self.settings.header_timeout} s"
            else:
                reason = (f"the request body arrived slower than {self.settings.body_min_rate} bytes/s "
                          f"after {self.settings.body_timeout} s")
            log.warning("closed the connection of %s: %s", _address(intake.conn), reason)
            self._refuse(intake, 408, reason)

    def _refuse(self, intake: Intake, status: int, reason: str, retry_after: int | None = None) -> None:
        """Answers ``status`` and ends the connection, lingering for the client's end (RFC 9112 9.6)."""
        _send_quietly(intake.conn.sock.sock, _answer(status, reason, retry_after))
        self._drop(intake, linger=True)

    def _drop(self, intake: Intake, *, linger: bool = False) -> None:
        self._forget(intake)
        self._free_memory(intake)
        if intake.spool is not None:
            intake.spool.close()
        self.nr_conns -= 1
        if linger:
            self.linger(intake.conn.sock)
        else:
            intake.conn.close()

    def _forget(self, intake: Intake) -> None:
        del self.intakes[intake.conn]
        self.poller.unregister(intake.conn.sock)

    def _free_memory(self, intake: Intake) -> None:
        self.memory_in_use -= intake.memory_bytes
        intake.memory, intake.memory_bytes = [], 0

    def _released(self, address: str) -> None:
        with self.per_address_lock:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip in network for network in self.trusted)


def _receive(sock: socket.socket) -> bytes | None:
    """The bytes the client sent that can be had without waiting; b"" at its end, None for none yet.

    A TLS record is decrypted whole, and what ``recv`` leaves of it no longer makes the socket
    readable to the poller: it is taken now too.
    """
    try:
        data = sock.recv(_RECV)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError:
        return b""
    if data and isinstance(sock, ssl.SSLSocket):
        more = [data]
        while sock.pending():
            more.append(sock.recv(sock.pending()))
        data = b"".join(more)
    return data


def _over_tls(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """The application, told the request came over TLS and by whom, when a certificate proved it.

    The subject goes under a key no request header can set (headers arrive as HTTP_*).
    """
    environ["wsgi.url_scheme"] = "https"
    environ["HTTPS"] = "on"
    subject = getattr(environ.get("gunicorn.socket"), "peer_subject", None)
    if subject:
        environ[CLIENT_SUBJECT] = subject
    return app(environ, start_response)


def _address(conn: TConn) -> str:
    return str(conn.client[0]) if isinstance(conn.client, tuple) else "a local client"


_REASONS = {408: "Request Timeout", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}


def _answer(status: int, text: str, retry_after: int | None = None) -> bytes:
    """A short plain-text answer that ends the connection."""
    body = text.encode() + b"\n"
    extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
    return (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode() + body


def _answer_and_close(sock: socket.socket, status: int, text: str, retry_after: int | None = None) -> None:
    """``_answer`` written without blocking, then the connection closed at once: a client over its
    connection quota is not given a lingering socket as well."""
    _send_quietly(sock, _answer(status, text, retry_after))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """One non-blocking send: a client whose buffers are full misses a courtesy, not the event loop."""
    try:
        sock.setblocking(False)
        sock.send(data)
    except OSError:
        pass
