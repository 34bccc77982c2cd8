"""DELETE of studies, series and instances against a running server, the CLI, and crashes mid-delete."""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import DATABASES, make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.integration.test_wado_rs import AS_STORED, parts
from tests.live import LiveServer, clean_env
from xdsi.repository import db, index, removal
from xdsi.repository.blobs import BlobStore
from xdsi.repository.models import Instance as InstanceRow
from xdsi.repository.models import Patient
from xdsi.repository.models import Series as SeriesRow
from xdsi.repository.models import Study as StudyRow
from xdsi.services.archive import Archive
from xdsi.services.delete import InstanceDeleter
from xdsi.services.retrieve import Target

JSON = "application/dicom+json"


@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with deleting turned on, one per database."""
    folder = tmp_path_factory.mktemp(f"delete-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    live = LiveServer(url, folder / "store", delete_enabled="true")
    yield live
    live.stop()


class Study:
    """A study of two series (CT: two instances, MR: one) stored through STOW-RS."""

    def __init__(self, live: LiveServer, patient_id: str | None = None) -> None:
        self.uid = generate_uid()
        self.patient_id = patient_id or f"DEL-{generate_uid()[-12:]}"
        self.ct, self.mr = generate_uid(), generate_uid()
        self.datasets = [
            make_dataset(study_uid=self.uid, series_uid=self.ct, patient_id=self.patient_id, InstanceNumber=1),
            make_dataset(study_uid=self.uid, series_uid=self.ct, patient_id=self.patient_id, InstanceNumber=2),
            make_dataset(study_uid=self.uid, series_uid=self.mr, patient_id=self.patient_id, modality="MR",
                         SeriesNumber=2),
        ]
        self.payloads = {str(ds.SOPInstanceUID): to_bytes(ds) for ds in self.datasets}
        reply = post(live, dicom_parts(*self.payloads.values()))
        assert reply.status == 200, reply.body

    @property
    def path(self) -> str:
        return f"/dicom-web/studies/{self.uid}"

    def instance_path(self, position: int) -> str:
        ds = self.datasets[position]
        return f"{self.path}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def qido(live: LiveServer, path: str) -> list[dict]:
    reply = live.request("GET", path, headers={"Accept": JSON})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def first(result: dict, tag: str) -> object:
    return result[tag]["Value"][0]


def study_row(live: LiveServer, study: Study) -> dict:
    [found] = qido(live, f"/dicom-web/studies?StudyInstanceUID={study.uid}"
                         "&includefield=00201206&includefield=00201208&includefield=00080061")
    return found


def patients_named(live: LiveServer, patient_id: str) -> int:
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            return len(session.query(Patient).filter(Patient.patient_id == patient_id).all())
    finally:
        archive.close()


def files_on_disk(live: LiveServer) -> int:
    return sum(1 for _ in (live.settings.storage / "objects").rglob("*.dcm"))


def test_deleting_an_instance_a_series_then_the_last_instance_keeps_the_study_consistent(server: LiveServer) -> None:
    study = Study(server)
    before = files_on_disk(server)
    reply = server.request("DELETE", study.instance_path(0))
    assert reply.status == 204 and reply.body == b""
    assert server.request("GET", study.instance_path(0), headers={"Accept": AS_STORED}).status == 404
    assert files_on_disk(server) == before - 1
    found = study_row(server, study)
    assert first(found, "00201206") == 2 and first(found, "00201208") == 2  # series, instances
    assert found["00080061"]["Value"] == ["CT", "MR"]
    [ct] = qido(server, f"{study.path}/series?SeriesInstanceUID={study.ct}&includefield=00201209")
    assert first(ct, "00201209") == 1
    metadata = qido(server, f"{study.path}/metadata")
    assert sorted(first(item, "00080018") for item in metadata) == sorted(
        str(ds.SOPInstanceUID) for ds in study.datasets[1:])
    # The remaining instances are retrieved whole, byte for byte.
    remaining = parts(server.request("GET", study.path, headers={"Accept": AS_STORED}))
    assert sorted(body for _, body in remaining) == sorted(
        study.payloads[str(ds.SOPInstanceUID)] for ds in study.datasets[1:])

    assert server.request("DELETE", f"{study.path}/series/{study.mr}").status == 204
    found = study_row(server, study)
    assert first(found, "00201206") == 1 and first(found, "00201208") == 1
    assert found["00080061"]["Value"] == ["CT"]
    assert qido(server, f"{study.path}/series?SeriesInstanceUID={study.mr}") == []

    # The last instance of the last series: the series, the study and the patient go.
    assert server.request("DELETE", study.instance_path(1)).status == 204
    assert qido(server, f"/dicom-web/studies?StudyInstanceUID={study.uid}") == []
    assert server.request("GET", f"{study.path}/metadata", headers={"Accept": JSON}).status == 404
    assert patients_named(server, study.patient_id) == 0
    assert files_on_disk(server) == before - 3


def test_a_patient_with_another_study_keeps_its_record(server: LiveServer) -> None:
    one = Study(server)
    other = Study(server, patient_id=one.patient_id)
    assert server.request("DELETE", one.path).status == 204
    assert patients_named(server, one.patient_id) == 1
    assert len(qido(server, f"/dicom-web/studies?PatientID={one.patient_id}")) == 1
    assert server.request("DELETE", other.path).status == 204
    assert patients_named(server, one.patient_id) == 0


def test_metadata_validators_change_after_a_partial_delete(server: LiveServer) -> None:
    study = Study(server)
    first_answer = server.request("GET", f"{study.path}/metadata", headers={"Accept": JSON})
    etag, modified = first_answer.header("ETag"), first_answer.header("Last-Modified")
    # The delete's timestamp must fall in a later second than the cached copy's Last-Modified.
    time.sleep(1.05 - datetime.now(UTC).microsecond / 1e6)
    assert server.request("DELETE", f"{study.path}/series/{study.mr}").status == 204
    for validator in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        again = server.request("GET", f"{study.path}/metadata", headers={"Accept": JSON, **validator})
        assert again.status == 200, validator
        assert len(json.loads(again.body)) == 2
    server.request("DELETE", study.path)


def test_the_landing_page_lists_delete_as_available_when_turned_on(server: LiveServer) -> None:
    reply = server.request("GET", "/", headers={"Accept": "application/json"})
    [entry] = [s for s in json.loads(reply.body)["services"] if s["name"].startswith("DELETE")]
    assert entry["status"] == "available"


def test_what_is_not_there_is_404_and_a_malformed_uid_400(server: LiveServer) -> None:
    study = Study(server)
    missing = generate_uid()
    for path in (f"/dicom-web/studies/{missing}",
                 f"{study.path}/series/{missing}",
                 f"{study.path}/series/{study.mr}/instances/{study.datasets[0].SOPInstanceUID}",  # wrong series
                 f"{study.path}/series/{study.ct}/instances/{missing}"):
        reply = server.request("DELETE", path)
        assert reply.status == 404, path
        assert b"not in the archive" in reply.body  # request() also checks no error answer leaks internals
    for path in ("/dicom-web/studies/1.2.abc",
                 f"{study.path}/series/1..2",
                 f"{study.path}/series/{study.ct}/instances/{'1' * 65}"):
        reply = server.request("DELETE", path)
        assert reply.status == 400, path
        assert b"UID" in reply.body
    assert len(parts(server.request("GET", study.path, headers={"Accept": AS_STORED}))) == 3
    server.request("DELETE", study.path)


def test_the_same_study_stored_again_after_a_delete_is_retrieved_identically(server: LiveServer) -> None:
    study = Study(server)
    as_stored = parts(server.request("GET", study.path, headers={"Accept": AS_STORED}))
    metadata = server.request("GET", f"{study.path}/metadata", headers={"Accept": JSON}).body
    assert server.request("DELETE", study.path).status == 204
    assert server.request("GET", study.path, headers={"Accept": AS_STORED}).status == 404
    reply = post(server, dicom_parts(*study.payloads.values()))
    assert reply.status == 200, reply.body
    again = parts(server.request("GET", study.path, headers={"Accept": AS_STORED}))
    assert [body for _, body in again] == [body for _, body in as_stored]
    assert [headers["Content-Type"] for headers, _ in again] == [headers["Content-Type"] for headers, _ in as_stored]
    assert server.request("GET", f"{study.path}/metadata", headers={"Accept": JSON}).body == metadata
    assert first(study_row(server, study), "00201208") == 3
    server.request("DELETE", study.path)


def test_a_study_retrieve_started_before_the_delete_finishes_whole(server: LiveServer) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    payloads = [to_bytes(make_dataset(study_uid=study_uid, series_uid=series_uid, rows=512, columns=1024,
                                      InstanceNumber=number)) for number in range(1, 41)]  # 40 x 1 MiB
    assert post(server, dicom_parts(*payloads)).status == 200
    before = files_on_disk(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("GET", f"/dicom-web/studies/{study_uid}", headers={"Accept": AS_STORED})
    response = connection.getresponse()
    assert response.status == 200
    head = response.read(1 << 20)  # the answer is streaming, most of it not yet sent
    assert server.request("DELETE", f"/dicom-web/studies/{study_uid}").status == 204
    assert files_on_disk(server) == before - 40  # unlinked while the answer streams
    body = head + response.read()
    connection.close()
    assert len(body) == int(response.headers["Content-Length"])
    boundary = re.search(r'boundary="?([^";]+)"?', response.headers["Content-Type"]).group(1)  # type: ignore[union-attr]
    received = [chunk.partition(b"\r\n\r\n")[2][:-2] for chunk in body.split(b"--" + boundary.encode())[1:-1]]
    assert received == payloads
    assert server.request("GET", f"/dicom-web/studies/{study_uid}", headers={"Accept": AS_STORED}).status == 404


def test_delete_is_405_with_the_allowed_methods_when_turned_off(live: LiveServer) -> None:
    study = Study(live)
    cases = {study.path: {"GET", "HEAD", "OPTIONS", "POST"},
             f"{study.path}/series/{study.ct}": {"GET", "HEAD", "OPTIONS"},
             study.instance_path(0): {"GET", "HEAD", "OPTIONS"}}
    for path, allowed in cases.items():
        reply = live.request("DELETE", path)
        assert reply.status == 405, path
        assert {method.strip() for method in reply.header("Allow").split(",")} == allowed
        assert b"delete_enabled" in reply.body and b"XDSI_DELETE_ENABLED=true" in reply.body
    assert live.request("DELETE", "/dicom-web/studies/not-a-uid").status == 405
    assert len(parts(live.request("GET", study.path, headers={"Accept": AS_STORED}))) == 3


def _xdsi(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xdsi", *args], env=settings_env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_cli_deletes_only_when_allowed_and_says_what_it_did(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "store")
    archive = Archive.open(settings)
    archive.prepare()
    study, series = generate_uid(), generate_uid()
    datasets = [make_dataset(study_uid=study, series_uid=series) for _ in range(2)]
    datasets.append(make_dataset(study_uid=study, series_uid=generate_uid(), modality="MR"))
    archive.store.store(io.BytesIO(to_bytes(ds)) for ds in datasets)
    env = {**clean_env(), "XDSI_DATABASE_URL": database_url, "XDSI_STORAGE": str(tmp_path / "store")}

    assert _xdsi(env, "delete", "--help").returncode == 0
    refused = _xdsi(env, "delete", study)
    assert refused.returncode == 1 and "delete_enabled" in refused.stderr
    malformed = _xdsi(env, "delete", "--force", "1.2.x")
    assert malformed.returncode == 1 and "UID" in malformed.stderr
    missing = _xdsi(env, "delete", "--force", study, generate_uid())
    assert missing.returncode == 1 and "not in the archive" in missing.stderr
    with archive.sessions() as session:
        assert index.counts(session)["instances"] == 3

    done = _xdsi(env, "delete", "--force", study, series)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deleted series {series} of study {study}: 2 instances, 1 series"
    # The audit line: one INFO line naming what was deleted and how many instances.
    [line] = [line for line in done.stderr.splitlines() if "xdsi.services.delete" in line]
    assert f"INFO xdsi.services.delete: deleted series {series} of study {study}: 2 instances" in line
    enabled = _xdsi({**env, "XDSI_DELETE_ENABLED": "true"}, "delete", study)
    assert enabled.returncode == 0, enabled.stderr
    with archive.sessions() as session:
        assert index.counts(session) == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert_consistent(archive)
    archive.close()


@pytest.mark.parametrize("crash_at", ["before the commit", "after the commit", "after the first file"])
def test_a_delete_killed_midway_is_finished_or_undone_by_the_start_up_sweep(
    database_url: str, tmp_path: Path, crash_at: str
) -> None:
    settings = make_settings(database_url, tmp_path / "store")
    archive = Archive.open(settings)
    archive.prepare()
    study = generate_uid()
    datasets = [make_dataset(study_uid=study, series_uid=series, InstanceNumber=number)
                for series in (generate_uid(), generate_uid()) for number in (1, 2)]
    archive.store.store(io.BytesIO(to_bytes(ds)) for ds in datasets)
    keep = make_dataset()  # another study, untouched throughout
    archive.store.store([io.BytesIO(to_bytes(keep))])
    pid = os.fork()
    if pid == 0:  # the deleting process, killed by SIGKILL at the chosen point
        try:
            _die_at(crash_at)
            own = Archive.open(settings)  # its own connections, not the parent's pool
            InstanceDeleter(own.sessions, own.blobs).delete(Target(study))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    markers = list(archive.blobs.tmp.glob("*.gc"))
    assert len(markers) == (4 if crash_at != "after the first file" else 3)
    committed = crash_at != "before the commit"
    with archive.sessions() as session:
        assert bool(index.stored_instances(session, study)) is not committed
    on_disk = sum(1 for _ in archive.blobs.objects.rglob("*.dcm"))
    assert on_disk == (4 if crash_at == "after the first file" else 5)
    archive.prepare()  # as a restarted server: the sweep judges each marker against the index
    assert not list(archive.blobs.tmp.iterdir())
    assert assert_consistent(archive) == (1 if committed else 5)
    with archive.sessions() as session:
        assert index.counts(session)["studies"] == (1 if committed else 2)
    archive.close()


def _die_at(point: str) -> None:
    """Arrange for this process to be killed at ``point`` of the delete that follows."""
    if point == "before the commit":
        real_mark = BlobStore.mark_for_deletion
        calls = [0]

        def mark(self: BlobStore, key: str) -> Path:
            marker = real_mark(self, key)
            calls[0] += 1
            if calls[0] == 4:  # every marker written, the rows not yet deleted
                os.kill(os.getpid(), signal.SIGKILL)
            return marker

        BlobStore.mark_for_deletion = mark  # type: ignore[method-assign]
        return
    real_delete = BlobStore.delete_marked
    skip = 0 if point == "after the commit" else 1

    def delete_marked(self: BlobStore, marker: Path, key: str) -> None:
        nonlocal skip
        if skip == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        skip -= 1
        real_delete(self, marker, key)

    BlobStore.delete_marked = delete_marked  # type: ignore[method-assign]


KILLS = 12


def test_deletes_killed_at_random_moments_leave_a_consistent_archive(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "store", parse_processes=0)
    archive = Archive.open(settings)
    archive.prepare()
    rng = random.Random(11)
    interrupted = 0  # kills that left a delete's markers behind
    iteration = 0
    # Twelve kills at least; more, up to three times as many, while none has yet landed inside a delete,
    # since where a kill lands depends on how fast this machine's database commits.
    while iteration < KILLS or (not interrupted and iteration < 3 * KILLS):
        iteration += 1
        acked = tmp_path / f"deleted-{iteration}"
        acked.touch()  # a child killed before its first write has deleted nothing
        pid = os.fork()
        if pid == 0:  # stores a study, then deletes an instance, a series and the rest, until killed
            try:
                own = Archive.open(settings)
                deleter = InstanceDeleter(own.sessions, own.blobs)
                with open(acked, "a") as log:
                    while True:
                        study, series = generate_uid(), [generate_uid(), generate_uid()]
                        datasets = [make_dataset(study_uid=study, series_uid=uid, modality=modality)
                                    for uid, modality in zip(series, ("CT", "MR"), strict=True) for _ in range(3)]
                        own.store.store(io.BytesIO(to_bytes(ds)) for ds in datasets)
                        for target in (Target(study, series[0], datasets[0].SOPInstanceUID),
                                       Target(study, series[1]), Target(study)):
                            deleter.delete(target)
                            log.write(f"{target.study_uid} {target.series_uid or '-'} "
                                      f"{target.sop_instance_uid or '-'}\n")
                            log.flush()
            finally:
                os._exit(0)
        _wait_for_first_delete(acked)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        interrupted += any(archive.blobs.tmp.glob("*.gc"))
        archive.prepare()  # as a restarted server
        assert_consistent(archive)
        with archive.sessions() as session:
            _assert_counts_match_rows(session)
            for line in acked.read_text().splitlines():
                study, series, instance = (None if part == "-" else part for part in line.split())
                assert not index.stored_instances(session, study, series, instance), line  # type: ignore[arg-type]
    archive.close()
    assert interrupted > 0, f"none of {iteration} kills landed inside a delete"
    print(f"{interrupted} of {iteration} kills interrupted a delete")


def _wait_for_first_delete(acked: Path) -> None:
    """Kills aimed after the child's first delete land among stores and deletes, not in its start-up."""
    deadline = time.monotonic() + 30
    while not acked.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.01)


def _assert_counts_match_rows(session: Session) -> None:
    """What the study and series rows record equals what the instance rows say."""
    for study in session.scalars(select(StudyRow)):
        series = session.scalars(select(SeriesRow).where(SeriesRow.study_fk == study.id)).all()
        assert series, f"study {study.study_uid} has no series"
        instances = session.execute(
            select(InstanceRow.series_fk, InstanceRow.sop_class_uid).where(
                InstanceRow.series_fk.in_([row.id for row in series]))).all()
        per_series = {row.id: sum(1 for fk, _ in instances if fk == row.id) for row in series}
        assert all(per_series.values()), f"study {study.study_uid} keeps an empty series"
        assert {row.id: row.number_of_instances for row in series} == per_series
        assert (study.number_of_series, study.number_of_instances) == (len(series), len(instances))
        assert study.modalities_in_study == "\\".join(sorted({row.modality for row in series if row.modality}))
        assert study.sop_classes_in_study == "\\".join(sorted({sop_class for _, sop_class in instances}))


# SQLite transactions end with their process; only a database server can commit for a dead client.
if "postgresql" in DATABASES:

    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    def test_the_sweep_waits_for_the_commit_of_a_delete_whose_process_died(database_url: str, tmp_path: Path) -> None:
        archive = Archive.open(make_settings(database_url, tmp_path / "store"))
        archive.prepare()
        study = generate_uid()
        archive.store.store(io.BytesIO(to_bytes(make_dataset(study_uid=study))) for _ in range(3))
        with archive.sessions() as session:
            keys = [found.blob_key for found in index.stored_instances(session, study)]
        pid = os.fork()
        if pid == 0:  # the deleting process: marks the files, then is gone before its transaction ends
            try:
                for key in keys:
                    archive.blobs.mark_for_deletion(key)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        sweeper = threading.Thread(target=archive.store.sweep)
        # The dead process's server-side transaction, still running: its COMMIT has not landed yet.
        with db.writing(archive.sessions) as session:
            found = removal.select_removal(session, study)
            assert found is not None and sorted(found.blob_keys) == sorted(keys)
            removal.remove(session, found, datetime.now(UTC))
            session.flush()
            sweeper.start()
            sweeper.join(timeout=1.0)
            assert sweeper.is_alive(), "the sweep judged the files before the delete's transaction ended"
        sweeper.join(timeout=30)
        assert not sweeper.is_alive()
        assert not any(archive.blobs.path(key).exists() for key in keys)
        assert not list(archive.blobs.tmp.iterdir())
        assert assert_consistent(archive) == 0
        archive.close()
