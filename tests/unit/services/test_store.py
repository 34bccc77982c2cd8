"""Storing instances: outcomes, duplicate policies, hierarchy rules, bad input, nothing partial."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from sqlalchemy import event, select, text

from tests.conftest import make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, make_instance, to_bytes, with_raw_uid, without
from xdsi.errors import (
    BadAttribute,
    DuplicateConflict,
    HierarchyConflict,
    InstanceTooLarge,
    MalformedDicom,
    MissingAttribute,
    NotDicom,
    StudyMismatch,
    UnsupportedSOPClass,
)
from xdsi.repository import db, index
from xdsi.repository.models import Instance, InstanceMetadata, Patient, Series, Study
from xdsi.services.archive import Archive
from xdsi.services.metadata import xml_of
from xdsi.services.store import Status


def store(archive: Archive, *payloads: bytes, study_uid: str | None = None):  # type: ignore[no-untyped-def]
    return archive.store.store((io.BytesIO(p) for p in payloads), study_uid=study_uid)


def counts(archive: Archive) -> dict[str, int]:
    with archive.sessions() as session:
        return index.counts(session)


def test_store_one_instance(archive: Archive) -> None:
    ds = make_dataset(patient_name="Müller^Jürgen", modality="MR")
    [outcome] = store(archive, to_bytes(ds))
    assert outcome.status is Status.STORED, outcome.reason
    assert outcome.sop_instance_uid == ds.SOPInstanceUID
    with archive.sessions() as session:
        instance = session.scalar(select(Instance))
        assert instance is not None and instance.sop_instance_uid == ds.SOPInstanceUID
        assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
        study = instance.series.study
        assert study.study_uid == ds.StudyInstanceUID
        assert study.modalities_in_study == "MR"
        assert study.patient.patient_name == "Müller^Jürgen"
        assert study.patient.name_family == "müller"
        assert (study.number_of_series, study.number_of_instances) == (1, 1)
        fragment = session.get(InstanceMetadata, instance.id)
        assert fragment is not None and b"/bulkdata/7FE00010" in fragment.json
        assert b"/bulkdata/7FE00010" in xml_of(fragment.json)
    assert assert_consistent(archive) == 1


def test_stored_bytes_are_kept_as_received(archive: Archive) -> None:
    ds = make_dataset(rows=16, columns=16)
    data = to_bytes(ds)
    store(archive, data)
    with archive.sessions() as session:
        instance = session.scalar(select(Instance))
        assert instance is not None
        assert archive.blobs.path(instance.blob_key).read_bytes() == data
        assert instance.pixel_data_offset is not None
        start = instance.pixel_data_offset
        assert data[start : start + instance.pixel_data_length] == ds.PixelData


def test_identical_duplicate_is_success_without_a_second_file(archive: Archive) -> None:
    data = make_instance()
    store(archive, data)
    [again] = store(archive, data)
    assert again.status is Status.DUPLICATE
    assert counts(archive)["instances"] == 1
    assert assert_consistent(archive) == 1


def test_conflicting_duplicate_is_rejected_by_default(archive: Archive) -> None:
    first = make_dataset()
    second = make_dataset(sop_uid=first.SOPInstanceUID, study_uid=first.StudyInstanceUID,
                          series_uid=first.SeriesInstanceUID, InstanceNumber=2)
    store(archive, to_bytes(first))
    [outcome] = store(archive, to_bytes(second))
    assert outcome.status is Status.FAILED
    assert isinstance(outcome.error, DuplicateConflict)
    assert "already stored with different content" in outcome.reason
    with archive.sessions() as session:
        assert session.scalar(select(Instance.instance_number)) == 1
    assert_consistent(archive)


def test_overwrite_policy_replaces_and_deletes_the_old_file(database_url: str, tmp_path: Path) -> None:
    archive = Archive.open(make_settings(database_url, tmp_path / "store", duplicate_policy="overwrite"))
    archive.prepare()
    try:
        first = make_dataset(StudyDescription="Old")
        second = make_dataset(sop_uid=first.SOPInstanceUID, study_uid=first.StudyInstanceUID,
                              series_uid=first.SeriesInstanceUID, StudyDescription="Corrected")
        store(archive, to_bytes(first))
        [outcome] = store(archive, to_bytes(second))
        assert outcome.status is Status.REPLACED
        with archive.sessions() as session:
            study = session.scalar(select(Study))
            assert study is not None and study.study_description == "Corrected"
            assert (study.number_of_series, study.number_of_instances) == (1, 1)
        assert assert_consistent(archive) == 1
    finally:
        archive.close()


def test_overwrite_can_move_an_instance_to_another_study(database_url: str, tmp_path: Path) -> None:
    archive = Archive.open(make_settings(database_url, tmp_path / "store", duplicate_policy="overwrite"))
    archive.prepare()
    try:
        first = make_dataset()
        moved = make_dataset(sop_uid=first.SOPInstanceUID)
        store(archive, to_bytes(first))
        [outcome] = store(archive, to_bytes(moved))
        assert outcome.status is Status.REPLACED
        with archive.sessions() as session:
            assert session.scalars(select(Study.study_uid)).all() == [moved.StudyInstanceUID]
            assert session.scalars(select(Series.series_uid)).all() == [moved.SeriesInstanceUID]
        assert assert_consistent(archive) == 1
    finally:
        archive.close()


def test_ignore_policy_keeps_the_first(database_url: str, tmp_path: Path) -> None:
    archive = Archive.open(make_settings(database_url, tmp_path / "store", duplicate_policy="ignore"))
    archive.prepare()
    try:
        first = make_dataset(InstanceNumber=1)
        second = make_dataset(sop_uid=first.SOPInstanceUID, study_uid=first.StudyInstanceUID,
                              series_uid=first.SeriesInstanceUID, InstanceNumber=7)
        store(archive, to_bytes(first))
        [outcome] = store(archive, to_bytes(second))
        assert outcome.status is Status.IGNORED and outcome.warnings
        with archive.sessions() as session:
            assert session.scalar(select(Instance.instance_number)) == 1
        assert assert_consistent(archive) == 1
    finally:
        archive.close()


def test_study_of_another_patient_is_refused(archive: Archive) -> None:
    first = make_dataset(patient_id="A")
    other = make_dataset(patient_id="B", study_uid=first.StudyInstanceUID)
    store(archive, to_bytes(first))
    [outcome] = store(archive, to_bytes(other))
    assert isinstance(outcome.error, HierarchyConflict)
    assert "filed under Patient ID 'A'" in outcome.reason
    assert counts(archive)["instances"] == 1
    assert_consistent(archive)


def test_series_of_another_study_is_refused(archive: Archive) -> None:
    first = make_dataset()
    other = make_dataset(series_uid=first.SeriesInstanceUID)
    store(archive, to_bytes(first))
    [outcome] = store(archive, to_bytes(other))
    assert isinstance(outcome.error, HierarchyConflict)
    assert counts(archive)["instances"] == 1
    assert_consistent(archive)


def test_later_instance_with_other_attributes_keeps_the_first_and_warns(archive: Archive) -> None:
    first = make_dataset(StudyDescription="Chest", patient_name="Doe^John")
    second = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                          StudyDescription="CHEST CT", patient_name="Doe^Johnny", InstanceNumber=2)
    store(archive, to_bytes(first))
    [outcome] = store(archive, to_bytes(second))
    assert outcome.status is Status.STORED
    assert any("study_description" in w and "'Chest'" in w for w in outcome.warnings)
    assert any("patient_name" in w for w in outcome.warnings)
    with archive.sessions() as session:
        study = session.scalar(select(Study))
        assert study is not None and study.study_description == "Chest"
        assert study.patient.patient_name == "Doe^John"
        assert study.number_of_instances == 2


def test_counts_and_computed_sets(archive: Archive) -> None:
    study = generate_uid()
    ct, mr = generate_uid(), generate_uid()
    payloads = [to_bytes(make_dataset(study_uid=study, series_uid=ct, modality="CT")) for _ in range(3)]
    payloads.append(to_bytes(make_dataset(study_uid=study, series_uid=mr, modality="MR",
                                          sop_class_uid="1.2.840.10008.5.1.4.1.1.4")))
    assert all(o.status is Status.STORED for o in store(archive, *payloads))
    with archive.sessions() as session:
        row = session.scalar(select(Study))
        assert row is not None
        assert (row.number_of_series, row.number_of_instances) == (2, 4)
        assert row.modalities_in_study == "CT\\MR"
        assert row.sop_classes_in_study == "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.4"
        assert sorted(session.scalars(select(Series.number_of_instances))) == [1, 3]


def test_studies_without_patient_id_do_not_share_a_patient(archive: Archive) -> None:
    one = make_dataset(patient_id="", patient_name="Anon^One")
    two = make_dataset(patient_id="", patient_name="Anon^One")  # the same name: still someone else
    three = make_dataset(patient_id="", patient_name="Anon^One", study_uid=one.StudyInstanceUID)
    store(archive, to_bytes(one), to_bytes(two), to_bytes(three))
    with archive.sessions() as session:
        assert sorted(session.scalars(select(Patient.patient_name))) == ["Anon^One", "Anon^One"]
        studies = session.scalars(select(Study)).all()
        assert len(studies) == 2 and studies[0].patient_fk != studies[1].patient_fk


def test_study_targeted_store_refuses_other_studies(archive: Archive) -> None:
    ds = make_dataset()
    [outcome] = store(archive, to_bytes(ds), study_uid=generate_uid())
    assert isinstance(outcome.error, StudyMismatch)
    assert counts(archive)["instances"] == 0
    assert_consistent(archive)


def test_unsupported_sop_class(archive: Archive) -> None:
    [outcome] = store(archive, make_instance(sop_class_uid="1.2.840.10008.1.3.10"))
    assert isinstance(outcome.error, UnsupportedSOPClass)
    assert_consistent(archive)


@pytest.mark.parametrize("name", ["DICOMDIR-empty.dcm", "DICOMDIR-nopatient", "DICOMDIR"])
def test_a_dicomdir_is_refused_as_a_directory_not_as_a_broken_instance(archive: Archive, name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    [outcome] = store(archive, Path(path).read_bytes())
    assert isinstance(outcome.error, UnsupportedSOPClass)
    assert "DICOMDIR (Media Storage Directory)" in outcome.reason
    assert counts(archive)["instances"] == 0
    assert_consistent(archive)


def test_one_bad_instance_does_not_lose_the_good_ones(archive: Archive) -> None:
    good = [make_instance() for _ in range(3)]
    outcomes = store(archive, good[0], b"not dicom at all", good[1], make_instance()[:300], good[2])
    assert [o.status for o in outcomes] == [Status.STORED, Status.FAILED, Status.STORED, Status.FAILED,
                                            Status.STORED]
    assert assert_consistent(archive) == 3


def _four_gigabytes() -> bytes:
    data = make_instance()
    position = data.index(b"\xe0\x7f\x10\x00OW")
    return data[: position + 8] + struct.pack("<L", 0xFFFFFFF0) + data[position + 12:]


def _deflate_bomb() -> bytes:
    head = to_bytes(make_dataset(transfer_syntax=DeflatedExplicitVRLittleEndian))
    meta_length = struct.unpack("<L", head[140:144])[0]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    header = struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OB", 1 << 30)
    zeros = b"\0" * (1 << 20)
    body = compressor.compress(header) + b"".join(compressor.compress(zeros) for _ in range(1024))
    return head[: 144 + meta_length] + body + compressor.flush()


def _cut_inside_study_uid() -> bytes:
    """A file ending two bytes into the Study Instance UID's value: a cut at a fixed offset could
    fall between two elements, which leaves a well-formed data set without the attributes after it."""
    data = make_instance()
    at = data.index(b"\x20\x00\x0d\x00UI")  # (0020,000D) in Explicit VR Little Endian
    return data[: at + 8 + 2]


BAD_INPUT = {
    "empty": (lambda: b"", NotDicom, "DICM"),
    "non-dicom": (lambda: b"GIF89a" + bytes(500), NotDicom, "DICM"),
    "truncated-header": (lambda: _cut_inside_study_uid(), MalformedDicom, "truncated|declares|ends"),
    "truncated-pixels": (lambda: make_instance(rows=64, columns=64)[:-100], MalformedDicom, "declares"),
    "missing-sop-instance-uid": (lambda: without("SOPInstanceUID"), MissingAttribute, "SOPInstanceUID"),
    "missing-study-uid": (lambda: without("StudyInstanceUID"), MissingAttribute, "StudyInstanceUID"),
    "uid-with-slash": (lambda: with_raw_uid(0x00080018, b"1.2/3.4"), BadAttribute, "not a valid UID"),
    "uid-with-dotdot": (lambda: with_raw_uid(0x0020000D, b"1.2..3"), BadAttribute, "not a valid UID"),
    "uid-traversal": (lambda: with_raw_uid(0x0020000E, b"../../etc"), BadAttribute, "not a valid UID"),
    "uid-fullwidth-digits": (lambda: with_raw_uid(0x00080018, "1.２.3".encode()), BadAttribute,
                             "not a valid UID"),
    "uid-10000-chars": (lambda: with_raw_uid(0x00080018, b"1." * 4999 + b"12"), BadAttribute,
                        "not a valid UID"),
    "length-4GB": (_four_gigabytes, MalformedDicom, "declares 4294967280 bytes"),
    "deflate-bomb": (_deflate_bomb, InstanceTooLarge, "deflate bomb"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_rejected_with_a_reason_and_nothing_stored(archive: Archive, case: str) -> None:
    make, error, reason = BAD_INPUT[case]
    payload = make()
    tracemalloc.start()
    try:
        [outcome] = store(archive, payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status is Status.FAILED
    assert isinstance(outcome.error, error), outcome.reason
    assert re.search(reason, outcome.reason), outcome.reason
    assert peak < 2 * len(payload) + (16 << 20), f"peak Python allocation {peak} bytes"
    assert counts(archive) == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert assert_consistent(archive) == 0
    assert not any(archive.blobs.objects.rglob("*.dcm"))


def test_coercion_fills_issuer_of_patient_id_and_records_the_original(database_url: str, tmp_path: Path) -> None:
    import pydicom

    archive = Archive.open(make_settings(database_url, tmp_path / "store", coerce_issuer_of_patient_id="HOSP-A"))
    archive.prepare()
    try:
        without_issuer, with_issuer = make_dataset(), make_dataset(IssuerOfPatientID="OTHER")
        outcomes = store(archive, to_bytes(without_issuer), to_bytes(with_issuer))
        assert [o.coerced for o in outcomes] == [True, False]
        with archive.sessions() as session:
            row = index.find_instance(session, without_issuer.SOPInstanceUID)
            assert row is not None and row.series.study.patient.issuer_of_patient_id == "HOSP-A"
            stored = pydicom.dcmread(archive.blobs.path(row.blob_key))
        assert stored.IssuerOfPatientID == "HOSP-A"
        [item] = stored.OriginalAttributesSequence
        assert item.ReasonForTheAttributeModification == "COERCE"
        assert item.ModifiedAttributesSequence[0].IssuerOfPatientID == ""
        assert stored.PixelData == without_issuer.PixelData
        assert assert_consistent(archive) == 2
    finally:
        archive.close()


@contextlib.contextmanager
def writers_held(archive: Archive) -> Iterator[None]:
    """Hold the index's writers lock as another process's long transaction would."""
    engine = archive.engine
    if engine.dialect.name == "sqlite":
        fd = os.open(f"{engine.url.database}.writers", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    with engine.connect() as connection:  # what settle_writers takes
        transaction = connection.begin()
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": db._PG_WRITERS_LOCK})
        try:
            yield
        finally:
            transaction.rollback()


def store_concurrently(archive: Archive, payloads: list[bytes]) -> tuple[dict[int, list], list[threading.Thread]]:
    results: dict[int, list] = {}

    def run(number: int) -> None:
        results[number] = store(archive, payloads[number])

    threads = [threading.Thread(target=run, args=(number,)) for number in range(len(payloads))]
    for thread in threads:
        thread.start()
    return results, threads


def wait_for_group(archive: Archive, waiting: int) -> None:
    """Until one store leads (waiting for the writers lock) and ``waiting`` more queue behind it."""
    commits = archive.store._commits
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with commits._lock:
            if commits._busy and len(commits._queue) >= waiting:
                return
        time.sleep(0.01)
    raise AssertionError("the stores never queued")


def commit_count(archive: Archive) -> list[int]:
    committed = [0]

    @event.listens_for(archive.engine, "commit")
    def _count(_connection: object) -> None:
        committed[0] += 1

    return committed


def test_concurrent_stores_share_one_commit_and_each_answers_only_once_committed(archive: Archive) -> None:
    study, series = generate_uid(), generate_uid()
    datasets = [make_dataset(study_uid=study, series_uid=series, InstanceNumber=n) for n in range(8)]
    committed = commit_count(archive)
    with writers_held(archive):
        results, threads = store_concurrently(archive, [to_bytes(ds) for ds in datasets])
        wait_for_group(archive, 7)
        time.sleep(0.2)
        assert results == {} and all(thread.is_alive() for thread in threads)
        assert counts(archive)["instances"] == 0
        # Each file is in place, but not yet durable nor indexed: still under its writer's marker.
        assert len(list(archive.blobs.tmp.glob("*.link"))) == 8
    for thread in threads:
        thread.join(30)
    assert all(outcome.status is Status.STORED for [outcome] in results.values())
    assert committed[0] == 2  # the first store alone, then the seven that waited behind it together
    with archive.sessions() as session:
        row = session.scalar(select(Study).where(Study.study_uid == study))
        assert row is not None and (row.number_of_series, row.number_of_instances) == (1, 8)
        assert session.scalar(select(Series.number_of_instances).where(Series.series_uid == series)) == 8
    assert not list(archive.blobs.tmp.iterdir())
    assert assert_consistent(archive) == 8


def test_a_failing_instance_fails_alone_in_a_shared_commit(archive: Archive) -> None:
    """A hierarchy conflict and a duplicate conflict in the group cost their own requests only."""
    filed = make_dataset()
    [outcome] = store(archive, to_bytes(filed))
    assert outcome.status is Status.STORED
    study = generate_uid()
    good = [make_dataset(study_uid=study, series_uid=filed.SeriesInstanceUID if n < 0 else None) for n in range(6)]
    moved_series = make_dataset(study_uid=study, series_uid=filed.SeriesInstanceUID)
    conflicting = make_dataset(study_uid=filed.StudyInstanceUID, series_uid=filed.SeriesInstanceUID,
                               sop_uid=filed.SOPInstanceUID, patient_name="Other^Content")
    payloads = [to_bytes(ds) for ds in [*good[:3], moved_series, conflicting, *good[3:]]]
    committed = commit_count(archive)
    with writers_held(archive):
        results, threads = store_concurrently(archive, payloads)
        wait_for_group(archive, len(payloads) - 1)
    for thread in threads:
        thread.join(30)
    statuses = [results[number][0].status for number in range(len(payloads))]
    assert statuses == [Status.STORED] * 3 + [Status.FAILED, Status.FAILED] + [Status.STORED] * 3
    assert isinstance(results[3][0].error, HierarchyConflict)
    assert isinstance(results[4][0].error, DuplicateConflict)
    assert committed[0] == 2
    with archive.sessions() as session:
        row = session.scalar(select(Study).where(Study.study_uid == study))
        assert row is not None and row.number_of_instances == 6
    assert assert_consistent(archive) == 7


def test_a_shared_commit_that_fails_as_a_whole_is_retried_request_by_request(archive: Archive) -> None:
    """The group's transaction fails at its COMMIT (as a lost connection or a full disk would make it):
    each request's instances are then committed on their own, reported as that attempt found them."""
    study, series = generate_uid(), generate_uid()
    first = make_dataset(study_uid=study, series_uid=series, StudyDescription="first")
    [outcome] = store(archive, to_bytes(first))
    assert outcome.status is Status.STORED
    datasets = [make_dataset(study_uid=study, series_uid=series, StudyDescription="later") for _ in range(6)]
    commits = [0]

    @event.listens_for(archive.engine, "commit")
    def _fail_the_group(_connection: object) -> None:
        commits[0] += 1
        if commits[0] == 2:  # the lone leader's commit is the first; the shared one the second
            raise OSError("injected: the commit of the shared transaction fails")

    with writers_held(archive):
        results, threads = store_concurrently(archive, [to_bytes(ds) for ds in datasets])
        wait_for_group(archive, len(datasets) - 1)
    for thread in threads:
        thread.join(30)
    assert commits[0] == 2 + (len(datasets) - 1)  # the failed shared commit, then one per request
    for [outcome] in results.values():
        assert outcome.status is Status.STORED, outcome.reason
        assert outcome.warnings == ["study study_description: index keeps 'first', instance has 'later'"]
    with archive.sessions() as session:
        row = session.scalar(select(Study).where(Study.study_uid == study))
        assert row is not None and (row.number_of_series, row.number_of_instances) == (1, 7)
    assert not list(archive.blobs.tmp.iterdir())
    assert assert_consistent(archive) == 7


def statements_of(archive: Archive) -> list[str]:
    """Every SQL statement the archive's engine runs from now on."""
    seen: list[str] = []

    @event.listens_for(archive.engine, "before_cursor_execute")
    def _record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    return seen


def test_a_new_instance_is_indexed_without_a_savepoint(archive: Archive) -> None:
    """The common case, a new instance alone in its commit, runs no SAVEPOINT statements: only a UID
    sent twice in one commit, or a writer that got there first, makes the insert fail."""
    study, series = generate_uid(), generate_uid()
    [first] = store(archive, to_bytes(make_dataset(study_uid=study, series_uid=series)))
    seen = statements_of(archive)
    [outcome] = store(archive, to_bytes(make_dataset(study_uid=study, series_uid=series)))
    assert first.status is outcome.status is Status.STORED
    assert not [statement for statement in seen if "SAVEPOINT" in statement.upper()]
    assert sum(statement.lstrip().upper().startswith("INSERT INTO INSTANCE ") for statement in seen) == 1
    assert assert_consistent(archive) == 2


def test_a_new_uid_twice_in_one_commit_is_stored_once(archive: Archive) -> None:
    """The same new instance twice in one call, beside another new one: the insert without savepoints
    fails on the second copy, the transaction is done again instance by instance, and the counts
    hold each instance once."""
    study = generate_uid()
    twice, other = make_dataset(study_uid=study), make_dataset(study_uid=study)
    seen = statements_of(archive)
    outcomes = store(archive, to_bytes(twice), to_bytes(other), to_bytes(twice))
    assert [outcome.status for outcome in outcomes] == [Status.STORED, Status.STORED, Status.DUPLICATE]
    assert any("SAVEPOINT" in statement.upper() for statement in seen)  # the second, guarded attempt ran
    with archive.sessions() as session:
        row = session.scalar(select(Study).where(Study.study_uid == study))
        assert row is not None and (row.number_of_series, row.number_of_instances) == (2, 2)
    assert not list(archive.blobs.tmp.iterdir())
    assert assert_consistent(archive) == 2


def test_the_same_new_instance_from_concurrent_requests_is_stored_once(archive: Archive) -> None:
    """Four requests queued into one shared commit carry the same new instance: one stores it, three find it."""
    lone, dataset = make_dataset(), make_dataset()
    with writers_held(archive):
        results, threads = store_concurrently(archive, [to_bytes(lone)] + [to_bytes(dataset)] * 4)
        wait_for_group(archive, 4)  # the lone instance leads, the four copies wait behind it together
    for thread in threads:
        thread.join(30)
    assert results[0][0].status is Status.STORED
    statuses = sorted(results[number][0].status.value for number in range(1, 5))
    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    assert counts(archive)["instances"] == 2
    assert not list(archive.blobs.tmp.iterdir())
    assert assert_consistent(archive) == 2
