"""The store sweep while the server runs: a worker killed with SIGKILL in the middle of a STOW-RS leaves
partial uploads and unindexed files, and they are gone a few seconds later without a restart, while
live writers in both workers lose nothing."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import MULTIPART_DICOM, multipart
from tests.live import LiveServer
from xdsi.services.archive import Archive

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def study_body(count: int) -> tuple[bytes, list[str]]:
    """COUNT instances of 1 MB each in one study, as a multipart/related STOW-RS body."""
    first = make_dataset(rows=512, columns=1024)
    datasets = [first] + [make_dataset(rows=512, columns=1024, study_uid=first.StudyInstanceUID,
                                       series_uid=first.SeriesInstanceUID) for _ in range(count - 1)]
    return multipart([({"Content-Type": "application/dicom"}, to_bytes(ds)) for ds in datasets]), [
        ds.SOPInstanceUID for ds in datasets]


def post(live: LiveServer, body: bytes) -> int | None:
    """The status of a STOW-RS, or None when the connection died with its worker."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
    try:
        connection.request("POST", "/dicom-web/studies", body, {"Content-Type": MULTIPART_DICOM.format("xdsi-test-boundary")})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def writers_in(tmp: Path) -> set[int]:
    """Pids named by the markers and partial uploads in the store's tmp folder (host~pid~...)."""
    pids = set()
    for entry in tmp.iterdir() if tmp.exists() else ():
        parts = entry.name.split("~")
        if len(parts) >= 3 and parts[1].isdigit() and entry.suffix in (".part", ".link"):
            pids.add(int(parts[1]))
    return pids


def test_what_a_killed_worker_left_is_swept_while_the_server_runs(tmp_path: Path) -> None:
    database, store = f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store"
    server = LiveServer(database, store, workers=2, sweep_interval="1")
    archive = Archive.open(make_settings(database, store))
    try:
        body, _ = study_body(40)
        upload = threading.Thread(target=post, args=(server, body))
        upload.start()
        deadline, victim = time.monotonic() + 60, None
        while victim is None and time.monotonic() < deadline:
            victim = next(iter(writers_in(archive.blobs.tmp) - {server.process.pid}), None)
        assert victim is not None, "no worker was seen writing"
        os.kill(victim, signal.SIGKILL)
        upload.join(120)
        assert victim in writers_in(archive.blobs.tmp), "the killed worker left nothing to sweep"

        # Another upload runs while both workers sweep every second: its writer's files are live.
        body, sops = study_body(40)
        assert post(server, body) == 200
        for sop in sops:
            found = server.request("GET", f"/dicom-web/instances?SOPInstanceUID={sop}")
            assert found.status == 200 and sop.encode() in found.body

        deadline = time.monotonic() + 20
        while True:
            try:
                assert_consistent(archive)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert server.alive()
    finally:
        archive.close()
        server.stop()
