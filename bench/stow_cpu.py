"""Server CPU per STOW-RS request of one instance: the worker's utime + stime over N requests, / N.

Starts ``xdsi serve`` with one worker on a free loopback port and a fresh store, then sends what
the shared harness's ``stow_instance`` workload sends: one CT file of the corpus (512 x 512,
about 0.5 MB) in multipart/related, Accept application/dicom+json, under a fresh SOP Instance UID
of the same length each time, one client on one keep-alive connection. CPU time depends less than
wall time on what else the machine runs, but on a shared host it still drifts by a third within
minutes. To compare two versions, ``--against OTHER_CHECKOUT`` starts a server of each and sends
them requests in turn, the order swapped every time, so that both meet the same moments of the
host; each round's difference is printed. ``--floor`` also sends each round's bodies once more as
text/plain, which the server refuses (415) before reading them: the CPU of that answer is what any
0.5 MB request costs in the server (receiving the body, HTTP, the application up to its refusal),
the floor under a stored instance; user and system time are given apart. With ``--profile N`` the real application
(``create_app``, Flask's test client) stores N instances the same way under cProfile instead, to
say where that time goes.

  .venv/bin/python bench/corpus.py --out bench/corpus-harness --studies 6 --series 1 --instances 4
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --requests 300 --rounds 3
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --rounds 8 --requests 150 --against ../xdsi-before
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --rounds 4 --requests 300 --floor
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --profile 400
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import pstats
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stow_metadata import cpu_times, serve, workers_of


def ct_file(corpus: Path, modality: str = "CT") -> tuple[bytes, bytes]:
    """A file of the corpus (CT: 0.5 MB, MR: 0.13 MB) and its SOP Instance UID, as the harness picks them."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    for study in manifest["studies"]:
        for series in study["series"]:
            if series.get("modality") != modality:
                continue
            for instance in series["instances"]:
                blob = (corpus / instance["path"]).read_bytes()
                uid = instance["sop_uid"].encode()
                if blob.count(uid) >= 1:
                    return blob, uid
    raise SystemExit(f"no {modality} instance in {corpus}")


def bodies(blob: bytes, uid: bytes) -> Iterator[tuple[bytes, str]]:
    """Multipart bodies of the file under fresh UIDs of the same length (2.25.<decimal>)."""
    digits = len(uid) - 5
    base = int(time.time() * 1000) % 10**9
    number = 0
    while True:
        number += 1
        new = ("2.25.9" + str(base * 10**6 + number).rjust(digits - 1, "1")[-(digits - 1):]).encode()
        boundary = uuid.uuid4().hex
        body = b"".join([b"--", boundary.encode(), b"\r\nContent-Type: application/dicom\r\n\r\n",
                         blob.replace(uid, new), b"\r\n--", boundary.encode(), b"--\r\n"])
        yield body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def send(connection: http.client.HTTPConnection, body: bytes, content_type: str, expected: int = 200) -> None:
    connection.request("POST", "/dicom-web/studies", body=body,
                       headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != expected:
        raise SystemExit(f"STOW-RS answered {response.status}: {answer[:300]!r}")


def floor(worker: int, connection: http.client.HTTPConnection, prepared: list[tuple[bytes, str]]) -> dict[str, float]:
    """The worker's user and system CPU per request, ms, for ``prepared`` sent as text/plain (415)."""
    user, system = cpu_times(worker)
    for body, _content_type in prepared:
        send(connection, body, "text/plain", expected=415)
    after = cpu_times(worker)
    return {"user": (after[0] - user) * 1000 / len(prepared), "system": (after[1] - system) * 1000 / len(prepared)}


def measure(corpus: Path, requests: int, rounds: int, warmup: int, modality: str = "CT",
            against: Path | None = None, with_floor: bool = False) -> dict[str, object]:
    blob, uid = ct_file(corpus, modality)
    made = bodies(blob, uid)
    trees = [None] if against is None else [None, against]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_server(tree)) for tree in trees]
        for _ in range(warmup):
            for _worker, connection in servers:
                send(connection, *next(made))
        per_request: list[list[float]] = [[] for _ in servers]
        split: list[dict[str, float]] = []
        floors: list[dict[str, float]] = []
        for _ in range(rounds):
            prepared = [[next(made) for _ in servers] for _ in range(requests)]
            # Each worker's CPU over the whole round: what it does after an answer counts too,
            # and the other server's requests cost it nothing.
            before = [cpu_times(worker) for worker, _connection in servers]
            for number, bodies_now in enumerate(prepared):
                order = range(len(servers)) if number % 2 == 0 else reversed(range(len(servers)))
                for k in order:
                    send(servers[k][1], *bodies_now[k])
            for k, (worker, _connection) in enumerate(servers):
                after = cpu_times(worker)
                per_request[k].append((sum(after) - sum(before[k])) * 1000 / requests)
                if k == 0:
                    split.append({"user": (after[0] - before[k][0]) * 1000 / requests,
                                  "system": (after[1] - before[k][1]) * 1000 / requests})
            if with_floor:
                floors.append(floor(*servers[0], [bodies_now[0] for bodies_now in prepared]))
    result = _figures(per_request[0]) | {"file_bytes": len(blob), "requests_per_round": requests,
                                         "user_system_ms_per_request": _rounded(split)}
    if with_floor:
        result["floor_415_user_system_ms_per_request"] = _rounded(floors)
        result["floor_415_median_ms"] = round(statistics.median(f["user"] + f["system"] for f in floors), 3)
    if against is not None:
        result["against"] = {"checkout": str(against)} | _figures(per_request[1])
        result["difference_ms_per_round"] = [round(a - b, 3) for a, b in zip(*per_request, strict=True)]
    return result


def _rounded(figures: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: round(value, 3) for key, value in figure.items()} for figure in figures]


def _figures(per_request: list[float]) -> dict[str, object]:
    return {"worker_cpu_ms_per_request": [round(value, 3) for value in per_request],
            "median_ms": round(statistics.median(per_request), 3),
            "min_ms": round(min(per_request), 3)}


@contextlib.contextmanager
def _server(tree: Path | None) -> Iterator[tuple[int, http.client.HTTPConnection]]:
    """A one-worker server of this checkout, or of ``tree``, on a fresh store: its worker and a connection."""
    with tempfile.TemporaryDirectory(prefix="xdsi-stow-cpu-") as scratch:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = serve(Path(scratch), port, tree=tree)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            [worker] = workers_of(server.pid)
            yield worker, connection
        finally:
            connection.close()
            server.send_signal(signal.SIGTERM)
            server.wait(30)


def profile(corpus: Path, requests: int, top: int, modality: str = "CT") -> str:
    """cProfile of the real application storing ``requests`` fresh instances one per request."""
    import os

    from xdsi.app import create_app
    from xdsi.config import Settings
    from xdsi.services.archive import Archive

    blob, uid = ct_file(corpus, modality)
    made = bodies(blob, uid)
    with tempfile.TemporaryDirectory(prefix="xdsi-stow-profile-") as scratch:
        os.environ.update({"XDSI_DATABASE_URL": f"sqlite:///{scratch}/x.db", "XDSI_STORAGE": f"{scratch}/store"})
        archive = Archive.open(Settings.load())
        archive.prepare()
        app = create_app(archive.settings, archive)
        client = app.test_client()

        def post() -> None:
            body, content_type = next(made)
            answer = client.post("/dicom-web/studies", data=body,
                                 headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
            if answer.status_code != 200:
                raise SystemExit(f"STOW-RS answered {answer.status_code}: {answer.data[:300]!r}")

        for _ in range(20):
            post()
        # CPU time of this thread, not wall time: a write or fsync waiting on a busy disk is not counted.
        profiler = cProfile.Profile(time.thread_time)
        started = time.process_time()
        profiler.enable()
        for _ in range(requests):
            post()
        profiler.disable()
        cpu = time.process_time() - started
    text = io.StringIO()
    text.write(f"process CPU {cpu * 1000 / requests:.3f} ms per request (with the profiler's overhead)\n")
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    text.write("\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus of bench/corpus.py (manifest.json)")
    parser.add_argument("--requests", type=int, default=400, help="requests per round (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the median printed (default 3)")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests first (default 30)")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N requests in-process instead")
    parser.add_argument("--top", type=int, default=45, help="profile lines per listing (default 45)")
    parser.add_argument("--modality", default="CT", help="the corpus file sent: CT (default) or MR, a smaller one")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="another checkout of xdsi, measured in turn with this one")
    parser.add_argument("--floor", action="store_true",
                        help="also the CPU of the same requests refused unread (415): the floor under a stored one")
    args = parser.parse_args()
    if args.floor and args.against:
        parser.error("--floor measures one checkout; leave out --against")
    if args.profile:
        sys.stdout.write(profile(args.corpus, args.profile, args.top, args.modality))
        return
    result = measure(args.corpus, args.requests, args.rounds, args.warmup, args.modality, args.against, args.floor)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
