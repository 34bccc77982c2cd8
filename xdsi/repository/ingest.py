"""Ingest writes to the index: new instances in batches, and corrections; every function takes the caller's Session.

Hierarchy rules when a new instance arrives (documented in docs/storage.md):

- A study belongs to one patient. An instance whose Study Instance UID is already filed under
  another (Patient ID, Issuer) is refused (``HierarchyConflict``); so is a series filed under
  another study. Mixing patients inside a study is a patient-safety error, not a correction.
- Otherwise the first instance of a patient, study or series sets its descriptive attributes
  (name, dates, descriptions, ...). A later instance that disagrees is stored unchanged and the
  differences are returned as warnings; the index keeps the first values.
- An instance stored with the ``overwrite`` policy is a correction: the instance it replaces is
  removed as a delete removes it, then its values replace the patient, study and series attributes.

Counts and ModalitiesInStudy/SOPClassesInStudy are kept up to date under a lock on the study
row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers are serialized by BEGIN IMMEDIATE).
Plain table statements, not ORM objects: this is the ingest hot path, where unit-of-work
bookkeeping cost more than the SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Delete,
    Insert,
    RowMapping,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from xdsi.dicom.attributes import IndexKeys, LevelKeys, compared_keys, descriptive_columns, stored_columns
from xdsi.dicom.attributes import Table as Level
from xdsi.errors import HierarchyConflict
from xdsi.repository import removal
from xdsi.repository.index import study_sets
from xdsi.repository.models import Instance, InstanceMetadata, Patient, RequestAttribute, Series, Study, table_of


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


@dataclass(frozen=True)
class NewInstance:
    """An instance to index: its keys, where its file lies, and its cached metadata."""

    keys: IndexKeys
    blob: StoredBlob
    metadata_json: bytes


def add_instances(
    session: Session, entries: Sequence[NewInstance], now: datetime, *, correcting: bool = False
) -> list[list[str] | HierarchyConflict]:
    """Index new instances at once: warnings per entry, or the conflict that refused it.

    Studies are locked in UID order (no deadlocks between batches on PostgreSQL); each study
    and series row is read or created once per batch, the instance and metadata rows are
    inserted with one multi-row statement each, and the counts are raised with one UPDATE per
    study and series. A concurrent insert of the same SOP Instance UID raises IntegrityError
    for the whole call; the caller then retries one by one. ``correcting``: the entries'
    values replace those the index keeps (see ``replace_instance``).
    """
    results: list[list[str] | HierarchyConflict] = [[] for _ in entries]
    connection = session.connection()  # once: each Session.connection() costs as much as a statement
    by_study: dict[str, list[int]] = {}
    for position, entry in enumerate(entries):
        by_study.setdefault(entry.keys.study.study_uid, []).append(position)
    for study_uid in sorted(by_study):
        positions = by_study[study_uid]
        study, created = _study_state(session, connection, entries[positions[0]].keys, now, correcting)
        filed = (study["patient_id"], study["issuer_of_patient_id"])
        series_states: dict[str, tuple[RowMapping, bool]] = {}
        rows: list[dict[str, object]] = []
        accepted: list[int] = []
        for position in positions:
            keys = entries[position].keys
            try:
                if not correcting:
                    _check_patient(study_uid, filed, keys)
                if keys.series.series_uid not in series_states:
                    series_states[keys.series.series_uid] = _series_state(
                        connection, study["id"], study_uid, keys, now, correcting)
            except HierarchyConflict as exc:
                results[position] = exc
                continue
            series = series_states[keys.series.series_uid][0]
            results[position] = [] if correcting else _differences(study, series, keys)
            rows.append(_instance_row(keys, entries[position].blob, series["id"], now))
            accepted.append(position)
        if not rows:
            if created:  # every instance of a new study refused: no empty study is left behind
                _forget_study(session, study)
            continue
        ids = connection.execute(_statements().instances, rows).scalars().all()
        connection.execute(_statements().metadata, [
            {"instance_fk": instance_id, "series_fk": row["series_fk"], "json": entries[position].metadata_json}
            for instance_id, row, position in zip(ids, rows, accepted, strict=True)
        ])
        _raise_counts(session, connection, study, series_states, [entries[position].keys for position in accepted], now,
                      correcting)
    return results


def add_instance(session: Session, entry: NewInstance, now: datetime) -> list[str]:
    """Index one new instance (a batch of one); raises the HierarchyConflict that refuses it."""
    return _accepted(add_instances(session, [entry], now))


def replace_instance(session: Session, entry: NewInstance, now: datetime) -> list[str]:
    """Replace the indexed instance of the same SOP Instance UID by ``entry``: a correction.

    The old rows go as a delete takes them (a series, study or patient left empty goes too),
    then ``entry`` is indexed with its patient, study and series values replacing the index's:
    a study may move to another patient this way. Raises HierarchyConflict if its series is
    filed under another study; the caller's savepoint then keeps the old instance.
    """
    uid = entry.keys.instance.sop_instance_uid
    study_uid = session.connection().scalar(_statements().study_of_instance, {"uid": uid})
    if study_uid is not None:
        found = removal.select_removal(session, study_uid, sop_instance_uid=uid)
        if found is not None:
            removal.remove(session, found, now)
    return _accepted(add_instances(session, [entry], now, correcting=True))


def _accepted(results: list[list[str] | HierarchyConflict]) -> list[str]:
    (result,) = results
    if isinstance(result, HierarchyConflict):
        raise result
    return result


_STUDY = table_of(Study)
_SERIES = table_of(Series)
_PATIENT = table_of(Patient)
_INSTANCE = table_of(Instance)
_REQUEST = table_of(RequestAttribute)


class _Statements(NamedTuple):
    study_state: Select[Any]
    series_state: Select[Any]
    study_of_instance: Select[Any]
    patient: Select[Any]
    unidentified_patient: Select[Any]
    new_patient: Insert
    series: Insert
    instances: Insert
    request_attributes: Insert
    metadata: Insert
    forget_request_attributes: Delete
    count_study: Update
    count_series: Update


@cache
def _statements() -> _Statements:
    """Built once: constructing a statement costs more than SQLite takes to run it."""
    return _Statements(
        study_state=(
            select(_STUDY.c.id, _STUDY.c.patient_fk, _STUDY.c.modalities_in_study, _STUDY.c.sop_classes_in_study,
                   _PATIENT.c.patient_id, _PATIENT.c.issuer_of_patient_id,
                   *(_STUDY.c[name] for name in compared_keys("study")),
                   *(_PATIENT.c[name] for name in compared_keys("patient")))
            .join(_PATIENT, _STUDY.c.patient_fk == _PATIENT.c.id)
            .where(_STUDY.c.study_uid == bindparam("uid"))
            .with_for_update(of=_STUDY)
        ),
        series_state=select(_SERIES.c.id, _SERIES.c.study_fk, *(_SERIES.c[name] for name in compared_keys("series")))
        .where(_SERIES.c.series_uid == bindparam("uid")),
        study_of_instance=select(_STUDY.c.study_uid)
        .join(_SERIES, _SERIES.c.study_fk == _STUDY.c.id).join(_INSTANCE, _INSTANCE.c.series_fk == _SERIES.c.id)
        .where(_INSTANCE.c.sop_instance_uid == bindparam("uid")),
        patient=select(_PATIENT.c.id).where(
            _PATIENT.c.patient_id == bindparam("id"), _PATIENT.c.issuer_of_patient_id == bindparam("issuer")),
        unidentified_patient=select(_PATIENT.c.id).join(_STUDY, _STUDY.c.patient_fk == _PATIENT.c.id)
        .where(_STUDY.c.id == bindparam("study"), _PATIENT.c.patient_id.is_(None)),
        new_patient=insert(_PATIENT).returning(_PATIENT.c.id),
        series=insert(_SERIES).returning(_SERIES.c.id),
        instances=insert(_INSTANCE).returning(_INSTANCE.c.id, sort_by_parameter_order=True),
        request_attributes=insert(_REQUEST),
        metadata=insert(table_of(InstanceMetadata)),
        forget_request_attributes=delete(_REQUEST).where(_REQUEST.c.series_fk == bindparam("series")),
        count_study=update(_STUDY).where(_STUDY.c.id == bindparam("row")).values(
            number_of_instances=_STUDY.c.number_of_instances + bindparam("added_instances"),
            number_of_series=_STUDY.c.number_of_series + bindparam("added_series"),
        ),
        count_series=update(_SERIES).where(_SERIES.c.id == bindparam("row")).values(
            number_of_instances=_SERIES.c.number_of_instances + bindparam("added_instances"),
        ),
    )


def _study_state(
    session: Session, connection: Connection, keys: IndexKeys, now: datetime, correcting: bool
) -> tuple[RowMapping, bool]:
    """The locked study row of ``keys`` with its patient's identity, and whether this call created it."""
    statement = _statements().study_state
    uid = keys.study.study_uid
    state = connection.execute(statement, {"uid": uid}).mappings().first()
    created = state is None
    if state is None:
        _insert_ignore(session, _STUDY, {**_row(keys.study, "study"), "updated_at": now,
                                         "patient_fk": _patient_id(session, keys, None)})
    elif correcting:
        patient_fk = state["patient_fk"]
        if not _same_patient((state["patient_id"], state["issuer_of_patient_id"]), keys):
            patient_fk = _patient_id(session, keys, state["id"])
        connection.execute(update(_PATIENT).where(_PATIENT.c.id == patient_fk),
                           _descriptive(keys.patient, "patient"))
        connection.execute(update(_STUDY).where(_STUDY.c.id == state["id"]),
                           {**_descriptive(keys.study, "study"), "patient_fk": patient_fk, "updated_at": now})
        if patient_fk != state["patient_fk"]:
            removal.remove_patient_if_unused(session, state["patient_fk"])
    else:
        return state, False
    return connection.execute(statement, {"uid": uid}).mappings().one(), created


def _forget_study(session: Session, study: RowMapping) -> None:
    session.connection().execute(delete(_STUDY).where(_STUDY.c.id == study["id"]))
    removal.remove_patient_if_unused(session, study["patient_fk"])


def _series_state(
    connection: Connection, study_id: int, study_uid: str, keys: IndexKeys, now: datetime, correcting: bool
) -> tuple[RowMapping, bool]:
    """The series row of ``keys`` and whether this call created it; refused if filed elsewhere."""
    statements = _statements()
    series = keys.series
    state = connection.execute(statements.series_state, {"uid": series.series_uid}).mappings().first()
    if state is not None and state["study_fk"] != study_id:
        other = connection.scalar(select(_STUDY.c.study_uid).where(_STUDY.c.id == state["study_fk"]))
        raise HierarchyConflict(
            f"series {series.series_uid} is filed under study {other}, not {study_uid}",
            sop_class_uid=keys.instance.sop_class_uid,
            sop_instance_uid=keys.instance.sop_instance_uid,
        )
    if state is not None and not correcting:
        return state, False
    if state is None:
        series_id = connection.execute(
            statements.series, {**_row(series, "series"), "study_fk": study_id, "updated_at": now}
        ).scalar_one()
    else:
        series_id = state["id"]
        connection.execute(update(_SERIES).where(_SERIES.c.id == series_id), _descriptive(series, "series"))
        connection.execute(statements.forget_request_attributes, {"series": series_id})
    if series.request_attributes:
        connection.execute(statements.request_attributes, [
            {"series_fk": series_id, **_row(item, "request_attribute")} for item in series.request_attributes
        ])
    return connection.execute(statements.series_state, {"uid": series.series_uid}).mappings().one(), state is None


def _raise_counts(
    session: Session, connection: Connection, study: RowMapping, series_states: dict[str, tuple[RowMapping, bool]],
    added: list[IndexKeys], now: datetime, correcting: bool,
) -> None:
    per_series: dict[int, int] = {}
    modalities, classes = study["modalities_in_study"], study["sop_classes_in_study"]
    for keys in added:
        series_id = series_states[keys.series.series_uid][0]["id"]
        per_series[series_id] = per_series.get(series_id, 0) + 1
    if correcting:  # a corrected Modality applies to the whole series: the sets are found again
        modalities, classes = study_sets(session, study["id"])
    else:
        for keys in added:
            modalities = _add_to_set(modalities, keys.series.modality)
            classes = _add_to_set(classes, keys.instance.sop_class_uid)
    new_series = sum(1 for state, created in series_states.values() if created and state["id"] in per_series)
    statements = _statements()
    connection.execute(statements.count_study, {
        "row": study["id"], "added_instances": len(added), "added_series": new_series,
        "modalities_in_study": modalities, "sop_classes_in_study": classes, "updated_at": now,
    })
    connection.execute(statements.count_series, [
        {"row": series_id, "added_instances": count, "updated_at": now} for series_id, count in per_series.items()
    ])


def _row(keys: LevelKeys, level: Level) -> dict[str, object]:
    """The columns of ``level`` that ingest writes, from the catalog."""
    return {column: keys.values[column] for column in stored_columns(level)}


def _descriptive(keys: LevelKeys, level: Level) -> dict[str, object]:
    """What a correction replaces: every stored column but the identities."""
    return {column: keys.values[column] for column in descriptive_columns(level)}


def _instance_row(keys: IndexKeys, blob: StoredBlob, series_id: int, now: datetime) -> dict[str, object]:
    return {
        **_row(keys.instance, "instance"),
        "series_fk": series_id,
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


def _patient_id(session: Session, keys: IndexKeys, study_id: int | None) -> int:
    """The patient row for these keys; without a Patient ID every study gets its own row."""
    connection, statements = session.connection(), _statements()
    values = _row(keys.patient, "patient")
    if not keys.patient.patient_id:
        existing = None if study_id is None else connection.scalar(statements.unidentified_patient, {"study": study_id})
        if existing is not None:
            return int(existing)
        return int(connection.execute(statements.new_patient, {**values, "patient_id": None}).scalar_one())
    _insert_ignore(session, _PATIENT, values)
    found = connection.scalar(statements.patient, {"id": keys.patient.patient_id,
                                                   "issuer": keys.patient.issuer_of_patient_id})
    assert found is not None
    return int(found)


def _add_to_set(joined: str, value: str) -> str:
    if not value:
        return joined
    members = set(joined.split("\\")) if joined else set()
    members.add(value)
    return "\\".join(sorted(members))


def _insert_ignore(session: Session, table: Table, values: Mapping[str, object]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, so concurrent writers of one row never fail."""
    connection = session.connection()
    connection.execute(_insert_ignore_statement(connection.dialect.name, table), dict(values))


@cache
def _insert_ignore_statement(dialect: str, table: Table) -> Insert:
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return dialect_insert(table).on_conflict_do_nothing()


def _differences(study: Mapping[Any, Any], series: Mapping[Any, Any], keys: IndexKeys) -> list[str]:
    """What this instance says differently from the index; ``study`` also holds its patient's columns."""
    current: dict[Level, Mapping[Any, Any]] = {"patient": study, "study": study, "series": series}
    incoming: dict[Level, LevelKeys] = {"patient": keys.patient, "study": keys.study, "series": keys.series}
    return [
        f"{level} {name}: index keeps {current[level][name]!r}, instance has {incoming[level].values[name]!r}"
        for level in ("patient", "study", "series")
        for name in compared_keys(level)
        if current[level][name] != incoming[level].values[name]
    ]
