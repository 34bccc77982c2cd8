"""Lookups on the index: what is stored where, for retrieval, reports and ingest's duplicate check.

Every function takes the caller's Session; the writes are in ``repository.ingest`` and
``repository.removal``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Select, bindparam, func, select
from sqlalchemy.orm import Session

from xdsi.repository import visibility
from xdsi.repository.models import Instance, InstanceMetadata, Patient, Series, Study, table_of

_INSTANCE = table_of(Instance)
Statement = Select[*tuple[Any, ...]]


def find_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    """The instance, wherever it is; None when absent or of a patient ``session`` may not see."""
    statement = select(Instance).where(Instance.sop_instance_uid == sop_instance_uid)
    if visibility.issuers(session) is not None:
        statement = (statement.join(Series, Instance.series_fk == Series.id).join(Study, Series.study_fk == Study.id)
                     .join(Patient, Study.patient_fk == Patient.id).where(visibility.condition()))
    return session.scalar(statement, visibility.parameters(session))


def stored_digests(session: Session, sop_instance_uids: list[str]) -> dict[str, str]:
    """SOP Instance UID -> sha256 for those of ``sop_instance_uids`` that are indexed."""
    rows = session.connection().execute(_digests_statement(), {"uids": sop_instance_uids})
    return {uid: digest for uid, digest in rows}


@cache
def _digests_statement() -> Statement:
    return select(Instance.sop_instance_uid, Instance.sha256).where(
        Instance.sop_instance_uid.in_(bindparam("uids", expanding=True)))


def is_blob_referenced(session: Session, key: str) -> bool:
    return session.scalar(select(Instance.id).where(Instance.blob_key == key)) is not None


def study_sets(session: Session, study_id: int) -> tuple[str, str]:
    """ModalitiesInStudy and SOPClassesInStudy of what the study holds now, as stored in its row."""
    modalities = session.scalars(
        select(table_of(Series).c.modality).where(Series.study_fk == study_id).distinct()
    ).all()
    classes = session.scalars(
        select(Instance.sop_class_uid).join(Series).where(Series.study_fk == study_id).distinct()
    ).all()
    return "\\".join(sorted(m for m in modalities if m)), "\\".join(sorted(classes))


def counts(session: Session) -> dict[str, int]:
    """Rows per level (for reports and checks)."""
    return {
        "patients": session.scalar(select(func.count()).select_from(Patient)) or 0,
        "studies": session.scalar(select(func.count()).select_from(Study)) or 0,
        "series": session.scalar(select(func.count()).select_from(Series)) or 0,
        "instances": session.scalar(select(func.count()).select_from(Instance)) or 0,
    }


@dataclass(frozen=True)
class StoredInstance:
    """What retrieving one instance needs to know, from one index row."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    size: int
    sha256: str
    number_of_frames: int | None
    pixel_data_offset: int | None
    pixel_data_length: int | None
    frame_table: bytes | None
    received_at: datetime


_STORED_COLUMNS = (
    Study.study_uid, Series.series_uid, Instance.sop_instance_uid, Instance.sop_class_uid,
    Instance.transfer_syntax_uid, Instance.blob_key, Instance.size, Instance.sha256, _INSTANCE.c.number_of_frames,
    Instance.pixel_data_offset, Instance.pixel_data_length, Instance.frame_table, Instance.received_at,
)


def stored_instances(
    session: Session, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[StoredInstance]:
    """The instances of a study, series or single instance, in series then instance number order;
    none of a patient ``session`` may not see."""
    limited = visibility.parameters(session)
    statement = _stored_statement(series_uid is not None, sop_instance_uid is not None, bool(limited))
    params = {"study": study_uid, "series": series_uid, "instance": sop_instance_uid, **limited}
    connection = session.connection()
    if limited:
        return [StoredInstance(*row) for row in connection.execute(statement, params)]
    return [StoredInstance(*row) for row in _direct(connection, statement, params)]


@dataclass(frozen=True)
class _DriverForm:
    """A statement as the driver runs it: its SQL, how its parameters are passed, and the conversion of
    each result column SQLAlchemy would apply (a SQLite DATETIME arrives as text)."""

    sql: str
    positions: tuple[str, ...] | None
    converters: tuple[Callable[[Any], Any] | None, ...]


@lru_cache(maxsize=16)
def _driver_form(statement: Statement, dialect: Dialect) -> _DriverForm:
    compiled = statement.compile(dialect=dialect)
    converters = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                       for column in statement.selected_columns)
    positions = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    return _DriverForm(compiled.string, positions, converters)


def _direct(connection: Connection, statement: Statement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of ``statement`` (of plain bound values, none expanding) read through the driver's cursor, in
    the connection's transaction. Retrieval is the hot path of every WADO request: SQLAlchemy's execution
    context and result objects cost several times the query of one instance, and add nothing to a
    column select."""
    form = _driver_form(statement, connection.dialect)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(form.sql, params if form.positions is None else [params[name] for name in form.positions])
        rows = cursor.fetchall()
    finally:
        cursor.close()
    converters = form.converters
    if not any(converters):
        return rows
    return [tuple(value if convert is None or value is None else convert(value)
                  for convert, value in zip(converters, row, strict=True)) for row in rows]


@lru_cache(maxsize=8)
def _stored_statement(by_series: bool, by_instance: bool, limited: bool) -> Statement:
    """Built once: retrieval is the hot path, and composing a statement costs more than running it."""
    return _in_target(select(*_STORED_COLUMNS).select_from(Instance), by_series, by_instance, limited)


def _in_target(statement: Statement, by_series: bool, by_instance: bool, limited: bool) -> Statement:
    """``statement`` over Instance narrowed to the bound study (series, instance), in retrieval order;
    ``limited``: and to a patient of the bound issuers."""
    statement = (
        statement.join(Series, Instance.series_fk == Series.id)
        .join(Study, Series.study_fk == Study.id)
        .where(Study.study_uid == bindparam("study"))
    )
    if limited:
        statement = statement.join(Patient, Study.patient_fk == Patient.id).where(visibility.condition())
    if by_series:
        statement = statement.where(Series.series_uid == bindparam("series"))
    if by_instance:
        statement = statement.where(Instance.sop_instance_uid == bindparam("instance"))
    return statement.order_by(table_of(Series).c.series_number, Series.id, _INSTANCE.c.instance_number, Instance.id)


def metadata_listing(
    session: Session, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None,
) -> tuple[list[int], datetime | None]:
    """The instances whose cached metadata answers the target (same order and visibility as
    ``stored_instances``), and when that metadata last changed. Ids only: the fragments are read
    in batches by ``metadata_of``, so a study of any size is never held whole."""
    limited = visibility.parameters(session)
    statement = _listing_statement(series_uid is not None, sop_instance_uid is not None, bool(limited))
    params = {"study": study_uid, "series": series_uid, "instance": sop_instance_uid, **limited}
    rows = session.connection().execute(statement, params).all()  # plain rows, as in stored_instances
    return [row[0] for row in rows], max((row[1] for row in rows), default=None)


@lru_cache(maxsize=8)
def _listing_statement(by_series: bool, by_instance: bool, limited: bool) -> Statement:
    statement = select(Instance.id, Series.updated_at).select_from(Instance)
    return _in_target(statement, by_series, by_instance, limited)


def metadata_of(session: Session, instance_ids: Sequence[int]) -> dict[int, bytes]:
    """Instance id -> its cached metadata fragment, for those of ``instance_ids`` still indexed."""
    rows = session.connection().execute(_metadata_statement(), {"ids": list(instance_ids)})
    return {instance_id: fragment for instance_id, fragment in rows}


@cache
def _metadata_statement() -> Statement:
    return select(InstanceMetadata.instance_fk, InstanceMetadata.json).where(
        InstanceMetadata.instance_fk.in_(bindparam("ids", expanding=True)))


def study_patients(session: Session, study_uids: list[str]) -> dict[str, tuple[str | None, str]]:
    """Study Instance UID → (Patient ID, Issuer of Patient ID) of its patient, for the studies that exist."""
    rows = session.execute(
        select(Study.study_uid, Patient.patient_id, Patient.issuer_of_patient_id)
        .join(Patient, Study.patient_fk == Patient.id)
        .where(Study.study_uid.in_(study_uids))
    )
    return {study_uid: (patient_id, issuer) for study_uid, patient_id, issuer in rows}
