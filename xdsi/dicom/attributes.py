"""Index keys: what QIDO-RS must match or return, read from one instance's header.

The attribute lists follow PS3.18 Tables 10.6.1-5 (matching) and 10.6.3-3/4/5 (return
keys) and the IHE RAD TF return keys. Strings are Unicode, decoded by pydicom per Specific
Character Set (0008,0005). Dates and times are kept as sent for answers, plus a
fixed-width form (``*_key``) that sorts and range-compares as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from xdsi.dicom import uids
from xdsi.dicom.names import PersonNameKeys, person_name_keys
from xdsi.errors import BadAttribute, InvalidUID, MissingAttribute


@dataclass(frozen=True)
class PatientKeys:
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_name_keys: PersonNameKeys
    birth_date: str
    sex: str


@dataclass(frozen=True)
class StudyKeys:
    study_uid: str
    study_date: str
    study_time: str
    study_time_key: str
    study_datetime_utc: str
    timezone_offset: str
    accession_number: str
    referring_physician_name: str
    referring_physician_keys: PersonNameKeys
    study_id: str
    study_description: str


@dataclass(frozen=True)
class RequestAttributes:
    """One item of Request Attributes Sequence (0040,0275)."""

    requested_procedure_id: str
    scheduled_procedure_step_id: str
    accession_number: str
    study_uid: str


@dataclass(frozen=True)
class SeriesKeys:
    series_uid: str
    modality: str
    series_number: int | None
    series_description: str
    performed_start_date: str
    performed_start_time: str
    performed_start_time_key: str
    request_attributes: tuple[RequestAttributes, ...] = field(default=())


@dataclass(frozen=True)
class InstanceKeys:
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    bits_allocated: int | None
    number_of_frames: int | None
    samples_per_pixel: int | None
    photometric_interpretation: str
    specific_character_set: str


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
    study_date, study_time = ds.text("StudyDate"), ds.text("StudyTime")
    offset = ds.text("TimezoneOffsetFromUTC")
    pps_time = ds.text("PerformedProcedureStepStartTime")
    patient_name = ds.text("PatientName")
    referring = ds.text("ReferringPhysicianName")
    return IndexKeys(
        patient=PatientKeys(
            patient_id=ds.text("PatientID"),
            issuer_of_patient_id=ds.text("IssuerOfPatientID"),
            patient_name=patient_name,
            patient_name_keys=person_name_keys(patient_name),
            birth_date=ds.text("PatientBirthDate"),
            sex=ds.text("PatientSex"),
        ),
        study=StudyKeys(
            study_uid=found["StudyInstanceUID"],
            study_date=study_date,
            study_time=study_time,
            study_time_key=time_key(study_time),
            study_datetime_utc=utc_key(study_date, study_time, offset),
            timezone_offset=offset,
            accession_number=ds.text("AccessionNumber"),
            referring_physician_name=referring,
            referring_physician_keys=person_name_keys(referring),
            study_id=ds.text("StudyID"),
            study_description=ds.text("StudyDescription"),
        ),
        series=SeriesKeys(
            series_uid=found["SeriesInstanceUID"],
            modality=ds.text("Modality"),
            series_number=ds.integer("SeriesNumber"),
            series_description=ds.text("SeriesDescription"),
            performed_start_date=ds.text("PerformedProcedureStepStartDate"),
            performed_start_time=pps_time,
            performed_start_time_key=time_key(pps_time),
            request_attributes=_request_attributes(ds),
        ),
        instance=InstanceKeys(
            sop_instance_uid=found["SOPInstanceUID"],
            sop_class_uid=found["SOPClassUID"],
            instance_number=ds.integer("InstanceNumber"),
            rows=ds.integer("Rows"),
            columns=ds.integer("Columns"),
            bits_allocated=ds.integer("BitsAllocated"),
            number_of_frames=ds.integer("NumberOfFrames"),
            samples_per_pixel=ds.integer("SamplesPerPixel"),
            photometric_interpretation=ds.text("PhotometricInterpretation"),
            specific_character_set=ds.text("SpecificCharacterSet"),
        ),
        warnings=tuple(warnings),
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


def _request_attributes(ds: Attributes) -> tuple[RequestAttributes, ...]:
    sequence = ds.items("RequestAttributesSequence")
    return tuple(
        RequestAttributes(
            requested_procedure_id=item.text("RequestedProcedureID"),
            scheduled_procedure_step_id=item.text("ScheduledProcedureStepID"),
            accession_number=item.text("AccessionNumber"),
            study_uid=item.text("StudyInstanceUID"),
        )
        for item in sequence
    )
