"""Removing studies, series and instances from the index; every function takes the caller's Session.

A removal is two calls in one write transaction: ``select_removal`` locks the study row (as
ingest does, so counts never race a concurrent store) and names the instances and their blob
keys; the caller marks those files for deletion; ``remove`` then deletes the rows and brings
what the study and series rows record (counts, ModalitiesInStudy, SOPClassesInStudy) back in
line with what is left. A series left empty goes, then a study left empty, then a patient left
without studies: the index keeps no demographics for data it no longer holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xdsi.repository.index import study_sets
from xdsi.repository.models import (
    Instance,
    InstanceMetadata,
    Patient,
    RequestAttribute,
    Series,
    Study,
)

_CHUNK = 500  # ids per IN list: far below every driver's bound-parameter limit


@dataclass(frozen=True)
class Removal:
    """The instances a removal takes, found under the study row's lock."""

    study_id: int
    patient_id: int
    series_ids: tuple[int, ...]
    instance_ids: tuple[int, ...]
    blob_keys: tuple[str, ...]


@dataclass(frozen=True)
class Removed:
    """How much of the hierarchy went."""

    instances: int
    series: int
    study: bool
    patient: bool


def select_removal(
    session: Session, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
) -> Removal | None:
    """The instances of the study (series, instance) to remove, or None if there are none."""
    study = session.execute(
        select(Study.id, Study.patient_fk).where(Study.study_uid == study_uid).with_for_update(of=Study)
    ).first()
    if study is None:
        return None
    statement = (
        select(Instance.id, Instance.series_fk, Instance.blob_key)
        .join(Series, Instance.series_fk == Series.id)
        .where(Series.study_fk == study.id)
    )
    if series_uid is not None:
        statement = statement.where(Series.series_uid == series_uid)
    if sop_instance_uid is not None:
        statement = statement.where(Instance.sop_instance_uid == sop_instance_uid)
    rows = session.execute(statement).all()
    if not rows:
        return None
    return Removal(
        study_id=study.id,
        patient_id=study.patient_fk,
        series_ids=tuple(sorted({row.series_fk for row in rows})),
        instance_ids=tuple(row.id for row in rows),
        blob_keys=tuple(row.blob_key for row in rows),
    )


def remove(session: Session, removal: Removal, now: datetime) -> Removed:
    """Delete the rows of ``removal`` and recount what remains of its study."""
    for ids in _chunks(removal.instance_ids):
        session.execute(delete(InstanceMetadata).where(InstanceMetadata.instance_fk.in_(ids)))
        session.execute(delete(Instance).where(Instance.id.in_(ids)))
    remaining = select(func.count()).where(Instance.series_fk == Series.id).scalar_subquery()
    session.execute(
        update(Series).where(Series.id.in_(removal.series_ids)).values(number_of_instances=remaining)
    )
    emptied = session.scalars(
        select(Series.id).where(Series.id.in_(removal.series_ids), Series.number_of_instances == 0)
    ).all()
    if emptied:
        session.execute(delete(RequestAttribute).where(RequestAttribute.series_fk.in_(emptied)))
        session.execute(delete(Series).where(Series.id.in_(emptied)))
    counts = session.execute(
        select(func.count(), func.coalesce(func.sum(Series.number_of_instances), 0))
        .where(Series.study_fk == removal.study_id)
    ).one()
    series_left, instances_left = counts
    if series_left:
        modalities, classes = study_sets(session, removal.study_id)
        session.execute(update(Study).where(Study.id == removal.study_id).values(
            number_of_series=series_left, number_of_instances=instances_left,
            modalities_in_study=modalities, sop_classes_in_study=classes, updated_at=now,
        ))
        # Metadata answers date themselves by their series' updated_at (Last-Modified): the study's
        # answer changed although its remaining series did not, so they all move forward.
        session.execute(update(Series).where(Series.study_fk == removal.study_id).values(updated_at=now))
        return Removed(len(removal.instance_ids), len(emptied), study=False, patient=False)
    session.execute(delete(Study).where(Study.id == removal.study_id))
    return Removed(len(removal.instance_ids), len(emptied), study=True,
                   patient=remove_patient_if_unused(session, removal.patient_id))


def remove_patient_if_unused(session: Session, patient_id: int) -> bool:
    """Delete the patient row if no study refers to it any more.

    On PostgreSQL a concurrent store may file a new study under this patient between the check
    and the delete; the foreign key then refuses the delete, and the row rightly stays.
    """
    try:
        with session.begin_nested():
            result = session.execute(
                delete(Patient).where(Patient.id == patient_id, ~exists().where(Study.patient_fk == patient_id))
            )
    except IntegrityError:
        return False
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]
