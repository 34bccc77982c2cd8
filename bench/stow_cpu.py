"""Server CPU per STOW-RS request of one instance: the worker's utime + stime over N requests, / N.

Starts ``xdsi serve`` with one worker on a free loopback port and a fresh store, then sends what
the shared harness's ``stow_instance`` workload sends: one CT file of the corpus (512 x 512,
about 0.5 MB) in multipart/related, Accept application/dicom+json, under a fresh SOP Instance UID
of the same length each time, one client on one keep-alive connection. CPU time, unlike wall
time, hardly depends on what else the machine runs, so the figure holds on a shared host; the
rounds are repeated and their median is printed. With ``--profile N`` the real application
(``create_app``, Flask's test client) stores N instances the same way under cProfile instead, to
say where that time goes.

  .venv/bin/python bench/corpus.py --out bench/corpus-harness --studies 6 --series 1 --instances 4
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --requests 300 --rounds 3
  .venv/bin/python bench/stow_cpu.py --corpus bench/corpus-harness --profile 400
"""

from __future__ import annotations

import argparse
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

from bench.stow_metadata import cpu_seconds, serve, workers_of


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


def send(connection: http.client.HTTPConnection, body: bytes, content_type: str) -> None:
    connection.request("POST", "/dicom-web/studies", body=body,
                       headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise SystemExit(f"STOW-RS answered {response.status}: {answer[:300]!r}")


def measure(corpus: Path, requests: int, rounds: int, warmup: int, modality: str = "CT") -> dict[str, object]:
    blob, uid = ct_file(corpus, modality)
    made = bodies(blob, uid)
    with tempfile.TemporaryDirectory(prefix="xdsi-stow-cpu-") as scratch:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = serve(Path(scratch), port)
        try:
            [worker] = workers_of(server.pid)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(warmup):
                send(connection, *next(made))
            per_request = []
            for _ in range(rounds):
                prepared = [next(made) for _ in range(requests)]
                before = cpu_seconds(worker)
                for body, content_type in prepared:
                    send(connection, body, content_type)
                per_request.append((cpu_seconds(worker) - before) * 1000 / requests)
            connection.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    return {"file_bytes": len(blob), "requests_per_round": requests,
            "worker_cpu_ms_per_request": [round(value, 3) for value in per_request],
            "median_ms": round(statistics.median(per_request), 3),
            "min_ms": round(min(per_request), 3)}


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
    args = parser.parse_args()
    if args.profile:
        sys.stdout.write(profile(args.corpus, args.profile, args.top, args.modality))
        return
    result = measure(args.corpus, args.requests, args.rounds, args.warmup, args.modality)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
