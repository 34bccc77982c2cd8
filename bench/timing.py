"""Timed HTTP requests on kept-alive connections, latency summaries, and a server's CPU time."""

from __future__ import annotations

import http.client
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    seconds: float


@dataclass
class Call:
    """One request and the check of its answer (None when right, else what is wrong)."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    check: Callable[[Reply], str | None] = lambda reply: None

    def problem(self, reply: Reply) -> str | None:
        try:
            return f"HTTP {reply.status}" if reply.status >= 300 else self.check(reply)
        except Exception as error:  # noqa: BLE001 - an answer the check cannot read, whatever fails, is a wrong answer
            return f"unreadable answer ({type(error).__name__}: {error})"


class Connection:
    """One HTTP/1.1 connection kept alive across requests, as real clients keep it."""

    def __init__(self, origin: SplitResult) -> None:
        kind = http.client.HTTPSConnection if origin.scheme == "https" else http.client.HTTPConnection
        self.http = kind(origin.hostname or "", origin.port, timeout=120)

    def send(self, call: Call) -> Reply:
        """Times CALL from its first byte sent to its last byte read. A kept-alive socket that the
        server closed while idle is reopened once."""
        reused = self.http.sock is not None
        started = time.perf_counter()
        try:
            self.http.request(call.method, call.target, body=call.body, headers=call.headers)
            response = self.http.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.http.close()
            if not reused:
                raise
            return self.send(call)
        body = response.read()
        seconds = time.perf_counter() - started
        if response.will_close:
            self.http.close()
        return Reply(response.status, response.getheader("Content-Type", ""), body, seconds)


def server_cpu(pids: list[int]) -> float | None:
    """CPU seconds (user and system, reaped children included) of PIDS and all their descendants."""
    if not pids:
        return None
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # proc(5): fields after "(comm)"
        except OSError:
            continue
        table[int(pid)] = int(fields[1]), sum(map(int, fields[11:15])) / os.sysconf("SC_CLK_TCK")
    tree = set(pids)
    while grown := {pid for pid, (parent, _) in table.items() if parent in tree} - tree:
        tree |= grown
    return sum(table[pid][1] for pid in tree if pid in table)


def summary(seconds: list[float], span: float, cpu: float | None) -> dict[str, Any]:
    """Median and nearest-rank p95 latency, requests/s over SPAN seconds, server CPU time per request."""
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    figures = {"n": len(ordered), "median_ms": round(statistics.median(ordered) * 1e3, 3),
               "p95_ms": round(ordered[math.ceil(0.95 * len(ordered)) - 1] * 1e3, 3),
               "req_per_s": round(len(ordered) / span, 1), "seconds": round(span, 3)}
    if cpu is not None:
        figures["server_cpu_ms_per_req"] = round(cpu / len(ordered) * 1e3, 3)
    return figures


def closed_loop(origin: SplitResult, make: Callable[[int], Call], clients: int, seconds: float,
                max_requests: int, pids: list[int]) -> tuple[dict[str, Any], list[str]]:
    """CLIENTS threads, each on its own connection (opened before the clock starts), send requests
    back to back for SECONDS or MAX_REQUESTS in all; returns the summary and the problems seen."""
    lock, issued, latencies, problems = threading.Lock(), [0], [], []
    connections = [Connection(origin) for _ in range(clients)]
    for number, connection in enumerate(connections):
        connection.send(make(-1 - number))
    start = threading.Barrier(clients + 1)
    stop_at = [math.inf]

    def client(connection: Connection) -> None:
        start.wait()
        while True:
            with lock:
                issued[0] += 1
                k = issued[0]
            if k > max_requests or time.perf_counter() >= stop_at[0]:
                return
            call = make(k)
            try:
                reply = connection.send(call)
                problem = call.problem(reply)
            except OSError as error:
                problem = f"{type(error).__name__}: {error}"
            with lock:
                if problem:
                    problems.append(problem)
                else:
                    latencies.append(reply.seconds)

    threads = [threading.Thread(target=client, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    cpu_before = server_cpu(pids)
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu_after = server_cpu(pids)
    for connection in connections:
        connection.http.close()
    used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"clients": clients, **summary(latencies, wall, used), "errors": len(problems)}, problems
