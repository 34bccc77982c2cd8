"""Slow-client benchmark: normal QIDO-RS and WADO-RS latency while many connections trickle.

Against a server on this machine (loopback only), in three steps:
  idle     --requests QIDO-RS searches (by PatientID) and WADO-RS retrieves of one instance, one
           after another on a kept-alive connection: median and p95 of each
  open     --slow connections, from --addresses loopback source addresses (127.0.1.1, 127.0.1.2,
           ...) so a per-address connection limit does not refuse them: half send a request head
           one header line every --interval seconds, half send a STOW-RS head announcing a body of
           1 MB and then one byte of it every --interval seconds; and --lingering connections that
           send a whole request with Connection: close, read the answer, then neither send nor close
           (each is replaced by a new one every --interval seconds, so that as many linger all along)
  loaded   the same requests as idle while those connections trickle; each has --timeout seconds
A last step opens --burst connections from one address (127.0.2.1) and counts those the server
accepts and keeps open: what one client may hold.

The result says whether the loaded medians stay within 2x of the idle ones, how many slow
connections the server cut (and after how long), the server's CPU time (--server-pid) and the CPU
used by other processes on the machine meanwhile (`other`), since a shared machine skews every
figure. The whole run is bounded by --max-seconds. Exit status 2 when an answer is wrong (not a
timeout: a wrong status or body).

  .venv/bin/python bench/slowclients.py --base-url http://127.0.0.1:8091/dicom-web --server-pid PID \\
      --out bench/results/slowclients-DATE.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import selectors
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dicomweb import loopback
from bench.timing import Call, Connection, server_cpu, summary

AS_STORED = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


@dataclass
class Trickler:
    """One slow connection: what it still has to send, and what became of it."""

    sock: socket.socket
    kind: str
    opened: float
    lines: list[bytes]
    address: str = ""
    closed_after: float | None = None
    answer: bytes = b""
    replaced: bool = False


@dataclass
class SlowCrowd:
    """Slow connections sending one line or byte each every INTERVAL seconds, on one thread."""

    port: int
    interval: float
    members: list[Trickler] = field(default_factory=list)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    target: str = ""

    def open(self, count: int, addresses: list[str], target: str, lingering: int = 0) -> None:
        self.target = target
        kinds = ["headers" if number % 2 == 0 else "body" for number in range(count)] + ["lingering"] * lingering
        for number, kind in enumerate(kinds):
            member = self._connect(kind, addresses[number % len(addresses)])
            if member is None:
                self.refused += 1
            else:
                self.members.append(member)

    def _connect(self, kind: str, address: str) -> Trickler | None:
        sock = socket.socket()
        try:
            sock.bind((address, 0))
            sock.connect(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        if kind == "headers":
            lines = [f"GET {self.target}/studies HTTP/1.1\r\n".encode()] + [
                f"X-Slow-{n}: {n}\r\n".encode() for n in range(10_000)]
        elif kind == "body":
            head = (f"POST {self.target}/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/dicom\r\nContent-Length: 1000000\r\n\r\n").encode()
            lines = [head] + [b"\0"] * 1_000_000
        else:
            lines = [f"GET {self.target}/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()]
        return Trickler(sock, kind, time.monotonic(), lines[::-1], address)

    def run(self) -> None:
        """Each INTERVAL, every open member sends its next line; a member the server closed is noted."""
        selector = selectors.DefaultSelector()
        for member in self.members:
            selector.register(member.sock, selectors.EVENT_READ, member)
        next_send = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                self._replace_lingering(selector)
                for member in self.open_members():
                    if not member.lines:
                        continue
                    try:
                        member.sock.send(member.lines.pop())
                    except OSError:
                        self._closed(selector, member)
                next_send = now + self.interval
            for key, _ in selector.select(timeout=min(0.2, max(0.0, next_send - time.monotonic()))):
                member = key.data
                try:
                    data = member.sock.recv(4096)
                except OSError:
                    data = b""
                member.answer += data
                if not data:
                    self._closed(selector, member)
        selector.close()

    def _closed(self, selector: selectors.BaseSelector, member: Trickler) -> None:
        if member.closed_after is None:
            member.closed_after = time.monotonic() - member.opened
            selector.unregister(member.sock)

    def _replace_lingering(self, selector: selectors.BaseSelector) -> None:
        """A lingering connection the server has answered (and half-closed) is closed by now and a new
        one takes its place."""
        for member in [m for m in self.members if m.kind == "lingering" and m.closed_after is not None]:
            if member.replaced:
                continue
            member.replaced = True
            member.sock.close()
            again = self._connect("lingering", member.address)
            if again is not None:
                self.members.append(again)
                selector.register(again.sock, selectors.EVENT_READ, again)

    def open_members(self) -> list[Trickler]:
        return [m for m in self.members if m.closed_after is None]

    def report(self) -> dict[str, Any]:
        slow = [m for m in self.members if m.kind != "lingering"]
        cut = [m for m in slow if m.closed_after is not None]
        statuses = sorted({m.answer.split(b"\r\n", 1)[0].decode("latin-1") for m in cut if m.answer})
        return {"opened": len(slow), "refused_at_connect": self.refused,
                "still_open": len([m for m in slow if m.closed_after is None]), "cut_by_server": len(cut),
                "cut_after_s_median": round(statistics.median(m.closed_after or 0.0 for m in cut), 1) if cut else None,
                "answers_when_cut": statuses,
                "lingering_opened": len(self.members) - len(slow)}

    def close(self) -> None:
        self.stop.set()
        for member in self.members:
            member.sock.close()


def store_sample(origin: SplitResult) -> tuple[str, str, str, str]:
    """Stores pydicom's CT_small (an identical copy again is a success); its UIDs and Patient ID."""
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    connection = Connection(origin)
    reply = connection.send(Call("POST", origin.path + "/studies", {"Content-Type": "application/dicom"},
                                 Path(path).read_bytes()))
    connection.http.close()
    if reply.status != 200:
        raise SystemExit(f"storing the sample answered HTTP {reply.status}: {reply.body[:300]!r}")
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.PatientID


def normal_calls(origin: SplitResult, uids: tuple[str, str, str, str]) -> dict[str, Call]:
    study, series, instance, patient = uids
    root = origin.path

    def one_study(reply: Any) -> str | None:
        found = [s["0020000D"]["Value"][0] for s in json.loads(reply.body)]
        return None if found == [study] else f"studies {found}"

    def the_instance(reply: Any) -> str | None:
        return None if instance.encode() in reply.body else "the instance's UID is not in the answer"

    return {
        "qido": Call("GET", f"{root}/studies?PatientID={patient}", {"Accept": "application/dicom+json"},
                     check=one_study),
        "wado": Call("GET", f"{root}/studies/{study}/series/{series}/instances/{instance}", AS_STORED,
                     check=the_instance),
    }


def measure(origin: SplitResult, calls: dict[str, Call], count: int, timeout: float, until: float,
            pids: list[int]) -> tuple[dict[str, Any], list[str]]:
    """COUNT rounds of every call, one after another; a request not answered in TIMEOUT counts as
    TIMEOUT seconds and a timeout."""
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    timeouts = dict.fromkeys(calls, 0)
    problems: list[str] = []
    connection = Connection(origin)
    connection.http.timeout = timeout
    cpu_before, began = server_cpu(pids), time.perf_counter()
    for _ in range(count):
        if time.monotonic() > until:
            break
        for name, call in calls.items():
            started = time.perf_counter()
            try:
                reply = connection.send(call)
            except (TimeoutError, OSError):
                connection.http.close()
                timeouts[name] += 1
                latencies[name].append(max(timeout, time.perf_counter() - started))
                continue
            if problem := call.problem(reply):
                problems.append(f"{name}: {problem}")
            latencies[name].append(reply.seconds)
    span, cpu_after = time.perf_counter() - began, server_cpu(pids)
    connection.http.close()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    figures = {name: {**summary(seconds, span, None), "timeouts": timeouts[name]}
               for name, seconds in latencies.items()}
    if cpu is not None:
        figures["server_cpu_s"] = round(cpu, 3)
    return figures, problems


def burst(port: int, count: int, settle: float) -> dict[str, Any]:
    """COUNT connections from one address, each sending half a request head: how many stay open."""
    socks, refused = [], 0
    for _ in range(count):
        sock = socket.socket()
        try:
            sock.bind(("127.0.2.1", 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        except OSError:
            refused += 1
            sock.close()
            continue
        socks.append(sock)
    time.sleep(settle)
    still_open = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            sock.recv(1)  # an answer or the end: the server refused or cut it
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
        sock.close()
    return {"attempted": count, "refused_at_connect": refused, "open_after_s": settle, "still_open": still_open}


class CpuMeter:
    """CPU seconds of the whole machine (from /proc/stat) minus this process's and the server's."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        own = sum(os.times()[:2])
        return busy, own, server_cpu(self.pids) or 0.0

    def other(self) -> dict[str, float]:
        busy, own, server = (end - start for end, start in zip(self._sample(), self.start, strict=True))
        return {"machine_busy_s": round(busy, 2), "bench_s": round(own, 2), "server_s": round(server, 2),
                "other_s": round(busy - own - server, 2)}


def run(args: argparse.Namespace) -> int:
    origin = urlsplit(args.base_url)
    port = origin.port or 80
    until = time.monotonic() + args.max_seconds
    started, load = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), os.getloadavg()
    meter = CpuMeter(args.server_pid)
    calls = normal_calls(origin, store_sample(origin))
    measure(origin, calls, 3, args.timeout, until, [])  # warm-up: connections, caches
    print("== idle", flush=True)
    idle, problems = measure(origin, calls, args.requests, args.timeout, until, args.server_pid)
    print(f"   {idle}", flush=True)
    crowd = SlowCrowd(port, args.interval)
    addresses = [f"127.0.1.{n}" for n in range(1, args.addresses + 1)]
    crowd.open(args.slow, addresses, origin.path, args.lingering)
    trickle = threading.Thread(target=crowd.run, daemon=True)
    trickle.start()
    time.sleep(args.settle)
    print(f"== loaded ({len(crowd.open_members())} slow connections open)", flush=True)
    loaded, more = measure(origin, calls, args.requests, args.timeout, until, args.server_pid)
    print(f"   {loaded}", flush=True)
    problems += more
    remaining = until - time.monotonic()
    if args.hold > 0 and remaining > 0:
        time.sleep(min(args.hold, remaining))
    crowd.close()
    trickle.join()
    slow = crowd.report()
    one_address = burst(port, args.burst, args.settle) if args.burst else None
    ratios = {name: round(loaded[name]["median_ms"] / idle[name]["median_ms"], 2)
              for name in calls if idle[name].get("n") and loaded[name].get("n")}
    result = {
        "label": args.label, "base_url": args.base_url, "started": started,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_start": load,
                    "loadavg_end": os.getloadavg(), "cpu": meter.other()},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "idle": idle, "loaded": loaded, "slow_connections": slow, "one_address": one_address,
        "median_ratio_loaded_to_idle": ratios,
        "target_met": bool(ratios) and all(r <= 2.0 for r in ratios.values())
        and all(loaded[name]["timeouts"] == 0 for name in calls),
        "wrong_answers": problems[:20],
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median_ratio_loaded_to_idle", "target_met", "slow_connections",
                                             "one_address")}, indent=1))
    print(f"machine CPU during the run: {result['machine']['cpu']}")
    for problem in problems[:20]:
        print(f"!! {problem}")
    return 2 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:8091/dicom-web")
    parser.add_argument("--server-pid", type=int, action="append", default=[], help="server process (repeatable)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--label", default="server", help="name of this run")
    for flag, kind, default, text in (
        ("--slow", int, 200, "slow connections (half trickle headers, half a body)"),
        ("--lingering", int, 0, "connections that ask for Connection: close, then neither send nor close"),
        ("--addresses", int, 20, "loopback source addresses the slow connections come from"),
        ("--interval", float, 5.0, "seconds between two lines (or bytes) of a slow connection"),
        ("--requests", int, 30, "rounds of normal requests (one QIDO-RS, one WADO-RS each)"),
        ("--timeout", float, 10.0, "seconds a normal request may take before it counts as a timeout"),
        ("--settle", float, 3.0, "seconds between opening the slow connections and measuring"),
        ("--hold", float, 0.0, "seconds to keep the slow connections open after measuring (to see cuts)"),
        ("--burst", int, 0, "connections opened from one address at the end (0: none)"),
        ("--max-seconds", float, 300.0, "the run ends after this many seconds at most"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    args = parser.parse_args()
    if not loopback(args.base_url):
        parser.error(f"{args.base_url} is not on a loopback address")
    if args.slow + args.lingering > 1000 or args.burst > 1000:
        parser.error("--slow with --lingering, and --burst, are bounded at 1000 connections")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
