"""DICOM audit messages (PS3.15 A.5.3), written as the XML of the DICOM audit message schema (A.5.1).

Events are plain values (strings, no DICOM or web types), built by the services; ``to_xml``
writes any of them. Codes are from PS3.16 (DCM), RFC 3881 and the IHE Technical Frameworks.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree


@dataclass(frozen=True)
class Code:
    """A coded value: csd-code, codeSystemName and the meaning (originalText)."""

    code: str
    system: str
    meaning: str


def _dcm(code: str, meaning: str) -> Code:
    return Code(code, "DCM", meaning)


# PS3.16 CID 400 (audit event ID), CID 401 (event type), CID 402 (participant role), CID 403/404.
APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
BEGIN_TRANSFERRING = _dcm("110102", "Begin Transferring DICOM Instances")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
QUERY = _dcm("110112", "Query")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")
APPLICATION_START = _dcm("110120", "Application Start")
APPLICATION_STOP = _dcm("110121", "Application Stop")
LOGIN = _dcm("110122", "Login")
NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
USE_OF_RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
APPLICATION = _dcm("110150", "Application")
APPLICATION_LAUNCHER = _dcm("110151", "Application Launcher")
DESTINATION = _dcm("110152", "Destination Role ID")
SOURCE = _dcm("110153", "Source Role ID")
STUDY_INSTANCE_UID = _dcm("110180", "Study Instance UID")
SOP_CLASS_UID = _dcm("110181", "SOP Class UID")
# RFC 3881 5.5.4 ParticipantObjectIDTypeCode.
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
URI = Code("12", "RFC-3881", "URI")
# IHE RAD TF-2/3: the transactions, named as EventTypeCode beside the DICOM event.
WADO_URI = Code("RAD-55", "IHE Transactions", "WADO Retrieve")
RAD_69 = Code("RAD-69", "IHE Transactions", "Retrieve Imaging Document Set")
WADO_RS = Code("RAD-107", "IHE Transactions", "WADO-RS Retrieve")
STOW_RS = Code("RAD-108", "IHE Transactions", "Store Instances over the Web")
QIDO_RS = Code("RAD-129", "IHE Transactions", "QIDO-RS Query")

# Study Root Query/Retrieve Information Model - FIND (PS3.4 C.6.2): what a QIDO-RS search queries.
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"

# EventOutcomeIndicator (PS3.15 A.5.1): success, minor failure, serious failure.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a user or process, with the network address it acted from."""

    user_id: str
    requestor: bool
    role: Code | None = None
    address: str | None = None
    user_name: str | None = None


@dataclass(frozen=True)
class Study:
    """A study and, per SOP Class, the SOP Instance UIDs of it that the event touched."""

    uid: str
    instances: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Patient:
    """A patient: ID and issuer (written as ``ID^^^ISSUER``, HL7 CX), the name when known."""

    id: str
    issuer: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Event:
    """One audit message: what happened, its outcome, who took part and what it touched."""

    event_id: Code
    action: str
    outcome: str
    participants: Sequence[Participant]
    event_types: Sequence[Code] = ()
    outcome_description: str | None = None
    studies: Sequence[Study] = ()
    patients: Sequence[Patient] = ()
    query: bytes | None = None
    query_details: Sequence[tuple[str, bytes]] = ()
    alert_subject: str | None = None
    when: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Source:
    """AuditSourceIdentification: which xdsi reports (AuditSourceID, the enterprise site)."""

    source_id: str
    site_id: str | None = None


def to_xml(event: Event, source: Source) -> bytes:
    """The AuditMessage of ``event``, UTF-8 without declaration, on one line (syslog carries it as is)."""
    message = etree.Element("AuditMessage")
    ident = etree.SubElement(message, "EventIdentification", EventActionCode=event.action,
                             EventDateTime=event.when.isoformat(timespec="milliseconds"),
                             EventOutcomeIndicator=event.outcome)
    _code(ident, "EventID", event.event_id)
    for event_type in event.event_types:
        _code(ident, "EventTypeCode", event_type)
    if event.outcome_description:
        etree.SubElement(ident, "EventOutcomeDescription").text = _clean(event.outcome_description)
    for participant in event.participants:
        _participant(message, participant)
    # A.5.1: AuditSourceTypeCode 4, an application server process.
    audit_source = etree.SubElement(message, "AuditSourceIdentification", AuditSourceID=source.source_id)
    if source.site_id:
        audit_source.set("AuditEnterpriseSiteID", source.site_id)
    etree.SubElement(audit_source, "AuditSourceTypeCode").set("csd-code", "4")
    for study in event.studies:
        _study(message, study)
    for patient in event.patients:
        _patient(message, patient)
    if event.query is not None:
        _query(message, event.query, event.query_details)
    if event.alert_subject is not None:
        subject = _object(message, event.alert_subject, URI, type_code="2", role="13")
        etree.SubElement(subject, "ParticipantObjectName").text = _clean(event.alert_subject)
    return etree.tostring(message, encoding="utf-8")


def _code(parent: etree._Element, name: str, code: Code) -> etree._Element:
    return etree.SubElement(parent, name, {"csd-code": code.code, "codeSystemName": code.system,
                                           "originalText": code.meaning})


def _participant(message: etree._Element, participant: Participant) -> None:
    element = etree.SubElement(message, "ActiveParticipant", UserID=_clean(participant.user_id),
                               UserIsRequestor="true" if participant.requestor else "false")
    if participant.user_name:
        element.set("UserName", _clean(participant.user_name))
    if participant.address:
        element.set("NetworkAccessPointID", participant.address)
        element.set("NetworkAccessPointTypeCode", "2" if _is_ip(participant.address) else "1")
    if participant.role is not None:
        _code(element, "RoleIDCode", participant.role)


def _object(message: etree._Element, object_id: str, id_type: Code, *, type_code: str,
            role: str) -> etree._Element:
    element = etree.SubElement(message, "ParticipantObjectIdentification", ParticipantObjectID=_clean(object_id),
                               ParticipantObjectTypeCode=type_code, ParticipantObjectTypeCodeRole=role)
    _code(element, "ParticipantObjectIDTypeCode", id_type)
    return element


def _study(message: etree._Element, study: Study) -> None:
    # A.5.3.5: a system object (2) in the role of a report (3), identified by its Study Instance UID.
    element = _object(message, study.uid, STUDY_INSTANCE_UID, type_code="2", role="3")
    etree.SubElement(element, "ParticipantObjectName").text = study.uid
    description = etree.SubElement(element, "ParticipantObjectDescription")
    for sop_class, uids in sorted(study.instances.items()):
        sop = etree.SubElement(description, "SOPClass", UID=sop_class, NumberOfInstances=str(len(uids)))
        for uid in uids:
            etree.SubElement(sop, "Instance", UID=uid)
    contains = etree.SubElement(description, "ParticipantObjectContainsStudy")
    etree.SubElement(contains, "StudyIDs", UID=study.uid)


def _patient(message: etree._Element, patient: Patient) -> None:
    # A.5.3.5: a person (1) in the role of patient (1), identified by its Patient ID (HL7 CX with the issuer).
    identifier = f"{patient.id}^^^{patient.issuer}" if patient.issuer else patient.id
    element = _object(message, identifier, PATIENT_NUMBER, type_code="1", role="1")
    etree.SubElement(element, "ParticipantObjectName").text = _clean(patient.name or patient.id)


def _query(message: etree._Element, query: bytes, details: Iterable[tuple[str, bytes]]) -> None:
    # A.5.3.10: the SOP queried (2, role 3 report), the query itself base64, details as type/value pairs.
    element = _object(message, STUDY_ROOT_FIND, SOP_CLASS_UID, type_code="2", role="3")
    etree.SubElement(element, "ParticipantObjectQuery").text = base64.b64encode(query).decode("ascii")
    for name, value in details:
        etree.SubElement(element, "ParticipantObjectDetail", type=name, value=base64.b64encode(value).decode("ascii"))


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: a user name or a path from a request may hold control characters."""
    return "".join(ch if ch in "\t\n\r" or " " <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd" or ch >= "\U00010000"
                   else "\ufffd" for ch in text)
