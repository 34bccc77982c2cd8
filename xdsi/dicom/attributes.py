"""Index keys: what QIDO-RS must match or return, read from one instance's header.

``CATALOG`` is the one list of those attributes (PS3.18 Tables 10.6.1-5 for matching,
10.6.3-3/4/5 and the IHE RAD TF for return keys): the index columns (``repository.models``),
the rows ingest writes and the QIDO search catalog (``repository.search``) are all derived
from it, so a new return key is one line here plus a migration adding its column. Strings are
Unicode, decoded by pydicom per Specific Character Set (0008,0005). Dates and times are kept as
sent for answers, plus a fixed-width form (``*_key``) that sorts and range-compares as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from xdsi.dicom import uids
from xdsi.dicom.names import PersonNameKeys, person_name_keys
from xdsi.errors import BadAttribute, InvalidUID, MissingAttribute

Table = Literal["patient", "study", "series", "instance", "request_attribute"]
Match = Literal["uid", "text", "int", "date", "time", "pn", "modalities", "sop_classes", "sequence"]
Storage = Literal["indexed", "text", "plain", "identity", "kept", "unstored"]
"""How a key's column is kept: ``indexed`` (bytewise text or integer, with an index), ``text``
(bytewise, no index), ``plain`` (string or integer as sent); ``identity`` and ``kept`` columns
are declared by the models themselves (UIDs and patient identity; values the index keeps up to
date, such as counts); ``unstored`` keys are read at ingest (to find frames) but not indexed."""

V = TypeVar("V")

INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL"})


@dataclass(frozen=True)
class Key:
    """One attribute of the catalog: where it lives in the index and how QIDO-RS matches it."""

    keyword: str
    tag: int
    vr: str
    table: Table  # the index table holding it; patient keys are study-level QIDO keys
    column: str
    match: Match | None  # None: not a QIDO key
    storage: Storage = "plain"
    default: bool = True  # returned without includefield (PS3.18 Tables 10.6.3-3/4/5)
    name_prefix: str = ""  # PN: the prefix of the person-name search columns

    @property
    def from_header(self) -> bool:
        return self.storage != "kept"

    @property
    def integer(self) -> bool:
        return self.vr in INTEGER_VRS


CATALOG: tuple[Key, ...] = (
    Key("PatientName", 0x00100010, "PN", "patient", "patient_name", "pn", name_prefix="name"),
    Key("PatientID", 0x00100020, "LO", "patient", "patient_id", "text", "identity"),
    Key("IssuerOfPatientID", 0x00100021, "LO", "patient", "issuer_of_patient_id", "text", "identity", default=False),
    Key("PatientBirthDate", 0x00100030, "DA", "patient", "birth_date", "date", "indexed"),
    Key("PatientSex", 0x00100040, "CS", "patient", "sex", "text", "text"),
    Key("StudyDate", 0x00080020, "DA", "study", "study_date", "date", "indexed"),
    Key("StudyTime", 0x00080030, "TM", "study", "study_time", "time"),
    Key("AccessionNumber", 0x00080050, "SH", "study", "accession_number", "text", "indexed"),
    Key("ModalitiesInStudy", 0x00080061, "CS", "study", "modalities_in_study", "modalities", "kept"),
    Key("SOPClassesInStudy", 0x00080062, "UI", "study", "sop_classes_in_study", "sop_classes", "kept",
        default=False),
    Key("ReferringPhysicianName", 0x00080090, "PN", "study", "referring_physician_name", "pn",
        name_prefix="referring"),
    Key("TimezoneOffsetFromUTC", 0x00080201, "SH", "study", "timezone_offset", "text"),
    Key("StudyDescription", 0x00081030, "LO", "study", "study_description", "text", "text", default=False),
    Key("StudyInstanceUID", 0x0020000D, "UI", "study", "study_uid", "uid", "identity"),
    Key("StudyID", 0x00200010, "SH", "study", "study_id", "text", "indexed"),
    Key("NumberOfStudyRelatedSeries", 0x00201206, "IS", "study", "number_of_series", "int", "kept"),
    Key("NumberOfStudyRelatedInstances", 0x00201208, "IS", "study", "number_of_instances", "int", "kept"),
    Key("Modality", 0x00080060, "CS", "series", "modality", "text", "indexed"),
    Key("SeriesDescription", 0x0008103E, "LO", "series", "series_description", "text"),
    Key("SeriesInstanceUID", 0x0020000E, "UI", "series", "series_uid", "uid", "identity"),
    Key("SeriesNumber", 0x00200011, "IS", "series", "series_number", "int", "indexed"),
    Key("NumberOfSeriesRelatedInstances", 0x00201209, "IS", "series", "number_of_instances", "int", "kept"),
    Key("PerformedProcedureStepStartDate", 0x00400244, "DA", "series", "performed_start_date", "date", "indexed"),
    Key("PerformedProcedureStepStartTime", 0x00400245, "TM", "series", "performed_start_time", "time"),
    Key("RequestAttributesSequence", 0x00400275, "SQ", "series", "request_attributes", "sequence", "kept"),
    Key("SOPClassUID", 0x00080016, "UI", "instance", "sop_class_uid", "uid", "identity"),
    Key("SOPInstanceUID", 0x00080018, "UI", "instance", "sop_instance_uid", "uid", "identity"),
    Key("AvailableTransferSyntaxUID", 0x00083002, "UI", "instance", "transfer_syntax_uid", "uid", "kept",
        default=False),
    Key("InstanceNumber", 0x00200013, "IS", "instance", "instance_number", "int", "indexed"),
    Key("NumberOfFrames", 0x00280008, "IS", "instance", "number_of_frames", "int"),
    Key("Rows", 0x00280010, "US", "instance", "rows", "int"),
    Key("Columns", 0x00280011, "US", "instance", "columns", "int"),
    Key("BitsAllocated", 0x00280100, "US", "instance", "bits_allocated", "int"),
    Key("SpecificCharacterSet", 0x00080005, "CS", "instance", "specific_character_set", None),
    Key("SamplesPerPixel", 0x00280002, "US", "instance", "samples_per_pixel", None, "unstored"),
    Key("PhotometricInterpretation", 0x00280004, "CS", "instance", "photometric_interpretation", None, "unstored"),
)

# Items of Request Attributes Sequence (0040,0275), one row each, matched by QIDO sequence keys
# (PS3.18 Table 10.6.1-5).
REQUEST_ITEM_KEYS: tuple[Key, ...] = (
    Key("RequestedProcedureID", 0x00401001, "SH", "request_attribute", "requested_procedure_id", "text", "indexed"),
    Key("ScheduledProcedureStepID", 0x00400009, "SH", "request_attribute", "scheduled_procedure_step_id", "text",
        "indexed"),
    Key("AccessionNumber", 0x00080050, "SH", "request_attribute", "accession_number", "text", "text"),
    Key("StudyInstanceUID", 0x0020000D, "UI", "request_attribute", "study_uid", "uid"),
)


def time_key_column(column: str) -> str:
    """The fixed-width column beside a TM column, which range matching and sorting use."""
    return f"{column}_key"


@cache
def name_columns(prefix: str) -> tuple[str, ...]:
    """The search columns of a PN key, one per ``PersonNameKeys`` field."""
    return tuple(f"{prefix}_{name}" for name in PersonNameKeys.__dataclass_fields__)


@cache
def header_keys(table: Table) -> tuple[Key, ...]:
    """The keys of ``table`` read from an instance's header (read lazily: a test may extend CATALOG)."""
    return tuple(key for key in CATALOG + REQUEST_ITEM_KEYS if key.table == table and key.from_header)


@cache
def stored_columns(table: Table) -> tuple[str, ...]:
    """Every column of ``table`` ingest writes from the header: keys and their derived columns."""
    columns: list[str] = []
    for key in header_keys(table):
        if key.storage == "unstored":
            continue
        columns.append(key.column)
        if key.match == "time":
            columns.append(time_key_column(key.column))
        elif key.match == "pn":
            columns.extend(name_columns(key.name_prefix))
    if table == "study":
        columns.append("study_datetime_utc")
    return tuple(columns)


@cache
def descriptive_columns(table: Table) -> tuple[str, ...]:
    """Stored columns that describe rather than identify: corrections replace them."""
    return tuple(c for c in stored_columns(table) if c not in _identity_columns(table))


@cache
def compared_keys(table: Table) -> tuple[str, ...]:
    """The columns whose disagreement with the index is reported (derived columns follow them)."""
    return tuple(key.column for key in header_keys(table)
                 if key.storage not in ("identity", "unstored"))


def _identity_columns(table: Table) -> frozenset[str]:
    return frozenset(key.column for key in header_keys(table) if key.storage == "identity")


@dataclass(frozen=True)
class LevelKeys:
    """One level's values, by column name: its header keys of the catalog and their derived columns."""

    values: dict[str, Any]


class _Column(Generic[V]):
    """The value of the column of this name: the few keys code reads by name, typed."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.column = name

    def __get__(self, keys: LevelKeys, owner: type | None = None) -> V:
        value: V = keys.values[self.column]
        return value


_Text = _Column[str]
_Integer = _Column[int | None]


class PatientKeys(LevelKeys):
    patient_id = _Text()
    issuer_of_patient_id = _Text()


class StudyKeys(LevelKeys):
    study_uid = _Text()


@dataclass(frozen=True)
class SeriesKeys(LevelKeys):
    request_attributes: tuple[LevelKeys, ...] = field(default=())  # one per item of (0040,0275)
    series_uid = _Text()
    modality = _Text()


class InstanceKeys(LevelKeys):
    """The instance's keys; the image attributes locate its frames at ingest."""

    sop_instance_uid = _Text()
    sop_class_uid = _Text()
    photometric_interpretation = _Text()
    rows = _Integer()
    columns = _Integer()
    bits_allocated = _Integer()
    number_of_frames = _Integer()
    samples_per_pixel = _Integer()


@dataclass(frozen=True)
class IndexKeys:
    patient: PatientKeys
    study: StudyKeys
    series: SeriesKeys
    instance: InstanceKeys
    # Why a required UID was accepted although PS3.5 does not allow it (legacy UIDs), in words.
    warnings: tuple[str, ...] = ()


REQUIRED_UIDS = (
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("SOPClassUID", "(0008,0016)"),
)


class Attributes(Protocol):
    """Read access to a data set's values, by keyword, as index keys need them."""

    def text(self, keyword: str) -> str:
        """Unicode text; several values joined with a backslash; '' when absent or empty."""

    def integer(self, keyword: str) -> int | None:
        """The first value as an integer, None when absent or not a number."""

    def items(self, keyword: str) -> list[Attributes]:
        """The items of a sequence, [] when absent."""


class DatasetAttributes:
    """``Attributes`` over a pydicom Dataset (values converted by pydicom)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def text(self, keyword: str) -> str:
        value = self.ds.get(keyword)
        if value is None:
            return ""
        if isinstance(value, MultiValue | list | tuple):
            return "\\".join(_plain(v) for v in value)
        return _plain(value).strip()

    def integer(self, keyword: str) -> int | None:
        value = self.ds.get(keyword)
        if isinstance(value, MultiValue | list | tuple):
            value = value[0] if value else None
        return as_integer(value)

    def items(self, keyword: str) -> list[Attributes]:
        return [DatasetAttributes(item) for item in self.ds.get(keyword) or []]


def _plain(value: object) -> str:
    if isinstance(value, PersonName):
        # The canonical text: component groups joined by '=', none trailing.
        return "=".join(value.components).rstrip("=")
    return str(value)


def as_integer(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def index_keys(source: Dataset | Attributes) -> IndexKeys:
    """Extract and validate the keys; raises MissingAttribute or BadAttribute.

    A legacy UID passes, with the reason in ``warnings``: refusing what peers store and serve
    would strand old studies, and files are named by a SHA-256 of the UIDs, never by the UIDs.
    """
    ds = DatasetAttributes(source) if isinstance(source, Dataset) else source
    found = {keyword: ds.text(keyword) for keyword, _tag in REQUIRED_UIDS}
    # PS3.18 Table I.1-1: a refused instance is named by its SOP Class and Instance UIDs when it has them.
    named = {
        "sop_class_uid": found["SOPClassUID"] if uids.is_valid_uid(found["SOPClassUID"]) else None,
        "sop_instance_uid": found["SOPInstanceUID"] if uids.is_valid_uid(found["SOPInstanceUID"]) else None,
    }
    warnings = []
    for keyword, tag in REQUIRED_UIDS:
        value = found[keyword]
        if not value:
            raise MissingAttribute(f"{keyword} {tag} is missing or empty", **named)
        try:
            uids.validate_uid(value, f"{keyword} {tag}")
        except InvalidUID as exc:
            raise BadAttribute(str(exc), **named) from exc
        reason = uids.legacy_uid_reason(value)
        if reason:
            warnings.append(f"{keyword} {tag} {value}: {reason}")
    study = _values(ds, "study", found)
    study["study_datetime_utc"] = utc_key(study["study_date"], study["study_time"], study["timezone_offset"])
    return IndexKeys(
        patient=PatientKeys(_values(ds, "patient")),
        study=StudyKeys(study),
        series=SeriesKeys(_values(ds, "series", found), _request_attributes(ds)),
        instance=InstanceKeys(_values(ds, "instance", found)),
        warnings=tuple(warnings),
    )


_NAME_FIELDS = tuple(PersonNameKeys.__dataclass_fields__)


def _values(ds: Attributes, table: Table, known: dict[str, str] | None = None) -> dict[str, Any]:
    """The header keys of ``table`` by column, each with its derived search columns; ``known``: text already read."""
    values: dict[str, Any] = {}
    known = known or {}
    for keyword, column, integer, match, names in _reading_plan(table):
        if integer:
            values[column] = ds.integer(keyword)
            continue
        text = values[column] = known[keyword] if keyword in known else ds.text(keyword)
        if match == "time":
            values[time_key_column(column)] = time_key(text)
        elif names:
            name = person_name_keys(text)
            values.update(zip(names, [getattr(name, part) for part in _NAME_FIELDS], strict=True))
    return values


@cache
def _reading_plan(table: Table) -> tuple[tuple[str, str, bool, Match | None, tuple[str, ...]], ...]:
    """(keyword, column, read as integer, match, PN search columns) per header key: ingest's hot loop."""
    return tuple(
        (key.keyword, key.column, key.integer, key.match, name_columns(key.name_prefix) if key.match == "pn" else ())
        for key in header_keys(table)
    )


def time_key(value: str) -> str:
    """A TM as 'HHMMSS.ffffff' (missing parts zero) so text order is time order; '' if unusable."""
    value = value.strip().replace(":", "")
    whole, _, fraction = value.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        return ""
    return f"{whole:0<6}.{fraction[:6]:0<6}"


def utc_key(date: str, time: str, offset: str) -> str:
    """'YYYYMMDDHHMMSS.ffffff' in UTC when the offset is known, else as recorded; '' without a date."""
    date = date.strip()
    if len(date) != 8 or not date.isdigit():
        return ""
    clock = time_key(time) or "000000.000000"
    try:
        moment = datetime.strptime(date + clock, "%Y%m%d%H%M%S.%f")
    except ValueError:
        return ""
    tz = _offset(offset)
    if tz is not None:
        moment = moment.replace(tzinfo=tz).astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S.%f")


def _offset(value: str) -> timezone | None:
    """PS3.3 C.12.1.1.8: Timezone Offset From UTC is '&ZZXX' (sign, hours, minutes)."""
    value = value.strip()
    if len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        return None
    minutes = int(value[1:3]) * 60 + int(value[3:])
    if minutes > 14 * 60:
        return None
    return timezone(timedelta(minutes=minutes if value[0] == "+" else -minutes))


def _request_attributes(ds: Attributes) -> tuple[LevelKeys, ...]:
    return tuple(LevelKeys(_values(item, "request_attribute")) for item in ds.items("RequestAttributesSequence"))
