"""RAD-69 (WADO-WS, MTOM) beside WADO-RS on the same study, in one run: whole-study throughput,
peak server memory, and one-document latency.

It writes a synthetic study (``--instances`` CT instances of ``--frames`` 512x512 16-bit frames:
256 x 8 frames is about 1 GB), imports it with ``xdsi import``, starts ``xdsi serve`` on a free
loopback port, then alternates the two protocols trial by trial so both see the same load:

- whole study: one RAD-69 request naming every instance (stored syntax listed, so documents go
  out as stored) against ``GET /dicom-web/studies/{study}`` with ``transfer-syntax=*``; MB/s of
  the whole answer, read in 1 MiB pieces and checked for the expected size;
- peak RSS: the server's processes (master and workers) sampled every 20 ms; growth is the peak
  during the study answers over the largest worker's RSS just before them;
- one document: RAD-69 for one instance against WADO-RS of one instance (single part), on kept
  connections, median of ``--trials``.

Each figure notes ``other``: CPU used by neither this client nor the server during the test (from
/proc/stat), as the machine may be shared. JSON goes to ``--out``.

  .venv/bin/python bench/rad69.py --out bench/results/rad69-DATE.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.timing import server_cpu

REPOSITORY = "1.3.6.1.4.1.21367.13.80.110"
PIECE = 1 << 20


def write_study(folder: Path, instances: int, frames: int) -> tuple[str, list[tuple[str, str]], int]:
    """The study's UID, (series, instance) UIDs and total bytes of the files written."""
    study, series = generate_uid(), generate_uid()
    pixels = np.random.default_rng(69).integers(0, 4096, (frames, 512, 512), dtype=np.uint16).tobytes()
    found, total = [], 0
    for number in range(1, instances + 1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.Modality = "BENCH-69", "Bench^Rad69", "CT"
        ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20261203", 1, number
        ds.Rows = ds.Columns = 512
        ds.NumberOfFrames = frames
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels
        path = folder / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        found.append((series, ds.SOPInstanceUID))
        total += path.stat().st_size
    return study, found, total


def rad69_request(study: str, documents: list[tuple[str, str]]) -> bytes:
    by_series: dict[str, list[str]] = {}
    for series, uid in documents:
        by_series.setdefault(series, []).append(uid)
    series_xml = "".join(
        f'<r:SeriesRequest seriesInstanceUID="{series}">' + "".join(
            f"<i:DocumentRequest><i:RepositoryUniqueId>{REPOSITORY}</i:RepositoryUniqueId>"
            f"<i:DocumentUniqueId>{uid}</i:DocumentUniqueId></i:DocumentRequest>" for uid in uids)
        + "</r:SeriesRequest>" for series, uids in by_series.items())
    return (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
            f'<a:Action s:mustUnderstand="1">urn:ihe:rad:2009:RetrieveImagingDocumentSet</a:Action>'
            f"<a:MessageID>urn:uuid:00000000-0000-0000-0000-000000000069</a:MessageID></s:Header><s:Body>"
            f'<r:RetrieveImagingDocumentSetRequest xmlns:r="urn:ihe:rad:xdsi-b:2009" xmlns:i="urn:ihe:iti:xds-b:2007">'
            f'<r:StudyRequest studyInstanceUID="{study}">{series_xml}</r:StudyRequest>'
            f"<r:TransferSyntaxUIDList><r:TransferSyntaxUID>{ExplicitVRLittleEndian}</r:TransferSyntaxUID>"
            f"</r:TransferSyntaxUIDList></r:RetrieveImagingDocumentSetRequest></s:Body></s:Envelope>").encode()


class Timed:
    """One kept-alive connection; each call returns (seconds, bytes read, status), reading in pieces."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method: str, target: str, headers: dict[str, str], body: bytes | None = None
             ) -> tuple[float, int, int]:
        started = time.perf_counter()
        self.http.request(method, target, body=body, headers=headers)
        response = self.http.getresponse()
        size = 0
        while piece := response.read(PIECE):
            size += len(piece)
        return time.perf_counter() - started, size, response.status


def tree_pids(root: int) -> list[int]:
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                table[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    tree = {root}
    while grown := {pid for pid, parent in table.items() if parent in tree} - tree:
        tree |= grown
    return sorted(tree)


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


class RssSampler(threading.Thread):
    """The RSS of each server process while running; ``growth`` is the largest rise of any one
    of them over its own RSS at the start (the worker that answers is the one that grows)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.before = {pid: rss_kib(pid) for pid in pids}
        self.peak = dict(self.before)
        self.running = True

    def run(self) -> None:
        while self.running:
            for pid in self.before:
                self.peak[pid] = max(self.peak[pid], rss_kib(pid))
            time.sleep(0.02)

    def stop(self) -> tuple[int, int, int]:
        """(growth, the growing process's RSS before, its peak), in KiB."""
        self.running = False
        self.join()
        pid = max(self.before, key=lambda p: self.peak[p] - self.before[p])
        return self.peak[pid] - self.before[pid], self.before[pid], self.peak[pid]


def busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def measured(pids: list[int], action: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """ACTION's result, and the CPU seconds of the server, this client and everything else."""
    tick = os.sysconf("SC_CLK_TCK")
    server_before, client_before, busy_before = server_cpu(pids) or 0.0, os.times(), busy_jiffies()
    started = time.perf_counter()
    result = action()
    wall = time.perf_counter() - started
    server = (server_cpu(pids) or 0.0) - server_before
    client_after = os.times()
    client = client_after.user + client_after.system - client_before.user - client_before.system
    busy = (busy_jiffies() - busy_before) / tick
    return result, {"wall_s": round(wall, 3), "server_cpu_s": round(server, 3), "client_cpu_s": round(client, 3),
                    "other_cpu_s": round(max(0.0, busy - server - client), 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8, help="512x512 16-bit frames per instance (512 KiB each)")
    parser.add_argument("--study-trials", type=int, default=3)
    parser.add_argument("--trials", type=int, default=50, help="one-document requests per protocol")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rad69-bench-"))
    (work / "files").mkdir()
    study, documents, total = write_study(work / "files", args.instances, args.frames)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("XDSI_")},
           "XDSI_DATABASE_URL": f"sqlite:///{work / 'xdsi.db'}", "XDSI_STORAGE": str(work / "store"),
           "XDSI_REPOSITORY_UNIQUE_ID": REPOSITORY, "XDSI_MAX_SOAP_REQUEST_BYTES": str(64 << 20)}
    xdsi = [sys.executable, "-m", "xdsi"]
    subprocess.run([*xdsi, "import", str(work / "files")], env=env, check=True, stdout=subprocess.DEVNULL)
    for path in (work / "files").iterdir():
        path.unlink()
    port = free_port()
    server = subprocess.Popen([*xdsi, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                               "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if Timed(port).call("GET", "/healthz", {})[2] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        result = run(args, port, server.pid, study, documents, total)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    result["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                         "note": "shared machine: other engineers' jobs ran beside this one"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


def run(args: argparse.Namespace, port: int, server_pid: int, study: str, documents: list[tuple[str, str]],
        total: int) -> dict[str, Any]:
    pids = tree_pids(server_pid)
    request = rad69_request(study, documents)
    soap = {"Content-Type": "application/soap+xml; charset=utf-8"}
    wado = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    study_calls: dict[str, tuple[str, str, dict[str, str], bytes | None]] = {
        "rad69": ("POST", "/wado-ws", soap, request),
        "wado_rs": ("GET", f"/dicom-web/studies/{study}", wado, None),
    }
    connection = Timed(port)
    for method, target, headers, body in study_calls.values():  # warm: caches, connections, imports
        connection.call(method, target, headers, body)
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in study_calls}
    for trial in range(args.study_trials):
        # Alternate which protocol goes first, so neither always follows the other's cache effects.
        order = list(study_calls.items()) if trial % 2 == 0 else list(reversed(study_calls.items()))
        for name, (method, target, headers, body) in order:
            sampler = RssSampler(pids)
            sampler.start()
            (seconds, size, status), cpu = measured(pids, lambda m=method, t=target, h=headers, b=body:
                                                   connection.call(m, t, h, b))
            growth, before, peak = sampler.stop()
            assert status == 200 and size > total, (name, status, size, total)
            figures[name].append({"seconds": round(seconds, 3), "bytes": size,
                                  "mb_per_s": round(size / seconds / 1e6, 1),
                                  "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
                                  "rss_growth_mib": round(growth / 1024, 1), **cpu})
    series, one = documents[len(documents) // 2]
    one_calls = {
        "rad69": ("POST", "/wado-ws", soap, rad69_request(study, [(series, one)])),
        "wado_rs": ("GET", f"/dicom-web/studies/{study}/series/{series}/instances/{one}",
                    {"Accept": "application/dicom; transfer-syntax=*"}, None),
    }
    latencies: dict[str, list[float]] = {name: [] for name in one_calls}
    for method, target, headers, body in one_calls.values():
        connection.call(method, target, headers, body)
    (_, one_cpu) = measured(pids, lambda: [
        latencies[name].append(connection.call(method, target, headers, body)[0])
        for _ in range(args.trials) for name, (method, target, headers, body) in one_calls.items()])
    medians = {name: statistics.median(values) * 1e3 for name, values in latencies.items()}
    throughput = {name: statistics.median(f["mb_per_s"] for f in runs) for name, runs in figures.items()}
    summary = {
        "study_bytes": total, "instances": len(documents),
        "rad69_mb_per_s": throughput["rad69"], "wado_rs_mb_per_s": throughput["wado_rs"],
        "throughput_ratio": round(throughput["rad69"] / throughput["wado_rs"], 3),
        # Server CPU per answer: what the protocol itself costs, less disturbed by a shared machine
        # than wall-clock throughput.
        "rad69_server_cpu_s_median": statistics.median(f["server_cpu_s"] for f in figures["rad69"]),
        "wado_rs_server_cpu_s_median": statistics.median(f["server_cpu_s"] for f in figures["wado_rs"]),
        "rad69_rss_growth_mib_max": max(f["rss_growth_mib"] for f in figures["rad69"]),
        "wado_rs_rss_growth_mib_max": max(f["rss_growth_mib"] for f in figures["wado_rs"]),
        "one_document_rad69_median_ms": round(medians["rad69"], 3),
        "one_document_wado_rs_median_ms": round(medians["wado_rs"], 3),
        "latency_ratio": round(medians["rad69"] / medians["wado_rs"], 3),
        "other_cpu_s_during_study_trials": round(sum(f["other_cpu_s"] for runs in figures.values() for f in runs), 3),
        "other_cpu_s_during_one_document_trials": one_cpu["other_cpu_s"],
    }
    return {"summary": summary, "study": figures, "one_document_cpu": one_cpu,
            "one_document_ms": {name: [round(v * 1e3, 3) for v in values] for name, values in latencies.items()}}


if __name__ == "__main__":
    sys.exit(main())
