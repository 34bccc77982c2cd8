"""ATNA audit to a real rsyslog: the messages of a STOW, a QIDO, a WADO-RS retrieve, a refused login and a refused
access arrive over mutually authenticated TLS (RFC 5425), each valid against the DICOM audit message schema and
naming the right participants and objects; UDP (RFC 5426) carries them too; with the repository down, requests
still succeed and the drop count rises."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from tests import wadows, wssec_kit
from tests.certificates import TestCA
from tests.dicomfiles import make_dataset, make_instance, to_bytes
from tests.live import LiveServer, free_port
from tests.rsyslog import Rsyslog, all_of, event_id, find, find_new, objects, of_event, parsed, participants
from xdsi.audit import messages as audit
from xdsi.audit.syslog import transport_for
from xdsi.audit.trail import AuditTrail
from xdsi.security.basic import add_user
from xdsi.services.archive import Archive

BOUNDARY = "xdsi-audit-boundary"
STUDY = "1.2.826.0.1.3680043.10.1400.77"
SERIES = "1.2.826.0.1.3680043.10.1400.77.1"
SOP = "1.2.826.0.1.3680043.10.1400.77.1.1"


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


READER = basic("radiologist", "read pass")
WADO_WS_NAMESPACES = 'xmlns:w="http://dicom.nema.org/PS3.18/2013/wado" xmlns:i="urn:ihe:iti:xds-b:2007"'
MODALITY = basic("ct-1", "store pass")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, ca: TestCA) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog"), ca)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(path, "radiologist", "read pass", ["read"])
    add_user(path, "ct-1", "store pass", ["store"])
    return path


def audited_server(folder: Path, ca: TestCA, users_file: Path, audit_syslog: str, **settings: str) -> LiveServer:
    cert, key = ca.issue("xdsi.example.org", folder / "xdsi-client")
    return LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", users_file=str(users_file),
                      audit_syslog=audit_syslog, audit_tls_ca=str(ca.cert_file), audit_tls_cert=str(cert),
                      audit_tls_key=str(key), audit_source_id="xdsi-test", audit_site_id="Radiology",
                      **{"auth": "basic", **settings})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ca: TestCA, users_file: Path,
           rsyslog: Rsyslog) -> Iterator[LiveServer]:
    # One worker: /healthz then reports the counts of the worker that served every request.
    live = audited_server(tmp_path_factory.mktemp("audited"), ca, users_file, f"tls://127.0.0.1:{rsyslog.tls_port}",
                          workers="1")
    yield live
    live.stop()


def test_every_message_is_rfc5424_for_atna(server: LiveServer, rsyslog: Rsyslog) -> None:
    start = find(rsyslog, of_event("110100", event_type="110120"))
    assert participants(start)["Application"].get("UserIsRequestor") == "false"
    assert "Application Launcher" in participants(start)
    for received in rsyslog.received():
        # ITI-20: facility authpriv (10), severity notice (5); MSGID IHE+RFC-3881.
        assert (received.pri, received.app_name, received.msgid) == ("85", "xdsi", "IHE+RFC-3881")
        assert received.input == "tls"
    source = start.find("AuditSourceIdentification")
    assert (source.get("AuditSourceID"), source.get("AuditEnterpriseSiteID")) == ("xdsi-test", "Radiology")


def test_a_stow_is_audited_as_instances_transferred_create(server: LiveServer, rsyslog: Rsyslog) -> None:
    sop_uid = SOP
    body = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + make_instance(study_uid=STUDY, series_uid=SERIES, sop_uid=sop_uid, patient_id="P-77", IssuerOfPatientID="HOSP-A")
            + f"\r\n--{BOUNDARY}--\r\n".encode())
    stored = server.request("POST", "/dicom-web/studies", body, {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', **MODALITY})
    assert stored.status == 200
    message = find(rsyslog, of_event("110104", action="C"))
    assert message.find("EventIdentification").get("EventOutcomeIndicator") == "0"
    assert [t.get("csd-code") for t in message.findall("EventIdentification/EventTypeCode")] == ["RAD-108"]
    roles = participants(message)
    # PS3.15 A.5.3.5: the modality sent (source, requestor), this archive received (destination).
    assert roles["Source Role ID"].get("UserID") == "ct-1"
    assert roles["Source Role ID"].get("UserIsRequestor") == "true"
    assert roles["Source Role ID"].get("NetworkAccessPointID") == "127.0.0.1"
    assert roles["Destination Role ID"].get("UserIsRequestor") == "false"
    [study] = objects(message, "110180")
    assert study.get("ParticipantObjectID") == STUDY
    [sop_class] = study.findall("ParticipantObjectDescription/SOPClass")
    assert (sop_class.get("UID"), sop_class.get("NumberOfInstances")) == ("1.2.840.10008.5.1.4.1.1.2", "1")
    assert [i.get("UID") for i in sop_class.findall("Instance")] == [sop_uid]
    [patient] = objects(message, "2")
    assert patient.get("ParticipantObjectID") == "P-77^^^HOSP-A"
    assert (patient.get("ParticipantObjectTypeCode"), patient.get("ParticipantObjectTypeCodeRole")) == ("1", "1")


def test_a_qido_is_audited_with_its_query(server: LiveServer, rsyslog: Rsyslog) -> None:
    answer = server.request("GET", "/dicom-web/studies?PatientID=P-77&includefield=StudyDescription", headers=READER)
    assert answer.status == 200
    message = find(rsyslog, of_event("110112"))
    roles = participants(message)
    assert roles["Source Role ID"].get("UserID") == "radiologist"
    [query] = objects(message, "110181")
    assert query.get("ParticipantObjectID") == audit.STUDY_ROOT_FIND
    sent = base64.b64decode(query.findtext("ParticipantObjectQuery"))
    assert sent == b"/dicom-web/studies?PatientID=P-77&includefield=StudyDescription"


def test_a_login_is_audited_once_per_credential(server: LiveServer, rsyslog: Rsyslog) -> None:
    for _ in range(3):
        assert server.request("GET", "/dicom-web/studies", headers=READER).status == 200
    login = of_event("110114", event_type="110122", outcome="0")
    message = find(rsyslog, lambda d: login(d) and "radiologist" in participants(d))
    radiologist = participants(message)["radiologist"]
    assert radiologist.get("UserIsRequestor") == "true"
    assert radiologist.get("UserName") == "radiologist (basic)"
    assert radiologist.get("NetworkAccessPointID") == "127.0.0.1"
    assert participants(message)[server.base].get("UserIsRequestor") == "false"
    # PS3.15 A.5.3.12 audits a login, not each request: the same credentials again are no new login.
    assert len(all_of(rsyslog, lambda d: login(d) and "radiologist" in participants(d))) == 1


def test_a_wado_rs_retrieve_is_audited_as_instances_transferred_read(server: LiveServer, rsyslog: Rsyslog) -> None:
    began = len(all_of(rsyslog, of_event("110102", event_type="RAD-107")))
    answer = server.request("GET", f"/dicom-web/studies/{STUDY}", headers=READER)
    assert answer.status == 200
    # PS3.15 A.5.3.4: the transfer's start, from this archive (source) to the radiologist's client.
    begin = find_new(rsyslog, of_event("110102", event_type="RAD-107"), began)
    assert begin.find("EventIdentification").get("EventActionCode") == "E"
    assert participants(begin)["Source Role ID"].get("UserIsRequestor") == "false"
    assert participants(begin)["Destination Role ID"].get("UserID") == "radiologist"
    assert [s.get("ParticipantObjectID") for s in objects(begin, "110180")] == [STUDY]
    assert [p.get("ParticipantObjectID") for p in objects(begin, "2")] == ["P-77^^^HOSP-A"]
    message = find(rsyslog, of_event("110104", action="R", event_type="RAD-107"))
    assert message.find("EventIdentification").get("EventOutcomeIndicator") == "0"
    roles = participants(message)
    # The archive sent (source), the radiologist's client received (destination, requestor).
    assert roles["Source Role ID"].get("UserIsRequestor") == "false"
    assert roles["Destination Role ID"].get("UserID") == "radiologist"
    assert roles["Destination Role ID"].get("UserIsRequestor") == "true"
    assert [s.get("ParticipantObjectID") for s in objects(message, "110180")] == [STUDY]
    assert [p.get("ParticipantObjectID") for p in objects(message, "2")] == ["P-77^^^HOSP-A"]


def test_a_head_request_transfers_nothing_and_is_not_audited(server: LiveServer, rsyslog: Rsyslog) -> None:
    began, sent = of_event("110102", event_type="RAD-107"), of_event("110104", action="R", event_type="RAD-107")
    before = (len(all_of(rsyslog, began)), len(all_of(rsyslog, sent)))
    assert server.request("HEAD", f"/dicom-web/studies/{STUDY}", headers=READER).status == 200
    time.sleep(1)
    assert (len(all_of(rsyslog, began)), len(all_of(rsyslog, sent))) == before


def test_a_retrieve_the_client_cuts_short_is_a_failed_transfer(server: LiveServer, rsyslog: Rsyslog) -> None:
    study = generate_uid()
    archive = Archive.open(server.settings)
    try:
        for number in range(4):  # 4 x 8 MiB: more than the sockets' buffers hold
            ds = make_dataset(study_uid=study, patient_id="P-CUT", rows=1, columns=1)
            ds.Rows = ds.Columns = 2048
            ds.PixelData = np.full((2048, 2048), number, dtype=np.uint16).tobytes()
            [outcome] = archive.store.store([io.BytesIO(to_bytes(ds))])
            assert outcome.status.succeeded, outcome.reason
    finally:
        archive.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", f"/dicom-web/studies/{study}", headers=READER)
    response = connection.getresponse()
    assert response.status == 200
    response.read(1 << 20)
    connection.close()  # the rest is never taken
    cut = find(rsyslog, lambda d: of_event("110104", action="R", event_type="RAD-107", outcome="4")(d)
               and [s.get("ParticipantObjectID") for s in objects(d, "110180")] == [study])
    assert cut.findtext("EventIdentification/EventOutcomeDescription") == "the answer was cut off before its end"
    assert participants(cut)["Destination Role ID"].get("UserID") == "radiologist"


@pytest.mark.parametrize("path", [f"/dicom-web/studies/{STUDY}/metadata",
                                  f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/rendered"])
def test_metadata_and_rendered_reads_are_audited(server: LiveServer, rsyslog: Rsyslog, path: str) -> None:
    wanted = of_event("110104", action="R", event_type="RAD-107")
    before = len(all_of(rsyslog, wanted))
    answer = server.request("GET", path, headers=READER)
    assert answer.status == 200
    message = find_new(rsyslog, wanted, before)
    assert participants(message)["Destination Role ID"].get("UserID") == "radiologist"
    [study] = objects(message, "110180")
    assert [i.get("UID") for i in study.findall("ParticipantObjectDescription/SOPClass/Instance")] == [SOP]
    # Revalidated, or asked for the headers alone, nothing is sent again: no new message.
    etag = answer.header("ETag")
    assert server.request("GET", path, headers={**READER, "If-None-Match": etag}).status == 304
    assert server.request("HEAD", path, headers=READER).status == 200
    time.sleep(1)
    assert len(all_of(rsyslog, wanted)) == before + 1


def test_a_rad69_retrieve_is_audited_with_its_requester(server: LiveServer, rsyslog: Rsyslog) -> None:
    body = wadows.envelope(wadows.rad69_body({(STUDY, SERIES): [SOP, "1.2.3.404"]},
                                             server.settings.repository_unique_id))
    answer = wadows.post(server, body, **READER)
    assert answer.status == 200
    begin = find(rsyslog, of_event("110102", event_type="RAD-69"))
    assert participants(begin)["Destination Role ID"].get("UserID") == "radiologist"
    message = find(rsyslog, of_event("110104", action="R", event_type="RAD-69"))
    assert message.find("EventIdentification").get("EventOutcomeIndicator") == "0"
    roles = participants(message)
    assert roles["Source Role ID"].get("UserID") == server.base
    assert roles["Destination Role ID"].get("UserID") == "radiologist"
    assert roles["Destination Role ID"].get("NetworkAccessPointID") == "127.0.0.1"
    # Only the document sent: the unknown one is a RegistryError in the answer, not a transfer.
    [study] = objects(message, "110180")
    assert [i.get("UID") for i in study.findall("ParticipantObjectDescription/SOPClass/Instance")] == [SOP]
    assert [p.get("ParticipantObjectID") for p in objects(message, "2")] == ["P-77^^^HOSP-A"]


@pytest.mark.parametrize("operation", ["rendered", "metadata"])
def test_wado_ws_rendered_and_metadata_reads_are_audited(server: LiveServer, rsyslog: Rsyslog, operation: str) -> None:
    """Instances Transferred (read) for the instance rendered or described, without a RAD-69 event
    type: those WADO-WS operations have no IHE transaction of their own."""
    document = f"<i:DocumentUniqueId>{SOP}</i:DocumentUniqueId>"
    if operation == "rendered":
        action = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"
        request = (f"<w:RetrieveRenderedImagingDocumentSetRequest {WADO_WS_NAMESPACES}><w:StudyRequest "
                   f'studyInstanceUID="{STUDY}"><w:SeriesRequest seriesInstanceUID="{SERIES}"><w:RenderedDocumentRequest>'
                   f"{document}<w:ContentTypeList><w:ContentType>image/png</w:ContentType></w:ContentTypeList>"
                   "</w:RenderedDocumentRequest></w:SeriesRequest></w:StudyRequest>"
                   "</w:RetrieveRenderedImagingDocumentSetRequest>")
    else:
        action = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
        request = (f"<w:RetrieveImagingDocumentSetInformationRequest {WADO_WS_NAMESPACES}><w:StudyRequest>"
                   f"<w:SeriesRequest><w:DocumentInformationRequest>{document}</w:DocumentInformationRequest>"
                   "</w:SeriesRequest></w:StudyRequest></w:RetrieveImagingDocumentSetInformationRequest>")
    read = of_event("110104", action="R")
    before = len(all_of(rsyslog, read))
    answer = wadows.post(server, wadows.envelope(request, action=action), **READER)
    assert answer.status == 200 and wadows.answer(answer).status() == wadows.SUCCESS
    message = find_new(rsyslog, read, before)
    assert message.find("EventIdentification").findall("EventTypeCode") == []
    assert participants(message)["Destination Role ID"].get("UserID") == "radiologist"
    [study] = objects(message, "110180")
    assert [i.get("UID") for i in study.findall("ParticipantObjectDescription/SOPClass/Instance")] == [SOP]


def test_a_wado_uri_retrieve_is_audited_as_instances_transferred_read(server: LiveServer, rsyslog: Rsyslog) -> None:
    answer = server.request("GET", f"/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={SOP}"
                                   "&contentType=application/dicom", headers=READER)
    assert answer.status == 200
    message = find(rsyslog, of_event("110104", action="R", event_type="RAD-55"))
    assert participants(message)["Destination Role ID"].get("UserID") == "radiologist"
    [study] = objects(message, "110180")
    assert [i.get("UID") for i in study.findall("ParticipantObjectDescription/SOPClass/Instance")] == [SOP]


def test_a_refused_login_and_a_refused_access_are_audited(server: LiveServer, rsyslog: Rsyslog) -> None:
    assert server.request("GET", "/dicom-web/studies", headers=basic("radiologist", "guess")).status == 401
    login = find(rsyslog, of_event("110114", event_type="110122", outcome="4"))
    assert participants(login)["radiologist"].get("UserIsRequestor") == "true"
    # A request without credentials is the first step of every login, not an incident: not audited.
    before = len(rsyslog.received())
    assert server.request("GET", "/dicom-web/studies").status == 401
    assert server.request("DELETE", f"/dicom-web/studies/{STUDY}", headers=READER).status == 403
    alert = find(rsyslog, of_event("110113", event_type="110132"))
    assert participants(alert)["radiologist"].get("UserIsRequestor") == "true"
    [subject] = objects(alert, "12")
    assert subject.get("ParticipantObjectID") == f"DELETE /dicom-web/studies/{STUDY}"
    logins = [m for m in rsyslog.received()[before:] if event_id(parsed(m)) == "110114"
              and parsed(m).find("EventIdentification").get("EventOutcomeIndicator") != "0"]
    assert logins == []


def test_the_health_check_counts_what_was_sent(server: LiveServer) -> None:
    health = json.loads(server.request("GET", "/healthz").body)
    assert health["audit"]["dropped"] == 0
    assert health["audit"]["sent"] >= 1


def test_udp_carries_the_messages_too(rsyslog: Rsyslog) -> None:
    trail = AuditTrail(lambda: transport_for(f"udp://127.0.0.1:{rsyslog.udp_port}"), audit.Source("xdsi-udp"),
                       capacity=10)
    trail.record(audit.Event(audit.APPLICATION_ACTIVITY, "E", audit.SUCCESS, event_types=[audit.APPLICATION_START],
                             participants=[audit.Participant("xdsi-udp", False, audit.APPLICATION)]))
    trail.close()
    received = rsyslog.wait_for(lambda messages: any(m.input == "udp" for m in messages))
    [message] = [m for m in received if m.input == "udp"]
    assert parsed(message).find("AuditSourceIdentification").get("AuditSourceID") == "xdsi-udp"


def test_a_caller_named_by_a_saml_assertion_logs_in_and_retrieves_by_rad69(
        tmp_path: Path, ca: TestCA, users_file: Path, rsyslog: Rsyslog) -> None:
    pki = wssec_kit.make_pki()
    trust = tmp_path / "idp.pem"
    trust.write_bytes(pki.ca.cert_pem)
    live = audited_server(tmp_path, ca, users_file, f"tls://127.0.0.1:{rsyslog.tls_port}", workers="1",
                          auth="basic,saml", saml_trust_store=str(trust), saml_audience="https://xdsi.example/wado-ws")
    try:
        study, series, sop = generate_uid(), generate_uid(), generate_uid()
        body = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + make_instance(study_uid=study, series_uid=series, sop_uid=sop, patient_id="P-XUA")
                + f"\r\n--{BOUNDARY}--\r\n".encode())
        assert live.request("POST", "/dicom-web/studies", body, {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', **MODALITY}).status == 200
        message = wssec_kit.with_assertion(
            wadows.envelope(wadows.rad69_body({(study, series): [sop]}, live.settings.repository_unique_id)),
            wssec_kit.saml_assertion(pki.client, "dr.who@hospital.example"))
        for _ in range(2):
            assert wadows.post(live, message).status == 200
        login = of_event("110114", event_type="110122", outcome="0")
        named = find(rsyslog, lambda d: login(d) and "dr.who@hospital.example" in participants(d))
        assert participants(named)["dr.who@hospital.example"].get("UserName") == "dr.who@hospital.example (saml)"
        sent = find(rsyslog, lambda d: of_event("110104", action="R", event_type="RAD-69")(d)
                    and [s.get("ParticipantObjectID") for s in objects(d, "110180")] == [study])
        assert participants(sent)["Destination Role ID"].get("UserID") == "dr.who@hospital.example"
        time.sleep(1)
        assert len(all_of(rsyslog, lambda d: login(d) and "dr.who@hospital.example" in participants(d))) == 1
    finally:
        live.stop()


def test_with_the_repository_down_requests_succeed_and_drops_are_counted(
        tmp_path: Path, ca: TestCA, users_file: Path) -> None:
    # Nothing listens on this port: every connection is refused, the queue of two fills, the rest is dropped.
    live = audited_server(tmp_path, ca, users_file, f"tls://127.0.0.1:{free_port()}", audit_queue_size="2",
                          workers="1")
    try:
        for _ in range(6):
            assert live.request("GET", "/dicom-web/studies", headers=READER).status == 200
        health = json.loads(live.request("GET", "/healthz").body)
        assert health["audit"]["sent"] == 0
        assert health["audit"]["dropped"] >= 3
        assert health["status"] == "ok"
    finally:
        live.stop()


def test_the_application_stop_is_audited_last(server: LiveServer, rsyslog: Rsyslog) -> None:
    server.stop()
    # Other servers of this module report to the same repository: the stop of this one is awaited.
    stop = find(rsyslog, lambda d: of_event("110100", event_type="110121")(d)
                and participants(d)["Application"].get("UserID") == server.base)
    assert participants(stop)["Application Launcher"].get("UserIsRequestor") == "true"
