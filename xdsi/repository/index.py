"""Writes and lookups on the index; every function takes the caller's Session.

Hierarchy rules when a new instance arrives (documented in the README):

- A study belongs to one patient. An instance whose Study Instance UID is already filed under
  another (Patient ID, Issuer) is refused (``HierarchyConflict``); so is a series filed under
  another study. Mixing patients inside a study is a patient-safety error, not a correction.
- Otherwise the first instance of a patient, study or series sets its descriptive attributes
  (name, dates, descriptions, ...). A later instance that disagrees is stored unchanged and the
  differences are returned as warnings; the index keeps the first values.
- An instance stored with the ``overwrite`` policy is a correction: its values replace the
  patient, study and series attributes.

Counts and ModalitiesInStudy/SOPClassesInStudy are kept up to date under a lock on the study
row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers are serialized by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Insert, RowMapping, Select, Table, Update, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload

from xdsi.dicom.attributes import IndexKeys, PatientKeys, SeriesKeys, StudyKeys
from xdsi.dicom.names import PersonNameKeys
from xdsi.errors import HierarchyConflict
from xdsi.repository.models import (
    Instance,
    InstanceMetadata,
    Patient,
    RequestAttribute,
    Series,
    Study,
)


@dataclass(frozen=True)
class StoredBlob:
    """What the blob store and the parser know about one stored file."""

    key: str
    size: int
    sha256: str
    transfer_syntax_uid: str
    pixel_data_offset: int | None
    pixel_data_length: int | None
    frame_table: bytes | None = None
    file_meta_added: bool = False  # PS3.10 File Meta Information written by xdsi before the data set


def find_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    return session.scalar(select(Instance).where(Instance.sop_instance_uid == sop_instance_uid))


def stored_digests(session: Session, sop_instance_uids: list[str]) -> dict[str, str]:
    """SOP Instance UID -> sha256 for those of ``sop_instance_uids`` that are indexed."""
    rows = session.connection().execute(_ingest_statements().digests, {"uids": sop_instance_uids})
    return {uid: digest for uid, digest in rows}


def is_blob_referenced(session: Session, key: str) -> bool:
    return session.scalar(select(Instance.id).where(Instance.blob_key == key)) is not None


@dataclass(frozen=True)
class NewInstance:
    """An instance known not to be indexed yet, ready for ``add_instances``."""

    keys: IndexKeys
    blob: StoredBlob
    metadata_json: bytes


def add_instances(session: Session, entries: Sequence[NewInstance], now: datetime) -> list[list[str] | HierarchyConflict]:
    """Index many new instances at once: warnings per entry, or the conflict that refused it.

    Studies are locked in UID order (no deadlocks between batches on PostgreSQL); each study
    and series row is read or created once per batch, the instance and metadata rows are
    inserted with one multi-row statement each, and the counts are raised with one UPDATE per
    study and series. Plain table statements, not ORM objects: this is the ingest hot path,
    where unit-of-work bookkeeping cost more than the SQL. A concurrent insert of the same SOP
    Instance UID raises IntegrityError for the whole call; the caller then retries one by one.
    """
    results: list[list[str] | HierarchyConflict] = [[] for _ in entries]
    by_study: dict[str, list[int]] = {}
    for position, entry in enumerate(entries):
        by_study.setdefault(entry.keys.study.study_uid, []).append(position)
    for study_uid in sorted(by_study):
        positions = by_study[study_uid]
        study = _study_state(session, entries[positions[0]].keys, now)
        filed = (study["patient_id"], study["issuer_of_patient_id"])
        series_states: dict[str, tuple[RowMapping, bool]] = {}
        rows: list[dict[str, object]] = []
        accepted: list[int] = []
        for position in positions:
            keys = entries[position].keys
            try:
                _check_patient(study_uid, filed, keys)
                if keys.series.series_uid not in series_states:
                    series_states[keys.series.series_uid] = _series_state(session, study["id"], study_uid, keys.series, now)
            except HierarchyConflict as exc:
                results[position] = exc
                continue
            series = series_states[keys.series.series_uid][0]
            results[position] = _differences(study, study, series, keys)
            rows.append(_instance_row(keys, entries[position].blob, series["id"], now))
            accepted.append(position)
        if not rows:
            continue
        ids = session.connection().execute(_INSERT_INSTANCES, rows).scalars().all()
        session.connection().execute(_ingest_statements().metadata, [
            {"instance_fk": instance_id, "series_fk": row["series_fk"], "json": entries[position].metadata_json}
            for instance_id, row, position in zip(ids, rows, accepted)
        ])
        _raise_counts(session, study, series_states, [entries[position].keys for position in accepted], now)
    return results


_STUDY = Study.__table__
_SERIES = Series.__table__
_PATIENT = Patient.__table__
_INSTANCE = Instance.__table__
_METADATA = InstanceMetadata.__table__
_INSERT_INSTANCES = insert(_INSTANCE).returning(_INSTANCE.c.id, sort_by_parameter_order=True)


class _IngestStatements(NamedTuple):
    digests: Select[Any]
    patient: Select[Any]
    series: Insert
    request_attributes: Insert
    metadata: Insert
    count_study: Update
    count_series: Update


@lru_cache(maxsize=1)
def _ingest_statements() -> _IngestStatements:
    """Built once: constructing a statement costs more than SQLite takes to run it."""
    return _IngestStatements(
        digests=select(_INSTANCE.c.sop_instance_uid, _INSTANCE.c.sha256).where(
            _INSTANCE.c.sop_instance_uid.in_(bindparam("uids", expanding=True))),
        patient=select(_PATIENT.c.id).where(
            _PATIENT.c.patient_id == bindparam("id"), _PATIENT.c.issuer_of_patient_id == bindparam("issuer")),
        series=insert(_SERIES).returning(_SERIES.c.id),
        request_attributes=insert(RequestAttribute.__table__),
        metadata=insert(_METADATA),
        count_study=update(_STUDY).where(_STUDY.c.id == bindparam("row")).values(
            number_of_instances=_STUDY.c.number_of_instances + bindparam("added_instances"),
            number_of_series=_STUDY.c.number_of_series + bindparam("added_series"),
        ),
        count_series=update(_SERIES).where(_SERIES.c.id == bindparam("row")).values(
            number_of_instances=_SERIES.c.number_of_instances + bindparam("added_instances"),
        ),
    )


@lru_cache(maxsize=1)
def _state_statements() -> tuple[Select[Any], Select[Any]]:
    """The study (with its patient) and series columns a batch is checked and compared against."""
    study = (
        select(_STUDY.c.id, _STUDY.c.modalities_in_study, _STUDY.c.sop_classes_in_study,
               _PATIENT.c.patient_id, _PATIENT.c.issuer_of_patient_id,
               *(_STUDY.c[name] for name in _COMPARED["study"]),
               *(_PATIENT.c[name] for name in _COMPARED["patient"]))
        .join(_PATIENT, _STUDY.c.patient_fk == _PATIENT.c.id)
        .where(_STUDY.c.study_uid == bindparam("uid"))
        .with_for_update(of=_STUDY)
    )
    series = select(_SERIES.c.id, _SERIES.c.study_fk, *(_SERIES.c[name] for name in _COMPARED["series"])).where(
        _SERIES.c.series_uid == bindparam("uid"))
    return study, series


def _study_state(session: Session, keys: IndexKeys, now: datetime) -> RowMapping:
    """The locked study row of ``keys`` with its patient's identity, created if missing."""
    statement = _state_statements()[0]
    uid = keys.study.study_uid
    state = session.connection().execute(statement, {"uid": uid}).mappings().first()
    if state is None:
        _insert_ignore(session, Study, study_uid=uid, updated_at=now,
                       patient_fk=_patient_id(session, keys.patient, None), **_study_values(keys.study))
        state = session.connection().execute(statement, {"uid": uid}).mappings().one()
    return state


def _series_state(
    session: Session, study_id: int, study_uid: str, keys: SeriesKeys, now: datetime
) -> tuple[RowMapping, bool]:
    """The series row of ``keys`` and whether this call created it; refused if filed elsewhere."""
    statement = _state_statements()[1]
    state = session.connection().execute(statement, {"uid": keys.series_uid}).mappings().first()
    if state is None:
        series_id = session.connection().execute(
            _ingest_statements().series,
            {"series_uid": keys.series_uid, "study_fk": study_id, "updated_at": now, **_series_values(keys)},
        ).scalar_one()
        if keys.request_attributes:
            session.connection().execute(_ingest_statements().request_attributes, [
                {"series_fk": series_id, **dataclasses.asdict(item)} for item in keys.request_attributes
            ])
        return session.connection().execute(statement, {"uid": keys.series_uid}).mappings().one(), True
    if state["study_fk"] != study_id:
        other = session.scalar(select(_STUDY.c.study_uid).where(_STUDY.c.id == state["study_fk"]))
        raise HierarchyConflict(f"series {keys.series_uid} is filed under study {other}, not {study_uid}")
    return state, False


def _raise_counts(
    session: Session, study: RowMapping, series_states: dict[str, tuple[RowMapping, bool]],
    added: list[IndexKeys], now: datetime,
) -> None:
    per_series: dict[int, int] = {}
    modalities, classes = study["modalities_in_study"], study["sop_classes_in_study"]
    for keys in added:
        series_id = series_states[keys.series.series_uid][0]["id"]
        per_series[series_id] = per_series.get(series_id, 0) + 1
        modalities = _add_to_set(modalities, keys.series.modality)
        classes = _add_to_set(classes, keys.instance.sop_class_uid)
    new_series = sum(1 for state, created in series_states.values() if created and state["id"] in per_series)
    statements, connection = _ingest_statements(), session.connection()
    connection.execute(statements.count_study, {
        "row": study["id"], "added_instances": len(added), "added_series": new_series,
        "modalities_in_study": modalities, "sop_classes_in_study": classes, "updated_at": now,
    })
    connection.execute(statements.count_series, [
        {"row": series_id, "added_instances": count, "updated_at": now} for series_id, count in per_series.items()
    ])


def _instance_row(keys: IndexKeys, blob: StoredBlob, series_id: int, now: datetime) -> dict[str, object]:
    return {
        "sop_instance_uid": keys.instance.sop_instance_uid,
        "series_fk": series_id,
        "sop_class_uid": keys.instance.sop_class_uid,
        "instance_number": keys.instance.instance_number,
        "rows": keys.instance.rows,
        "columns": keys.instance.columns,
        "bits_allocated": keys.instance.bits_allocated,
        "number_of_frames": keys.instance.number_of_frames,
        "specific_character_set": keys.instance.specific_character_set,
        "transfer_syntax_uid": blob.transfer_syntax_uid,
        "size": blob.size,
        "sha256": blob.sha256,
        "blob_key": blob.key,
        "pixel_data_offset": blob.pixel_data_offset,
        "pixel_data_length": blob.pixel_data_length,
        "frame_table": blob.frame_table,
        "file_meta_added": blob.file_meta_added,
        "received_at": now,
    }


def add_instance(
    session: Session,
    keys: IndexKeys,
    blob: StoredBlob,
    metadata_json: bytes,
    now: datetime,
    *,
    replace: Instance | None = None,
) -> list[str]:
    """Index one instance (or replace ``replace`` with it); returns attribute-difference warnings."""
    correcting = replace is not None
    if replace is not None:
        _forget(session, replace)
    study = _study_for(session, keys, now, correcting)
    series, new_series = _series_for(session, study, keys.series, now, correcting)
    warnings = [] if correcting else _differences(_columns(study.patient), _columns(study), _columns(series), keys)
    instance = Instance(**_instance_row(keys, blob, series.id, now))
    instance.metadata_fragment = InstanceMetadata(series_fk=series.id, json=metadata_json)
    session.add(instance)
    session.flush()
    _recount(study, series, new_series, keys, now)
    return warnings


def _study_for(session: Session, keys: IndexKeys, now: datetime, correcting: bool) -> Study:
    study_keys = keys.study
    locked = (
        select(Study)
        .options(joinedload(Study.patient))
        .where(Study.study_uid == study_keys.study_uid)
        .with_for_update(of=Study)
    )
    study = session.scalar(locked)
    if study is None:
        _insert_ignore(session, Study, study_uid=study_keys.study_uid, updated_at=now,
                       patient_fk=_patient_id(session, keys.patient, None), **_study_values(study_keys))
        study = session.scalar(locked)
        assert study is not None
    filed = (study.patient.patient_id, study.patient.issuer_of_patient_id)
    if correcting:
        if not _same_patient(filed, keys):
            study.patient_fk = _patient_id(session, keys.patient, study.id)
    else:
        _check_patient(study.study_uid, filed, keys)
    if correcting:
        _assign(study, _study_values(study_keys))
        _assign(study.patient, _patient_values(keys.patient))
        study.updated_at = now
    return study


def _same_patient(filed: tuple[str | None, str | None], keys: IndexKeys) -> bool:
    """``filed`` is the (Patient ID, Issuer) the study is filed under."""
    return filed == (keys.patient.patient_id or None, keys.patient.issuer_of_patient_id)


def _check_patient(study_uid: str, filed: tuple[str | None, str | None], keys: IndexKeys) -> None:
    if _same_patient(filed, keys):
        return
    patient_id, issuer = filed
    raise HierarchyConflict(
        f"study {study_uid} is filed under Patient ID {patient_id or '(none)'!r}"
        f" (issuer {issuer or '(none)'!r}); this instance names"
        f" {keys.patient.patient_id or '(none)'!r} (issuer {keys.patient.issuer_of_patient_id or '(none)'!r})",
        sop_class_uid=keys.instance.sop_class_uid,
        sop_instance_uid=keys.instance.sop_instance_uid,
    )


def _patient_id(session: Session, keys: PatientKeys, study_id: int | None) -> int:
    """The patient row for these keys; without a Patient ID every study gets its own row."""
    values = _patient_values(keys)
    if not keys.patient_id:
        existing = None
        if study_id is not None:
            existing = session.scalar(
                select(Patient.id).join(Study).where(Study.id == study_id, Patient.patient_id.is_(None))
            )
        if existing is not None:
            return existing
        patient = Patient(patient_id=None, issuer_of_patient_id=keys.issuer_of_patient_id, **values)
        session.add(patient)
        session.flush()
        return patient.id
    _insert_ignore(session, Patient, patient_id=keys.patient_id,
                   issuer_of_patient_id=keys.issuer_of_patient_id, **values)
    found = session.connection().scalar(
        _ingest_statements().patient, {"id": keys.patient_id, "issuer": keys.issuer_of_patient_id}
    )
    assert found is not None
    return found


def _series_for(
    session: Session, study: Study, keys: SeriesKeys, now: datetime, correcting: bool
) -> tuple[Series, bool]:
    series = session.scalar(select(Series).where(Series.series_uid == keys.series_uid))
    if series is None:
        series = Series(series_uid=keys.series_uid, study=study, updated_at=now, **_series_values(keys))
        series.request_attributes = _request_rows(keys)
        session.add(series)
        session.flush()
        return series, True
    if series.study_fk != study.id:
        raise HierarchyConflict(
            f"series {keys.series_uid} is filed under study {series.study.study_uid}, not {study.study_uid}"
        )
    if correcting:
        _assign(series, _series_values(keys))
        series.request_attributes = _request_rows(keys)
    return series, False


def _forget(session: Session, instance: Instance) -> None:
    """Remove ``instance`` before its replacement is added, keeping counts right."""
    series = instance.series
    series.number_of_instances -= 1
    series.study.number_of_instances -= 1
    session.delete(instance)
    session.flush()
    study = series.study
    if series.number_of_instances == 0:
        study.number_of_series -= 1
        session.delete(series)
        session.flush()
    if study.number_of_series == 0:
        session.delete(study)
        session.flush()
    else:
        _refresh_study_sets(session, study)


def _recount(study: Study, series: Series, new_series: bool, keys: IndexKeys, now: datetime) -> None:
    series.number_of_instances += 1
    series.updated_at = now
    study.number_of_instances += 1
    if new_series:
        study.number_of_series += 1
    study.updated_at = now
    study.modalities_in_study = _add_to_set(study.modalities_in_study, keys.series.modality)
    study.sop_classes_in_study = _add_to_set(study.sop_classes_in_study, keys.instance.sop_class_uid)


def _refresh_study_sets(session: Session, study: Study) -> None:
    study.modalities_in_study, study.sop_classes_in_study = study_sets(session, study.id)


def study_sets(session: Session, study_id: int) -> tuple[str, str]:
    """ModalitiesInStudy and SOPClassesInStudy of what the study holds now, as stored in its row."""
    modalities = session.scalars(
        select(Series.modality).where(Series.study_fk == study_id).distinct()
    ).all()
    classes = session.scalars(
        select(Instance.sop_class_uid).join(Series).where(Series.study_fk == study_id).distinct()
    ).all()
    return "\\".join(sorted(m for m in modalities if m)), "\\".join(sorted(classes))


def _add_to_set(joined: str, value: str) -> str:
    if not value:
        return joined
    members = set(joined.split("\\")) if joined else set()
    members.add(value)
    return "\\".join(sorted(members))


def _insert_ignore(session: Session, model: type, **values: object) -> None:
    """INSERT … ON CONFLICT DO NOTHING, so concurrent writers of one row never fail."""
    connection = session.connection()
    connection.execute(_insert_ignore_statement(connection.dialect.name, model.__table__), values)  # type: ignore[attr-defined]


@lru_cache(maxsize=8)
def _insert_ignore_statement(dialect: str, table: Table) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


def _names(prefix: str, keys: PersonNameKeys) -> dict[str, str]:
    return {f"{prefix}_{name}": value for name, value in dataclasses.asdict(keys).items()}


def _patient_values(keys: PatientKeys) -> dict[str, object]:
    return {
        "patient_name": keys.patient_name,
        "birth_date": keys.birth_date,
        "sex": keys.sex,
        **_names("name", keys.patient_name_keys),
    }


def _study_values(keys: StudyKeys) -> dict[str, object]:
    return {
        "study_date": keys.study_date,
        "study_time": keys.study_time,
        "study_time_key": keys.study_time_key,
        "study_datetime_utc": keys.study_datetime_utc,
        "timezone_offset": keys.timezone_offset,
        "accession_number": keys.accession_number,
        "referring_physician_name": keys.referring_physician_name,
        "study_id": keys.study_id,
        "study_description": keys.study_description,
        **_names("referring", keys.referring_physician_keys),
    }


def _series_values(keys: SeriesKeys) -> dict[str, object]:
    return {
        "modality": keys.modality,
        "series_number": keys.series_number,
        "series_description": keys.series_description,
        "performed_start_date": keys.performed_start_date,
        "performed_start_time": keys.performed_start_time,
        "performed_start_time_key": keys.performed_start_time_key,
    }


def _request_rows(keys: SeriesKeys) -> list[RequestAttribute]:
    return [RequestAttribute(**dataclasses.asdict(item)) for item in keys.request_attributes]


def _assign(row: object, values: dict[str, object]) -> None:
    for name, value in values.items():
        setattr(row, name, value)


_COMPARED = {
    "patient": ("patient_name", "birth_date", "sex"),
    "study": ("study_date", "study_time", "accession_number", "referring_physician_name", "study_id",
              "study_description", "timezone_offset"),
    "series": ("modality", "series_number", "series_description", "performed_start_date",
               "performed_start_time"),
}


def _differences(
    patient: Mapping[str, Any], study: Mapping[str, Any], series: Mapping[str, Any], keys: IndexKeys
) -> list[str]:
    """What this instance says differently from the index; ``patient`` etc. map column names to values."""
    incoming = {
        "patient": _patient_values(keys.patient),
        "study": _study_values(keys.study),
        "series": _series_values(keys.series),
    }
    current = {"patient": patient, "study": study, "series": series}
    return [
        f"{level} {name}: index keeps {current[level][name]!r}, instance has {incoming[level][name]!r}"
        for level, names in _COMPARED.items()
        for name in names
        if current[level][name] != incoming[level][name]
    ]


def _columns(row: Patient | Study | Series) -> dict[str, Any]:
    names = {Patient: "patient", Study: "study", Series: "series"}[type(row)]
    return {name: getattr(row, name) for name in _COMPARED[names]}


def counts(session: Session) -> dict[str, int]:
    """Rows per level (for reports and checks)."""
    return {
        "patients": session.scalar(select(func.count()).select_from(Patient)) or 0,
        "studies": session.scalar(select(func.count()).select_from(Study)) or 0,
        "series": session.scalar(select(func.count()).select_from(Series)) or 0,
        "instances": session.scalar(select(func.count()).select_from(Instance)) or 0,
    }


def all_blob_keys(session: Session) -> list[tuple[str, str, int]]:
    """(blob key, sha256, size) of every instance, for consistency checks."""
    return [tuple(row) for row in session.execute(select(Instance.blob_key, Instance.sha256, Instance.size))]



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
    Instance.transfer_syntax_uid, Instance.blob_key, Instance.size, Instance.sha256, Instance.number_of_frames,
    Instance.pixel_data_offset, Instance.pixel_data_length, Instance.frame_table, Instance.received_at,
)


def stored_instances(
    session: Session, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[StoredInstance]:
    """The instances of a study, series or single instance, in series then instance number order."""
    statement = _stored_statement(series_uid is not None, sop_instance_uid is not None)
    params = {"study": study_uid, "series": series_uid, "instance": sop_instance_uid}
    # Plain rows through the connection: the ORM's execution path (identity map, loading
    # options) costs more than the query on this hot path and adds nothing to a column select.
    return [StoredInstance(*row) for row in session.connection().execute(statement, params)]


@lru_cache(maxsize=4)
def _stored_statement(by_series: bool, by_instance: bool) -> Select[Any]:
    """Built once: retrieval is the hot path, and composing a statement costs more than running it."""
    return _in_target(select(*_STORED_COLUMNS).select_from(Instance), by_series, by_instance)


def _in_target(statement: Select[Any], by_series: bool, by_instance: bool) -> Select[Any]:
    """``statement`` over Instance narrowed to the bound study (series, instance), in retrieval order."""
    statement = (
        statement.join(Series, Instance.series_fk == Series.id)
        .join(Study, Series.study_fk == Study.id)
        .where(Study.study_uid == bindparam("study"))
    )
    if by_series:
        statement = statement.where(Series.series_uid == bindparam("series"))
    if by_instance:
        statement = statement.where(Instance.sop_instance_uid == bindparam("instance"))
    return statement.order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)


def metadata_fragments(
    session: Session, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None,
) -> tuple[list[bytes], datetime | None]:
    """The cached metadata of the instances (same order as ``stored_instances``), and when they last changed."""
    statement = _fragments_statement(series_uid is not None, sop_instance_uid is not None)
    params = {"study": study_uid, "series": series_uid, "instance": sop_instance_uid}
    rows = session.connection().execute(statement, params).all()  # plain rows, as in stored_instances
    return [row[0] for row in rows], max((row[1] for row in rows), default=None)


@lru_cache(maxsize=8)
def _fragments_statement(by_series: bool, by_instance: bool) -> Select[Any]:
    statement = (
        select(InstanceMetadata.json, Series.updated_at)
        .select_from(InstanceMetadata)
        .join(Instance, InstanceMetadata.instance_fk == Instance.id)
    )
    return _in_target(statement, by_series, by_instance)
