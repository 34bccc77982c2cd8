"""Index writes (``repository.ingest``) on a real SQLite or PostgreSQL index, without a blob store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.dicomfiles import make_dataset
from xdsi.dicom.attributes import index_keys
from xdsi.errors import HierarchyConflict
from xdsi.repository import db, index, ingest
from xdsi.repository.models import Patient, RequestAttribute, Series, Study

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.create_engine_for(database_url)
    yield db.make_session_factory(engine)
    engine.dispose()


def entry(ds: Dataset, content: bytes = b"") -> ingest.NewInstance:
    """``ds`` as ingest sees it; ``content`` stands for the file's bytes (its digest tells versions apart)."""
    digest = hashlib.sha256(ds.SOPInstanceUID.encode() + content).hexdigest()
    blob = ingest.StoredBlob(f"objects/{digest}.dcm", 100, digest, ExplicitVRLittleEndian, None, None)
    metadata = b'{"00080018":{"vr":"UI","Value":["%s"]}}' % ds.SOPInstanceUID.encode()
    return ingest.NewInstance(index_keys(ds), blob, metadata)


def add(sessions: sessionmaker[Session], *datasets: Dataset) -> list[list[str] | HierarchyConflict]:
    with db.writing(sessions) as session:
        return ingest.add_instances(session, [entry(ds) for ds in datasets], NOW)


def study_row(session: Session, study_uid: str) -> Study:
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    assert study is not None
    return study


def test_a_new_instance_fills_every_level(sessions: sessionmaker[Session]) -> None:
    ds = make_dataset(patient_name="Müller^Jürgen", StudyTime="1015", TimezoneOffsetFromUTC="+0100")
    assert add(sessions, ds) == [[]]
    with sessions() as session:
        assert index.counts(session) == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
        study = study_row(session, ds.StudyInstanceUID)
        assert (study.number_of_series, study.number_of_instances) == (1, 1)
        assert (study.modalities_in_study, study.sop_classes_in_study) == ("CT", ds.SOPClassUID)
        assert study.study_time_key == "101500.000000"  # type: ignore[attr-defined]
        assert study.study_datetime_utc == "20240102091500.000000"
        assert study.referring_family == "smith"  # type: ignore[attr-defined]
        assert study.patient.patient_name == "Müller^Jürgen"  # type: ignore[attr-defined]
        assert study.patient.name_folded == "muller^jurgen"  # type: ignore[attr-defined]
        instance = index.find_instance(session, ds.SOPInstanceUID)
        assert instance is not None
        assert (instance.rows, instance.columns, instance.bits_allocated) == (4, 4, 16)  # type: ignore[attr-defined]
        assert instance.series.series_uid == ds.SeriesInstanceUID


def test_a_batch_counts_series_instances_and_the_study_sets(sessions: sessionmaker[Session]) -> None:
    study_uid, ct, mr = generate_uid(), generate_uid(), generate_uid()
    other = make_dataset(patient_id="PAT-2")
    batch = [make_dataset(study_uid=study_uid, series_uid=ct) for _ in range(3)]
    batch += [make_dataset(study_uid=study_uid, series_uid=mr, modality="MR",
                           sop_class_uid="1.2.840.10008.5.1.4.1.1.4")]
    assert add(sessions, *batch, other) == [[]] * 5
    with sessions() as session:
        study = study_row(session, study_uid)
        assert (study.number_of_series, study.number_of_instances) == (2, 4)
        assert study.modalities_in_study == "CT\\MR"
        assert study.sop_classes_in_study == "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.4"
        per_series = dict(session.execute(select(Series.series_uid, Series.number_of_instances)).all())
        assert per_series == {ct: 3, mr: 1, other.SeriesInstanceUID: 1}
        assert index.counts(session) == {"patients": 2, "studies": 2, "series": 3, "instances": 5}
    assert add(sessions, make_dataset(study_uid=study_uid, series_uid=mr, modality="MR")) == [[]]
    with sessions() as session:
        study = study_row(session, study_uid)
        assert (study.number_of_series, study.number_of_instances) == (2, 5)


def test_the_same_sop_instance_uid_twice_is_refused_by_the_database(sessions: sessionmaker[Session]) -> None:
    ds = make_dataset()
    add(sessions, ds)
    with pytest.raises(IntegrityError), db.writing(sessions) as session:
        ingest.add_instances(session, [entry(ds, b"other content")], NOW)
    with sessions() as session:
        assert index.counts(session)["instances"] == 1


def test_a_later_instance_that_disagrees_is_indexed_with_warnings(sessions: sessionmaker[Session]) -> None:
    first = make_dataset()
    later = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                         patient_name="Doe^Jane", StudyDescription="Other", SeriesNumber=7)
    add(sessions, first)
    (warnings,) = add(sessions, later)
    assert warnings == [
        "patient patient_name: index keeps 'Doe^John', instance has 'Doe^Jane'",
        "study study_description: index keeps 'Test study', instance has 'Other'",
        "series series_number: index keeps 1, instance has 7",
    ]
    with sessions() as session:
        study = study_row(session, first.StudyInstanceUID)
        assert study.patient.patient_name == "Doe^John"  # type: ignore[attr-defined]
        assert study.number_of_instances == 2


def test_a_study_filed_under_another_patient_refuses_only_that_instance(sessions: sessionmaker[Session]) -> None:
    first = make_dataset()
    add(sessions, first)
    wrong = make_dataset(study_uid=first.StudyInstanceUID, patient_id="PAT-9")
    right = make_dataset(study_uid=first.StudyInstanceUID)
    conflict, warnings = add(sessions, wrong, right)
    assert isinstance(conflict, HierarchyConflict)
    assert "filed under Patient ID 'PAT-1'" in str(conflict)
    assert conflict.sop_instance_uid == wrong.SOPInstanceUID
    assert warnings == []
    with sessions() as session:
        assert index.find_instance(session, wrong.SOPInstanceUID) is None
        assert study_row(session, first.StudyInstanceUID).number_of_instances == 2


def test_a_series_filed_under_another_study_is_refused(sessions: sessionmaker[Session]) -> None:
    first = make_dataset()
    add(sessions, first)
    stray = make_dataset(series_uid=first.SeriesInstanceUID)
    (conflict,) = add(sessions, stray)
    assert isinstance(conflict, HierarchyConflict)
    assert f"filed under study {first.StudyInstanceUID}" in str(conflict)
    with db.writing(sessions) as session, pytest.raises(HierarchyConflict):
        ingest.add_instance(session, entry(stray), NOW)
    with sessions() as session:
        assert index.counts(session) == {"patients": 1, "studies": 1, "series": 1, "instances": 1}


def test_studies_without_a_patient_id_never_share_a_patient(sessions: sessionmaker[Session]) -> None:
    add(sessions, make_dataset(patient_id=""), make_dataset(patient_id=""))
    with sessions() as session:
        assert session.scalars(select(Patient.patient_id)).all() == [None, None]


def request_item(procedure: str) -> Dataset:
    item = Dataset()
    item.RequestedProcedureID = procedure
    item.ScheduledProcedureStepID = "SPS-" + procedure
    return item


def replace(sessions: sessionmaker[Session], ds: Dataset) -> list[str]:
    with db.writing(sessions) as session:
        return ingest.replace_instance(session, entry(ds, b"corrected"), NOW)


def test_a_correction_replaces_the_values_of_every_level(sessions: sessionmaker[Session]) -> None:
    first = make_dataset(RequestAttributesSequence=[request_item("RP-1")])
    sibling = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
    add(sessions, first, sibling)
    corrected = make_dataset(
        study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID, sop_uid=first.SOPInstanceUID,
        patient_name="Doe^Jane", StudyDescription="Corrected", SeriesDescription="Fixed", modality="MR",
        RequestAttributesSequence=[request_item("RP-2")],
    )
    assert replace(sessions, corrected) == []
    with sessions() as session:
        study = study_row(session, first.StudyInstanceUID)
        assert study.patient.patient_name == "Doe^Jane"  # type: ignore[attr-defined]
        assert study.patient.name_given == "jane"  # type: ignore[attr-defined]
        assert study.study_description == "Corrected"  # type: ignore[attr-defined]
        assert study.modalities_in_study == "MR"
        assert (study.number_of_series, study.number_of_instances) == (1, 2)
        series = session.scalar(select(Series).where(Series.series_uid == first.SeriesInstanceUID))
        assert series is not None and series.number_of_instances == 2
        assert series.series_description == "Fixed"  # type: ignore[attr-defined]
        assert session.scalars(select(RequestAttribute.requested_procedure_id)).all() == ["RP-2"]
        instance = index.find_instance(session, first.SOPInstanceUID)
        assert instance is not None and instance.sha256 == entry(corrected, b"corrected").blob.sha256
        assert index.counts(session) == {"patients": 1, "studies": 1, "series": 1, "instances": 2}


@pytest.mark.parametrize("siblings", [0, 1], ids=["only-instance", "with-sibling"])
def test_a_correction_may_move_a_study_to_another_patient(sessions: sessionmaker[Session], siblings: int) -> None:
    first = make_dataset()
    add(sessions, first, *(make_dataset(study_uid=first.StudyInstanceUID) for _ in range(siblings)))
    moved = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                         sop_uid=first.SOPInstanceUID, patient_id="PAT-2", patient_name="Roe^Richard")
    replace(sessions, moved)
    with sessions() as session:
        study = study_row(session, first.StudyInstanceUID)
        patient = study.patient
        assert (patient.patient_id, patient.patient_name) == ("PAT-2", "Roe^Richard")  # type: ignore[attr-defined]
        assert study.number_of_instances == 1 + siblings
        # The old patient record has no study left: it goes.
        assert session.scalars(select(Patient.patient_id)).all() == ["PAT-2"]


def test_a_correction_of_one_study_into_another_moves_the_instance(sessions: sessionmaker[Session]) -> None:
    first, elsewhere = make_dataset(), make_dataset()
    kept = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
    add(sessions, first, kept, elsewhere)
    moved = make_dataset(study_uid=elsewhere.StudyInstanceUID, series_uid=elsewhere.SeriesInstanceUID,
                         sop_uid=first.SOPInstanceUID)
    replace(sessions, moved)
    with sessions() as session:
        assert study_row(session, first.StudyInstanceUID).number_of_instances == 1
        assert study_row(session, elsewhere.StudyInstanceUID).number_of_instances == 2
        assert index.counts(session)["instances"] == 3


def test_a_correction_into_a_series_of_another_study_keeps_the_old_instance(
    sessions: sessionmaker[Session],
) -> None:
    first, other = make_dataset(), make_dataset()
    add(sessions, first, other)
    stray = make_dataset(study_uid=first.StudyInstanceUID, series_uid=other.SeriesInstanceUID,
                         sop_uid=first.SOPInstanceUID)
    with db.writing(sessions) as session, pytest.raises(HierarchyConflict), session.begin_nested():
        ingest.replace_instance(session, entry(stray, b"corrected"), NOW)
    with sessions() as session:
        instance = index.find_instance(session, first.SOPInstanceUID)
        assert instance is not None and instance.sha256 == entry(first).blob.sha256
        assert index.counts(session) == {"patients": 1, "studies": 2, "series": 2, "instances": 2}
