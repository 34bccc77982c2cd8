"""Retrieving a 1 GB study streams it, and so does the metadata of a study of thousands of instances: the
server's memory barely moves while they are sent."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _peak_growth_kib(pids: list[int]) -> Iterator[list[int]]:
    """The servers' largest resident memory while the block runs, over what they held before it
    (filled in when the block ends)."""
    baseline = _rss_kib(pids)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(pids))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    growth = [0]
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth[0] = peak[0] - baseline


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
        with _peak_growth_kib(pids) as growth:
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
                connection.close()
        assert received == declared > INSTANCES * SIDE * SIDE * 2
        growth_mib = growth[0] / 1024
        assert growth_mib < 100, f"server memory grew by {growth_mib:.0f} MiB while sending {received >> 20} MiB"
    finally:
        server.stop()


METADATA_INSTANCES = 3000
COMMENT = 8000  # bytes of text per instance: about 25 MB of DICOM JSON for the study


def test_the_metadata_of_a_large_study_streams_in_flat_memory(tmp_path: Path) -> None:
    """Four clients read the study's metadata at once (JSON, gzip and PS3.19 XML): the answers are
    complete and in order, and the worker holds batches of them, not whole answers."""
    server = LiveServer(f"sqlite:///{tmp_path / 'many.db'}", tmp_path / "store", workers=1)
    try:
        study, series = generate_uid(), generate_uid()
        uids = [generate_uid() for _ in range(METADATA_INSTANCES)]
        archive = Archive.open(server.settings)
        try:
            for start in range(0, METADATA_INSTANCES, 250):
                outcomes = archive.store.store(io.BytesIO(to_bytes(make_dataset(
                    study_uid=study, series_uid=series, sop_uid=uid, patient_id="MANY", InstanceNumber=number + 1,
                    ImageComments=f"{number:08d}" + "x" * (COMMENT - 8))))
                    for number, uid in enumerate(uids[start:start + 250], start))
                assert all(outcome.status.succeeded for outcome in outcomes)
        finally:
            archive.close()
        pids = _server_pids(server.process.pid)
        url = f"/dicom-web/studies/{study}/metadata"
        asked = [{"Accept": "application/dicom+json"}, {"Accept": "application/dicom+json", "Accept-Encoding": "gzip"},
                 {"Accept": 'multipart/related; type="application/dicom+xml"'}, {"Accept": "application/dicom+json"}]
        server.request("GET", url, headers=asked[0])  # a first answer warms the worker
        bodies: list[bytes] = [b""] * len(asked)

        def read(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            try:
                connection.request("GET", url, headers=asked[index])
                response = connection.getresponse()
                assert response.status == 200
                bodies[index] = response.read()
            finally:
                connection.close()

        with _peak_growth_kib(pids) as growth:
            readers = [threading.Thread(target=read, args=(index,)) for index in range(len(asked))]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
        plain = json.loads(bodies[0])
        assert [item["00080018"]["Value"][0] for item in plain] == uids
        assert gzip.decompress(bodies[1]) == bodies[0] == bodies[3]
        assert bodies[2].count(b"<NativeDicomModel") == METADATA_INSTANCES
        sent_mib = sum(map(len, bodies)) >> 20
        growth_mib = growth[0] / 1024
        assert growth_mib < 36, f"server memory grew by {growth_mib:.0f} MiB while sending {sent_mib} MiB of metadata"
    finally:
        server.stop()
