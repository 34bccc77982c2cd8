"""A few worker processes that run one module-level function on the CPU-bound part of a job.

Ingest spends most of its time parsing headers and serializing metadata, all under the GIL;
worker processes let a batch use every core while the request thread keeps reading the body.

Why not ``concurrent.futures.ProcessPoolExecutor``: its workers share queues whose both ends
every worker holds, so when the owning process is killed (SIGKILL of a gunicorn worker or of
an import) they never see end-of-file and live on. Here each worker holds the far end of its
own pipe and nothing else: the owner's death closes the pipe and the worker exits.

Workers are fresh interpreters (``python -c``, the function named by module and name): a fork
of a threaded server could copy a lock another thread holds, and multiprocessing's ``spawn``
re-runs the owner's main script, which an importing script may not guard. Results come back
in the order each worker received its jobs, so a ticket is a worker and a sequence number; any
thread may read a worker's pipe, under that worker's lock, and files what it reads for the
tickets' owners.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, NoReturn

log = logging.getLogger(__name__)


class PoolBroken(Exception):
    """A worker died or its pipe broke; the caller does that job itself."""


@dataclass(frozen=True)
class Ticket:
    worker: int
    sequence: int


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    received: int = 0
    done: dict[int, tuple[bool, Any]] = field(default_factory=dict)

    @property
    def outstanding(self) -> int:
        return self.sent - self.received


class ProcessPool:
    """``size`` processes running ``function``; thread-safe; results read in any order.

    A worker that dies, hangs past ``answer_timeout`` or garbles its pipe breaks the whole pool:
    every worker is killed (so threads waiting on any of them wake with end-of-file, and no
    pipe is closed under a reader), and every open ticket raises PoolBroken.
    """

    def __init__(self, size: int, function: Callable[..., Any], answer_timeout: float = 300.0) -> None:
        self._dispatch = threading.Lock()
        self._breaking = threading.Lock()
        self._workers: list[_Worker] = []
        self.answer_timeout = answer_timeout
        self.broken = False
        self.answered = 0
        # The owner's import path, so that a worker runs the very code its owner runs.
        code = (f"import sys; sys.path[:] = {sys.path!r}; from {__name__} import serve; "
                f"serve({{fd}}, {function.__module__!r}, {function.__qualname__!r})")
        try:
            for _ in range(size):
                ours, theirs = socket.socketpair()
                with ours, theirs:
                    process = subprocess.Popen(
                        [sys.executable, "-c", code.format(fd=theirs.fileno())], pass_fds=(theirs.fileno(),)
                    )
                    self._workers.append(_Worker(process, Connection(ours.detach())))
        except BaseException:
            self.close()
            raise
        log.info("started %d worker processes for %s.%s (pids %s)", size, function.__module__, function.__qualname__,
                 ", ".join(map(str, self.pids)))

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    def submit(self, *args: Any) -> Ticket:
        """Queue ``function(*args)`` on the least busy worker."""
        with self._dispatch:
            if self.broken:
                raise PoolBroken("the pool lost a worker")
            self.collect_ready()
            index = min(range(len(self._workers)), key=lambda i: self._workers[i].outstanding)
            worker = self._workers[index]
            try:
                worker.connection.send_bytes(pickle.dumps(args))
            except (OSError, ValueError) as exc:
                self._break(f"cannot reach a worker: {exc}")
            worker.sent += 1
            return Ticket(index, worker.sent - 1)

    def collect_ready(self) -> None:
        """Take in the results already sent, so no worker blocks on a full pipe."""
        for worker in self._workers:
            if self.broken or not worker.lock.acquire(blocking=False):
                continue
            try:
                while worker.outstanding and worker.connection.poll():
                    self._receive(worker)
            except (PoolBroken, OSError, ValueError):
                pass  # a broken pool is reported to each ticket's owner by result()
            finally:
                worker.lock.release()

    def result(self, ticket: Ticket) -> Any:
        """The value ``function`` returned for the ticket's job, or the exception it raised.

        PoolBroken when the pool broke first, or the answer could not be read: the caller then
        does the job itself. Each ticket is answered once; asking again is a LookupError.
        """
        worker = self._workers[ticket.worker]
        with worker.lock:
            while ticket.sequence not in worker.done:
                if ticket.sequence < worker.received:
                    raise LookupError(f"ticket {ticket} was answered already")
                self._receive(worker)
            ok, value = worker.done.pop(ticket.sequence)
        if ok:
            return value
        raise value

    def forget(self, tickets: list[Ticket]) -> None:
        """Wait out jobs whose results are no longer wanted (their owner gave up midway)."""
        for ticket in tickets:
            with contextlib.suppress(Exception):  # the owner no longer cares how the job ended
                self.result(ticket)

    def _receive(self, worker: _Worker) -> None:
        """Read the worker's next answer (the caller holds its lock) and file it under its sequence."""
        if self.broken:
            raise PoolBroken("the pool lost a worker")
        try:
            if not worker.connection.poll(self.answer_timeout):
                self._break(f"a worker gave no answer in {self.answer_timeout:.0f} s")
            data = worker.connection.recv_bytes()
        except (EOFError, OSError, ValueError) as exc:
            self._break(f"a worker ended: {exc!r}")
        sequence = worker.received
        worker.received += 1
        try:
            worker.done[sequence] = pickle.loads(data)
            self.answered += 1
        except Exception as exc:  # noqa: BLE001 - e.g. an exception type whose constructor unpickling cannot call
            worker.done[sequence] = (False, PoolBroken(f"a worker's answer cannot be read: {exc!r}"))

    def _break(self, reason: str) -> NoReturn:
        with self._breaking:
            first, self.broken = not self.broken, True
        if first:
            log.warning("worker processes given up (%s): their jobs run in-process", reason)
            for worker in self._workers:
                with contextlib.suppress(OSError):
                    worker.process.kill()
            for worker in self._workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=5)
        raise PoolBroken(reason)

    def close(self) -> None:
        """Orderly end: each worker sees end-of-file and exits; then it is reaped."""
        for worker in self._workers:
            worker.connection.close()
        for worker in self._workers:
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def serve(fd: int, module: str, name: str) -> None:
    """A worker's loop: until its owner closes the pipe (or dies), run jobs and answer in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle
    function = getattr(importlib.import_module(module), name)
    connection = Connection(fd)
    with contextlib.suppress(EOFError, OSError):  # the owner is gone: nobody to answer
        while True:
            args = pickle.loads(connection.recv_bytes())
            try:
                answer: tuple[bool, Any] = (True, function(*args))
            except Exception as exc:  # noqa: BLE001 - the owner re-raises it; a worker survives any job
                answer = (False, exc)
            try:
                data = pickle.dumps(answer)
            except Exception as exc:  # noqa: BLE001 - an unpicklable value or exception, whatever pickle raises
                data = pickle.dumps((False, RuntimeError(f"{type(answer[1]).__name__} cannot be returned: {exc}")))
            connection.send_bytes(data)


_shared: dict[tuple[Callable[..., Any], int], ProcessPool] = {}
_shared_lock = threading.Lock()


def shared(size: int, function: Callable[..., Any]) -> ProcessPool:
    """This process's pool of ``size`` workers for ``function``: started on first use, again after a loss.

    OSError when workers cannot run here: they could not be started, or the last ones broke
    before answering a single job (e.g. ``sys.executable`` is an embedding server, not Python).
    """
    with _shared_lock:
        pool = _shared.get((function, size))
        if pool is not None and pool.broken and not pool.answered:
            raise OSError(f"worker processes for {function.__qualname__} broke before their first answer")
        if pool is None or pool.broken:  # a broken pool's workers are killed and reaped already
            pool = _shared[(function, size)] = ProcessPool(size, function)
        return pool


@atexit.register
def _close_shared() -> None:
    """Workers end with their owner anyway; closing first lets it reap them instead of leaving zombies."""
    for pool in _shared.values():
        pool.close()
    _shared.clear()


def _forget_inherited_pools() -> None:
    """A forked child must not talk to its parent's workers: drop its copies of their pipes."""
    global _shared_lock
    for pool in _shared.values():
        for worker in pool._workers:
            worker.connection.close()
    _shared.clear()
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_inherited_pools)
