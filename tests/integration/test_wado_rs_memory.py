"""Retrieving a 1 GB study streams it: the server's memory barely moves while it is sent."""

from __future__ import annotations

import http.client
import io
import threading
import time
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from tests.dicomfiles import make_dataset, to_bytes
from tests.live import LiveServer
from xdsi.services.archive import Archive

INSTANCES = 20
SIDE = 5120  # 5120 x 5120 x 16 bit = 50 MiB of pixels per instance, 1 GiB per study


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def _server_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def test_a_one_gigabyte_study_streams_in_flat_memory(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'big.db'}", tmp_path / "store", workers=1)
    try:
        study = generate_uid()
        archive = Archive.open(server.settings)
        pixels = np.zeros((SIDE, SIDE), dtype=np.uint16)
        try:
            for number in range(INSTANCES):
                ds = make_dataset(study_uid=study, patient_id="BIG", rows=1, columns=1, InstanceNumber=number + 1)
                ds.Rows, ds.Columns = SIDE, SIDE
                pixels[number] = number  # different content per instance
                ds.PixelData = pixels.tobytes()
                [outcome] = archive.store.store([io.BytesIO(to_bytes(ds))])
                assert outcome.status.succeeded, outcome.reason
        finally:
            archive.close()
        del pixels

        pids = _server_pids(server.process.pid)
        warm = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        warm.request("GET", f"/dicom-web/studies/{study}/metadata", headers={"Accept": "application/dicom+json"})
        warm.getresponse().read()
        warm.close()
        baseline = _rss_kib(pids)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_kib(pids))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        received = 0
        try:
            connection.request("GET", f"/dicom-web/studies/{study}",
                               headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
            response = connection.getresponse()
            assert response.status == 200
            declared = int(response.getheader("Content-Length"))
            buffer = bytearray(1 << 20)
            while count := response.readinto(buffer):
                received += count
        finally:
            done.set()
            sampler.join()
            connection.close()
        assert received == declared > INSTANCES * SIDE * SIDE * 2
        growth_mib = (peak[0] - baseline) / 1024
        assert growth_mib < 100, f"server memory grew by {growth_mib:.0f} MiB while sending {received >> 20} MiB"
    finally:
        server.stop()
