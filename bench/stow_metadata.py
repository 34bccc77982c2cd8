"""Memory of a STOW-RS request whose instances come as DICOM JSON or XML metadata: the peak and
kept resident memory of the one server worker that stores it.

It starts ``xdsi serve`` with one worker on a free loopback port, warms it with one small store,
then sends one metadata part of about ``--megabytes`` (streamed from a file, so the client holds
none of it) and reads the worker's ``VmHWM`` (peak resident) and ``VmRSS`` from /proc:

- ``json``: one application/dicom+json part, an array of many instances (``--instances``);
- ``xml``: one application/dicom+xml part (a part is one data set), one instance holding it all.

Each instance is an RT Structure Set whose contours (Contour Data, DS, three numbers a point) make
up the size: many small values, the costliest shape to hold as parsed objects, and a real one
(a planning CT's structures run to tens of megabytes).

Peak growth is VmHWM after the request over VmRSS before it; kept is VmRSS a second after the
answer over VmRSS before. ``ratio`` is peak growth over the part's size.

  .venv/bin/python bench/stow_metadata.py --kind json --megabytes 60
  .venv/bin/python bench/stow_metadata.py --kind xml --megabytes 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.uid import generate_uid

BOUNDARY = "xdsi-metadata-memory"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"


POINTS = 100  # points of one contour
CONTOURS = 50  # contours of one ROI


def _contour_values(number: int) -> list[str]:
    return [f"{(number * 7 + k) % 5000 / 10:.1f}" for k in range(3 * POINTS)]


def _contour_json(number: int) -> dict[str, Any]:
    return {"30060042": {"vr": "CS", "Value": ["CLOSED_PLANAR"]},
            "30060046": {"vr": "IS", "Value": [POINTS]},
            "30060050": {"vr": "DS", "Value": [float(v) for v in _contour_values(number)]}}


def json_instances(target_bytes: int, instances: int, study_uid: str) -> Iterator[dict[str, Any]]:
    """``instances`` data sets of about ``target_bytes`` of JSON in all."""
    series = generate_uid()
    per_contour = len(json.dumps(_contour_json(0)))
    contours = max(1, target_bytes // instances // per_contour)
    for number in range(1, instances + 1):
        rois = [{"30060040": {"vr": "SQ", "Value": [_contour_json(n) for n in range(first, min(contours,
                                                                                           first + CONTOURS))]},
                 "30060084": {"vr": "IS", "Value": [first // CONTOURS + 1]}}
                for first in range(0, contours, CONTOURS)]
        yield {
            "00080016": {"vr": "UI", "Value": [RT_STRUCTURE_SET]},
            "00080018": {"vr": "UI", "Value": [generate_uid()]},
            "00080060": {"vr": "CS", "Value": ["RTSTRUCT"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MEMORY^METADATA"}]},
            "00100020": {"vr": "LO", "Value": ["MEMORY-1"]},
            "0020000D": {"vr": "UI", "Value": [study_uid]},
            "0020000E": {"vr": "UI", "Value": [series]},
            "00200013": {"vr": "IS", "Value": [number]},
            "30060039": {"vr": "SQ", "Value": rois},
        }


def write_json_part(out: BinaryIO, target_bytes: int, instances: int, study_uid: str) -> list[str]:
    """One JSON array, written instance by instance; their SOP Instance UIDs."""
    uids = []
    out.write(b"[")
    for number, dataset in enumerate(json_instances(target_bytes, instances, study_uid)):
        out.write(b"," if number else b"")
        out.write(json.dumps(dataset).encode())
        uids.append(dataset["00080018"]["Value"][0])
    out.write(b"]")
    return uids


def _xml_attribute(tag: str, vr: str, *values: str) -> str:
    numbered = "".join(f'<Value number="{n}">{v}</Value>' for n, v in enumerate(values, 1))
    return f'<DicomAttribute tag="{tag}" vr="{vr}">{numbered}</DicomAttribute>'


def write_xml_part(out: BinaryIO, target_bytes: int, study_uid: str) -> str:
    """One NativeDicomModel document of about ``target_bytes``; its SOP Instance UID."""
    instance = generate_uid()
    out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="{NAMESPACE}">'.encode())
    for tag, vr, value in (("00080016", "UI", RT_STRUCTURE_SET), ("00080018", "UI", instance),
                           ("00080060", "CS", "RTSTRUCT"), ("00100020", "LO", "MEMORY-1"),
                           ("0020000D", "UI", study_uid), ("0020000E", "UI", generate_uid())):
        out.write(_xml_attribute(tag, vr, value).encode())
    out.write(b'<DicomAttribute tag="30060039" vr="SQ"><Item number="1"><DicomAttribute tag="30060040" vr="SQ">')
    written, number = 0, 0
    while written < target_bytes:
        number += 1
        item = (f'<Item number="{number}">{_xml_attribute("30060042", "CS", "CLOSED_PLANAR")}'
                f'{_xml_attribute("30060046", "IS", str(POINTS))}'
                f'{_xml_attribute("30060050", "DS", *_contour_values(number))}</Item>')
        written += out.write(item.encode())
    out.write(b'</DicomAttribute><DicomAttribute tag="30060084" vr="IS"><Value number="1">1</Value>'
              b"</DicomAttribute></Item></DicomAttribute></NativeDicomModel>")
    return instance


def write_body(path: Path, kind: str, megabytes: float, instances: int) -> tuple[str, int, list[str]]:
    """A multipart/related body of one metadata part; its Content-Type, the part's size and the
    SOP Instance UIDs it carries."""
    media = "application/dicom+json" if kind == "json" else "application/dicom+xml"
    study = generate_uid()
    with path.open("wb") as out:
        out.write(f"--{BOUNDARY}\r\nContent-Type: {media}\r\n\r\n".encode())
        start = out.tell()
        if kind == "json":
            uids = write_json_part(out, int(megabytes * 1e6), instances, study)
        else:
            uids = [write_xml_part(out, int(megabytes * 1e6), study)]
        size = out.tell() - start
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return f'multipart/related; type="{media}"; boundary={BOUNDARY}', size, uids


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def post_file(port: int, path: Path, content_type: str, timeout: float = 600) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        with path.open("rb") as body:
            connection.request("POST", "/dicom-web/studies", body=body, headers={
                "Content-Type": content_type, "Accept": "application/dicom+json",
                "Content-Length": str(path.stat().st_size)})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (its parser processes not included)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process, apart."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def workers_of(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def serve(folder: Path, port: int, tree: Path | None = None, **settings: str) -> subprocess.Popen[bytes]:
    """``xdsi serve`` with one worker on a fresh store in ``folder``; of the checkout ``tree`` if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDSI_")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())
    env.update({"XDSI_DATABASE_URL": f"sqlite:///{folder / 'x.db'}", "XDSI_STORAGE": str(folder / "store"),
                **{f"XDSI_{k.upper()}": v for k, v in settings.items()}})
    process = subprocess.Popen([sys.executable, "-m", "xdsi", "serve", "--bind", f"127.0.0.1:{port}",
                                "--workers", "1", "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
                                cwd=tree)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status in (200, 503):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def measure(kind: str, megabytes: float, instances: int) -> dict[str, Any]:
    import socket

    with tempfile.TemporaryDirectory(prefix="xdsi-metadata-memory-") as scratch:
        folder = Path(scratch)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = serve(folder, port)
        try:
            warm_type, _, _ = write_body(folder / "warm", kind, 0.05, 2)
            status, _, _ = post_file(port, folder / "warm", warm_type)
            [worker] = workers_of(server.pid)
            content_type, size, _ = write_body(folder / "body", kind, megabytes, instances)
            before = memory_kib(worker)
            started, cpu = time.monotonic(), cpu_seconds(worker)
            status, _, answer = post_file(port, folder / "body", content_type)
            seconds, cpu = time.monotonic() - started, cpu_seconds(worker) - cpu
            time.sleep(1)
            after = memory_kib(worker)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    stored = len(json.loads(answer).get("00081199", {}).get("Value", [])) if answer.startswith(b"{") else 0
    peak = after["VmHWM"] - before["VmRSS"]
    return {
        "kind": kind, "part_bytes": size, "status": status, "instances_stored": stored, "seconds": round(seconds, 2),
        "worker_cpu_seconds": round(cpu, 2),
        "rss_before_kib": before["VmRSS"], "hwm_after_kib": after["VmHWM"], "rss_after_kib": after["VmRSS"],
        "peak_growth_kib": peak, "kept_kib": after["VmRSS"] - before["VmRSS"],
        "ratio": round(peak * 1024 / size, 2),
        # Memory does not depend on the machine's load, the time does: the load average says how busy it was.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("json", "xml"), default="json")
    parser.add_argument("--megabytes", type=float, default=60)
    parser.add_argument("--instances", type=int, default=1000, help="instances of the JSON part")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    result = measure(args.kind, args.megabytes, args.instances)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
