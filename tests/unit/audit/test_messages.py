"""Audit messages: every event kind valid against the DICOM audit message schema, with text a request could carry."""

from __future__ import annotations

from lxml import etree

from tests.conftest import SHARED
from xdsi.audit import messages as audit

SCHEMA = etree.RelaxNG(etree.parse(str(SHARED / "schemas-ref" / "dicom-audit" / "audit-message.rng")))
SOURCE = audit.Source("xdsi-1", "Radiology")


def valid(event: audit.Event) -> etree._Element:
    document = etree.fromstring(audit.to_xml(event, SOURCE))
    assert SCHEMA.validate(document), SCHEMA.error_log
    return document


def test_each_kind_of_event_is_schema_valid() -> None:
    requester = audit.Participant("dr.who", True, audit.DESTINATION, "10.0.0.7", user_name="Dr Who")
    archive = audit.Participant("https://pacs.example.org", False, audit.SOURCE, "pacs")
    study = audit.Study("1.2.3", {"1.2.840.10008.5.1.4.1.1.2": ["1.2.3.1", "1.2.3.2"], "1.2.840.10008.5.1.4.1.1.4": []})
    valid(audit.Event(audit.INSTANCES_TRANSFERRED, "R", audit.SUCCESS, [archive, requester], [audit.WADO_RS],
                      studies=[study], patients=[audit.Patient("P1", "HOSP"), audit.Patient("P2")]))
    valid(audit.Event(audit.QUERY, "E", audit.SUCCESS, [requester, archive], [audit.QIDO_RS],
                      query=b"/dicom-web/studies?PatientName=Doe*", query_details=[("TransferSyntax", b"1.2.840")]))
    valid(audit.Event(audit.APPLICATION_ACTIVITY, "E", audit.SUCCESS, [archive], [audit.APPLICATION_START]))
    valid(audit.Event(audit.USER_AUTHENTICATION, "E", audit.MINOR_FAILURE, [requester, archive], [audit.LOGIN],
                      outcome_description="wrong password"))
    alert = valid(audit.Event(audit.SECURITY_ALERT, "E", audit.MINOR_FAILURE, [requester],
                              [audit.USE_OF_RESTRICTED_FUNCTION], alert_subject="DELETE /dicom-web/studies/1.2.3"))
    assert alert.find("ParticipantObjectIdentification").get("ParticipantObjectID") == "DELETE /dicom-web/studies/1.2.3"


def test_text_from_a_request_cannot_break_the_message() -> None:
    hostile = audit.Participant('x"/><Evil>\x00\x1b]0;', True, address="not an address")
    document = valid(audit.Event(audit.USER_AUTHENTICATION, "E", audit.MINOR_FAILURE, [hostile], [audit.LOGIN],
                                 outcome_description="</EventOutcomeDescription>\x07 ☃ 𝄞"))
    participant = document.find("ActiveParticipant")
    assert participant.get("UserID") == 'x"/><Evil>\ufffd\ufffd]0;'
    assert participant.get("NetworkAccessPointTypeCode") == "1"
    assert document.findtext("EventIdentification/EventOutcomeDescription") == "</EventOutcomeDescription>\ufffd ☃ 𝄞"
