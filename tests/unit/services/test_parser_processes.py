"""Batches parsed in worker processes: the same index as parsing in-process, and no way to lose work."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, make_instance, pydicom_files, to_bytes
from tests.unit.services.test_store import BAD_INPUT
from xdsi.repository import db
from xdsi.repository.models import Instance
from xdsi.services import process_pool
from xdsi.services.archive import Archive
from xdsi.services.reading import read_instance
from xdsi.services.store import Status

COLUMNS = ("sop_class_uid", "instance_number", "rows", "columns", "bits_allocated", "number_of_frames",
           "specific_character_set", "transfer_syntax_uid", "size", "sha256", "pixel_data_offset",
           "pixel_data_length", "frame_table")


def open_archive(database_url: str, store: Path, parsers: int) -> Archive:
    archive = Archive.open(make_settings(database_url, store, parse_processes=parsers))
    archive.prepare()
    return archive


def indexed(archive: Archive) -> dict[str, tuple[object, ...]]:
    """Every instance's index columns and metadata, by SOP Instance UID."""
    with archive.sessions() as session:
        return {
            row.sop_instance_uid: (*(getattr(row, name) for name in COLUMNS),
                                   row.metadata_fragment.json)
            for row in session.scalars(select(Instance))
        }


def migrated_sqlite(folder: Path) -> str:
    folder.mkdir()
    url = f"sqlite:///{folder / 'xdsi.db'}"
    engine = db.create_engine_for(url)
    db.upgrade(engine)
    engine.dispose()
    return url


def parser_pool(archive: Archive) -> process_pool.ProcessPool:
    return process_pool.shared(archive.settings.parse_processes, read_instance)


# Parsing happens before the database is touched: two SQLite archives compare it.
def test_worker_processes_index_exactly_what_in_process_parsing_does(tmp_path: Path) -> None:
    payloads = [path.read_bytes() for path in pydicom_files()]
    payloads += [make_case() for make_case, _error, _reason in BAD_INPUT.values()]
    in_process, workers = (
        open_archive(migrated_sqlite(tmp_path / name), tmp_path / name, parsers=parsers)
        for name, parsers in (("in-process", 0), ("workers", 2))
    )
    expected = in_process.store.store(io.BytesIO(p) for p in payloads)
    got = workers.store.store(io.BytesIO(p) for p in payloads)
    # Refusals cross the process boundary whole: type, reason and the UIDs that name the instance.
    assert [(o.status, type(o.error), o.reason, o.sop_class_uid, o.sop_instance_uid) for o in got] == [
        (o.status, type(o.error), o.reason, o.sop_class_uid, o.sop_instance_uid) for o in expected
    ]
    assert sum(o.status is Status.STORED for o in got) > 20
    assert sum(o.status is Status.FAILED for o in got) >= len(BAD_INPUT)
    assert indexed(workers) == indexed(in_process)
    assert_consistent(workers)
    in_process.close()
    workers.close()


def test_a_parser_process_that_dies_costs_no_instance(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = open_archive(database_url, tmp_path / "store", parsers=2)
    archive.store.store(io.BytesIO(make_instance()) for _ in range(2))
    pool = parser_pool(archive)
    os.kill(pool.pids[0], signal.SIGKILL)
    caplog.set_level(logging.INFO, logger=process_pool.__name__)
    batch = [make_instance() for _ in range(8)]
    outcomes = archive.store.store(io.BytesIO(p) for p in batch)
    assert [o.status for o in outcomes] == [Status.STORED] * 8
    assert pool.broken and "given up" in caplog.text
    # The next batch starts new workers by itself.
    assert [o.status for o in archive.store.store(io.BytesIO(make_instance()) for _ in range(4))] == [
        Status.STORED
    ] * 4
    assert caplog.text.count("started 2 worker processes") == 1
    assert assert_consistent(archive) == 14
    archive.close()


def test_a_batch_abandoned_midway_hands_nothing_to_the_next(database_url: str, tmp_path: Path) -> None:
    archive = open_archive(database_url, tmp_path / "store", parsers=2)

    def broken_request() -> Iterator[io.BytesIO]:
        for _ in range(6):
            yield io.BytesIO(make_instance())
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        archive.store.store(broken_request())
    assert assert_consistent(archive) == 0
    datasets = [make_dataset() for _ in range(5)]
    outcomes = archive.store.store(io.BytesIO(to_bytes(ds)) for ds in datasets)
    assert [o.sop_instance_uid for o in outcomes] == [ds.SOPInstanceUID for ds in datasets]
    assert assert_consistent(archive) == 5
    archive.close()


def test_threads_sharing_the_parsers_each_get_their_own_answers(database_url: str, tmp_path: Path) -> None:
    archive = open_archive(database_url, tmp_path / "store", parsers=2)
    mismatches: list[str] = []

    def client() -> None:
        for _ in range(4):
            datasets = [make_dataset() for _ in range(5)]
            outcomes = archive.store.store(io.BytesIO(to_bytes(ds)) for ds in datasets)
            if [(o.status, o.sop_instance_uid) for o in outcomes] != [
                (Status.STORED, ds.SOPInstanceUID) for ds in datasets
            ]:
                mismatches.append(str([(o.status, o.reason) for o in outcomes]))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not mismatches
    assert assert_consistent(archive) == 80
    archive.close()


def test_a_forked_child_starts_its_own_parsers(database_url: str, tmp_path: Path) -> None:
    archive = open_archive(database_url, tmp_path / "store", parsers=2)
    archive.store.store(io.BytesIO(make_instance()) for _ in range(2))
    parent_pids = parser_pool(archive).pids
    report = tmp_path / "child"
    pid = os.fork()
    if pid == 0:
        try:
            child = Archive.open(archive.settings)
            outcomes = child.store.store(io.BytesIO(make_instance()) for _ in range(3))
            report.write_text(json.dumps([[o.status.value for o in outcomes], parser_pool(child).pids]))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    statuses, child_pids = json.loads(report.read_text())
    assert statuses == ["stored"] * 3
    assert not set(child_pids) & set(parent_pids)
    # The parent's workers were not disturbed by the child's use of the pipes it inherited.
    assert [o.status for o in archive.store.store(io.BytesIO(make_instance()) for _ in range(3))] == [
        Status.STORED
    ] * 3
    assert parser_pool(archive).pids == parent_pids
    assert assert_consistent(archive) == 8
    archive.close()


def test_without_a_python_to_start_parsing_happens_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An embedding server whose sys.executable is no Python interpreter (it cannot start workers).
    monkeypatch.setattr(process_pool.sys, "executable", str(tmp_path / "no-such-python"))
    archive = open_archive(migrated_sqlite(tmp_path / "db"), tmp_path / "store", parsers=3)
    outcomes = archive.store.store(io.BytesIO(make_instance()) for _ in range(4))
    assert [o.status for o in outcomes] == [Status.STORED] * 4
    assert assert_consistent(archive) == 4
    archive.close()
