"""The index schema: Patient → Study → Series → Instance, plus per-instance metadata fragments.

Each level holds the attributes QIDO-RS matches or returns (PS3.18 10.6), so searches never
open a DICOM file. Matched columns are indexed. Text that is matched by prefix uses the "C"
collation on PostgreSQL so a B-tree range scan serves ``LIKE 'abc%'`` whatever the database
locale; SQLite's default BINARY collation already behaves that way.

The columns of the header keys (and the search columns derived from them) are mapped from
``dicom.attributes.CATALOG``; the classes declare identities, links and what the index itself
keeps up to date (counts, study sets, where the file lies).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column, relationship

from xdsi.dicom import attributes
from xdsi.dicom.attributes import CATALOG, REQUEST_ITEM_KEYS, Key, name_columns, time_key_column
from xdsi.dicom.names import PersonNameKeys

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Text = String().with_variant(String(collation="C"), "postgresql")
"""A string compared bytewise, so prefix LIKE and range matches can use an index."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("patient_id", "issuer_of_patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL when the instance names no Patient ID: such studies never share a patient row.
    patient_id: Mapped[str | None] = mapped_column(Text, index=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(Text, default="")

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class _Counted:
    """A study or series: how many instances it holds now, and when that last changed."""

    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Study(_Counted, Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    study_datetime_utc: Mapped[str] = mapped_column(Text, default="", index=True)
    modalities_in_study: Mapped[str] = mapped_column(String, default="")
    sop_classes_in_study: Mapped[str] = mapped_column(String, default="")
    number_of_series: Mapped[int] = mapped_column(Integer, default=0)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(_Counted, Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)

    study: Mapped[Study] = relationship(back_populates="series")
    request_attributes: Mapped[list[RequestAttribute]] = relationship(
        back_populates="series", cascade="all, delete-orphan"
    )


class RequestAttribute(Base):
    """One item of Request Attributes Sequence (0040,0275), matched by QIDO sequence keys."""

    __tablename__ = "request_attribute"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)

    series: Mapped[Series] = relationship(back_populates="request_attributes")


class Instance(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), index=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String, unique=True)
    pixel_data_offset: Mapped[int | None] = mapped_column(BigInteger)
    pixel_data_length: Mapped[int | None] = mapped_column(BigInteger)
    # Where each frame's bytes lie (dicom.frames.FrameTable), so one frame is read alone.
    frame_table: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The instance came without File Meta Information (PS3.10 7.1); xdsi wrote the header before it.
    file_meta_added: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    series: Mapped[Series] = relationship()
    metadata_fragment: Mapped[InstanceMetadata] = relationship(
        back_populates="instance", cascade="all, delete-orphan", uselist=False
    )


class InstanceMetadata(Base):
    """An instance's dataset without bulk data, pre-serialized as DICOM JSON (PS3.19 XML is
    rendered from it when asked for: storing both doubled what ingest wrote to the index).

    BulkDataURIs are stored relative to the server root behind a NUL placeholder that neither
    JSON (which escapes control characters) nor XML 1.0 (which forbids NUL) can contain, so a
    response substitutes the public base URL with one bytes replace.
    """

    __tablename__ = "instance_metadata"

    instance_fk: Mapped[int] = mapped_column(
        ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True
    )
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    json: Mapped[bytes] = mapped_column(LargeBinary)

    instance: Mapped[Instance] = relationship(back_populates="metadata_fragment")


TABLES: dict[attributes.Table, type[Base]] = {
    "patient": Patient, "study": Study, "series": Series, "instance": Instance, "request_attribute": RequestAttribute,
}


def table_of(model: type[Base]) -> Table:
    """The model's table, typed for Core statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


_INDEXED_NAME_KEYS = {"alphabetic", "family", "given", "folded", "family_soundex", "given_soundex"}


def _catalog_columns(key: Key) -> dict[str, MappedColumn[Any]]:
    """The columns one catalog key adds to its table: its own and those matching derives from it."""
    if key.integer:
        return {key.column: mapped_column(Integer, index=key.storage == "indexed", nullable=True)}
    bytewise = key.storage in ("indexed", "text")
    columns = {key.column: mapped_column(Text if bytewise else String, default="", nullable=False,
                                              index=key.storage == "indexed")}
    if key.match == "time":
        columns[time_key_column(key.column)] = mapped_column(Text, default="", nullable=False)
    elif key.match == "pn":
        for name, column in zip(PersonNameKeys.__dataclass_fields__, name_columns(key.name_prefix), strict=True):
            columns[column] = mapped_column(Text, default="", nullable=False, index=name in _INDEXED_NAME_KEYS)
    return columns


def _add_catalog_columns() -> None:
    """Map every stored header key of ``attributes.CATALOG`` (the models declare the rest)."""
    for key in CATALOG + REQUEST_ITEM_KEYS:
        if key.storage in ("indexed", "text", "plain"):
            for name, column in _catalog_columns(key).items():
                setattr(TABLES[key.table], name, column)


_add_catalog_columns()
