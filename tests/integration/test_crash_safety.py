"""SIGKILL during ingest, 60 times per database: the index and the store stay consistent."""

from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom import dcmread

from bench.crash import run_crash_loop
from tests.conftest import DATABASES, make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, make_instance, to_bytes
from tests.processes import running
from xdsi.dicom.attributes import index_keys
from xdsi.repository import db, index, ingest
from xdsi.services import process_pool
from xdsi.services.archive import Archive
from xdsi.services.reading import read_instance

KILLS = 60


def test_kill_during_ingest_leaves_whole_instances_or_nothing(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "store", duplicate_policy="overwrite")
    report = run_crash_loop(settings, KILLS, payload_count=30, max_delay=0.3, seed=7)
    assert report.iterations == KILLS
    assert report.violations == []
    assert report.acknowledged > 0
    # The kills landed inside writes: partial spools and placed-but-unsettled files were swept.
    assert report.sweep["part"] + report.sweep["link"] + report.sweep["gc"] > 0


# SQLite transactions end with their process; only a database server can commit for a dead client,
# so this test exists where the other [postgresql] tests do.
if "postgresql" in DATABASES:

    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    def test_sweep_waits_for_the_commit_of_a_writer_that_died(database_url: str, tmp_path: Path) -> None:
        archive = Archive.open(make_settings(database_url, tmp_path / "store"))
        archive.prepare()
        ds = make_dataset()
        payload = to_bytes(ds)
        placed = tmp_path / "placed"
        pid = os.fork()
        if pid == 0:  # the writer: places the file, then is gone before its transaction ends
            try:
                blob = archive.blobs.spool(io.BytesIO(payload), 1 << 30)
                archive.blobs.place(blob, [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID])
                placed.write_text(f"{blob.key} {blob.size} {blob.sha256}")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        key, size, sha256 = placed.read_text().split()
        entry = ingest.NewInstance(
            index_keys(dcmread(io.BytesIO(payload))),
            ingest.StoredBlob(key, int(size), sha256, str(ds.file_meta.TransferSyntaxUID), None, None),
            b"{}",
        )
        sweeper = threading.Thread(target=archive.store.sweep)
        # The dead writer's server-side transaction, still running: its COMMIT has not landed yet.
        with db.writing(archive.sessions) as session:
            ingest.add_instances(session, [entry], datetime.now(UTC))
            session.flush()
            sweeper.start()
            sweeper.join(timeout=1.0)
            assert sweeper.is_alive(), "the sweep judged the file before the writer's transaction ended"
        sweeper.join(timeout=30)
        assert not sweeper.is_alive()
        assert archive.blobs.path(key).exists()
        assert not list(archive.blobs.tmp.iterdir())
        assert_consistent(archive)
        archive.close()


def test_a_writer_killed_while_its_parser_processes_work_leaves_whole_instances(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "store", parse_processes=2)
    archive = Archive.open(settings)
    archive.prepare()
    rng = random.Random(7)
    for iteration in range(3):
        started, acked = tmp_path / f"started-{iteration}", tmp_path / f"acked-{iteration}"
        pid = os.fork()
        if pid == 0:  # stores batches parsed by its own parser processes until killed
            try:
                writer = Archive.open(settings)
                with open(acked, "a") as log:
                    while True:
                        outcomes = writer.store.store(io.BytesIO(make_instance()) for _ in range(6))
                        log.write("".join(f"{o.sop_instance_uid}\n" for o in outcomes if o.status.succeeded))
                        log.flush()
                        if not started.exists():
                            pids = process_pool.shared(2, read_instance).pids
                            started.write_text(" ".join(map(str, pids)))
            finally:
                os._exit(0)
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        workers = [int(p) for p in started.read_text().split()]
        assert len(workers) == 2
        deadline = time.monotonic() + 10
        while any(running(worker) for worker in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(running(worker) for worker in workers), "parser processes outlived their killed owner"
        archive.prepare()  # as a restarted server: the sweep
        assert_consistent(archive)
        with archive.sessions() as session:
            stored = set(index.stored_digests(session, acked.read_text().split()))
        assert stored == set(acked.read_text().split())
    archive.close()

