"""WADO-WS against a running server, spoken raw (SOAP 1.2 / 1.1, plain and MTOM): RAD-69 outcomes,
the request samples of NIST and dcm4chee replayed, the WSDL, faults and hostile messages."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from lxml import etree
from pydicom.data import get_testdata_file

from bench.timing import server_cpu
from tests.conftest import DATABASES
from tests.dicomfiles import make_instance
from tests.integration.test_stow_rs import dicom_parts
from tests.integration.test_stow_rs import post as stow
from tests.live import LiveServer, Reply
from tests.wadows import (
    EXPLICIT,
    FAILURE,
    NS,
    PARTIAL,
    RAD69,
    SOAP11,
    SUCCESS,
    VECTORS,
    answer,
    assert_valid,
    envelope,
    fault,
    mtom_request,
    post,
    rad69_body,
)

# The identifiers of the NIST XDS toolkit's samples: this source is their repository .110.1 (sample 03)
# and home community .200.
REPOSITORY = "1.3.6.1.4.1.21367.13.80.110.1"
COMMUNITY = "urn:oid:1.3.6.1.4.1.21367.13.70.200"
IMPLICIT = "1.2.840.10008.1.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
FILES = ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "emri_small_RLE.dcm"]


@pytest.fixture(scope="module", params=DATABASES)
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp(f"wado-ws-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new()
    server = LiveServer(url, folder / "store", repository_unique_id=REPOSITORY, home_community_id=COMMUNITY,
                        max_soap_request_bytes=str(256 * 1024))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stored(ws: LiveServer) -> dict[str, tuple[str, str, str, Path]]:
    """pydicom files stored on the server: name -> (study, series, instance, file)."""
    found = {}
    for name in FILES:
        path = Path(get_testdata_file(name))
        assert stow(ws, dicom_parts(path.read_bytes())).status == 200
        ds = pydicom.dcmread(path)
        found[name] = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path)
    return found


def rad69(ws: LiveServer, stored: dict, names: list[str], syntaxes: tuple[str, ...] = (EXPLICIT,),
          extra: tuple[str, ...] = (), repository: str | None = REPOSITORY, community: str | None = None):
    series: dict[tuple[str, str], list[str]] = {}
    for name in names:
        study, series_uid, instance, _ = stored[name]
        series.setdefault((study, series_uid), []).append(instance)
    if extra:
        study, series_uid, _, _ = stored[names[0]]
        series[(study, series_uid)] += list(extra)
    reply = post(ws, envelope(rad69_body(series, repository, syntaxes, community)))
    assert reply.status == 200, reply.body[:2000]
    return reply, answer(reply)


@pytest.mark.parametrize("name", FILES)
def test_rad69_returns_a_document_byte_identical_as_stored(ws: LiveServer, stored: dict, name: str) -> None:
    _, _, instance, path = stored[name]
    syntax = str(pydicom.dcmread(path).file_meta.TransferSyntaxUID)
    reply, found = rad69(ws, stored, [name], (EXPLICIT, syntax))
    assert found.status() == SUCCESS and not found.errors()
    assert found.documents() == {instance: path.read_bytes()}
    [mime] = found.envelope.xpath("//*[local-name()='mimeType']/text()")
    assert mime == "application/dicom"
    assert set(found.content_types.values()) == {"application/dicom"}
    assert reply.header("Content-Length") == str(len(reply.body))
    assert_valid(found, "iti")


def test_rad69_answer_carries_ws_addressing(ws: LiveServer, stored: dict) -> None:
    message = envelope(rad69_body({stored["CT_small.dcm"][:2]: [stored["CT_small.dcm"][2]]}, REPOSITORY),
                       message_id="urn:uuid:11111111-2222-3333-4444-555555555555")
    reply = post(ws, message)
    found = answer(reply)
    assert 'start-info="application/soap+xml"' in reply.header("Content-Type")
    assert 'action="urn:ihe:iti:2007:RetrieveDocumentSetResponse"' in reply.header("Content-Type")
    assert found.header("Action") == "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    assert found.find(".//wsa:Action").get(f"{{{NS['s']}}}mustUnderstand") == "true"
    assert found.header("RelatesTo") == "urn:uuid:11111111-2222-3333-4444-555555555555"
    assert found.header("To") == "http://www.w3.org/2005/08/addressing/anonymous"
    assert found.header("MessageID").startswith("urn:uuid:")


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "emri_small_RLE.dcm"])
def test_rad69_transcodes_to_the_first_producible_listed_syntax(ws: LiveServer, stored: dict, name: str) -> None:
    _, _, instance, path = stored[name]
    original = pydicom.dcmread(path)
    assert original.file_meta.TransferSyntaxUID not in (IMPLICIT, "1.2.3.4")
    _, found = rad69(ws, stored, [name], ("1.2.3.4", IMPLICIT))
    assert found.status() == SUCCESS
    got = pydicom.dcmread(io.BytesIO(found.documents()[instance]))
    assert got.file_meta.TransferSyntaxUID == IMPLICIT
    assert np.array_equal(got.pixel_array, original.pixel_array)
    assert_valid(found, "iti")


def test_rad69_partial_success_with_one_missing_document(ws: LiveServer, stored: dict) -> None:
    _, found = rad69(ws, stored, ["CT_small.dcm"], extra=["1.2.3.999"])
    assert found.status() == PARTIAL
    assert found.errors() == [("XDSMissingDocument", "1.2.3.999")]
    assert list(found.documents()) == [stored["CT_small.dcm"][2]]
    [error] = found.findall(".//rs:RegistryError")
    assert error.get("severity") == "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
    assert error.get("codeContext")
    assert_valid(found, "iti")


def test_rad69_failure_when_no_document_is_found(ws: LiveServer, stored: dict) -> None:
    reply = post(ws, envelope(rad69_body({("1.2.3", "1.2.3.4"): ["1.2.3.4.5", "1.2.3.4.6"]}, REPOSITORY)))
    found = answer(reply)
    assert reply.status == 200 and found.status() == FAILURE
    assert found.errors() == [("XDSMissingDocument", "1.2.3.4.5"), ("XDSMissingDocument", "1.2.3.4.6")]
    assert found.documents() == {}
    assert_valid(found, "iti")


def test_rad69_unknown_repository(ws: LiveServer, stored: dict) -> None:
    _, found = rad69(ws, stored, ["CT_small.dcm"], repository="1.2.3.4.5.6")
    assert found.status() == FAILURE
    assert found.errors() == [("XDSUnknownRepositoryId", stored["CT_small.dcm"][2])]
    assert_valid(found, "iti")


def test_rad69_unknown_home_community(ws: LiveServer, stored: dict) -> None:
    _, found = rad69(ws, stored, ["CT_small.dcm"], community="urn:oid:1.2.3.4")
    assert found.status() == FAILURE
    assert found.errors() == [("XDSUnknownCommunity", stored["CT_small.dcm"][2])]
    _, found = rad69(ws, stored, ["CT_small.dcm"], community=COMMUNITY)
    assert found.status() == SUCCESS
    [community] = found.envelope.xpath("//*[local-name()='DocumentResponse']/*[local-name()='HomeCommunityId']/text()")
    assert community == COMMUNITY
    assert_valid(found, "iti")


def test_rad69_impossible_transfer_syntax_list_fails_each_document(ws: LiveServer, stored: dict) -> None:
    # JPEG 2000 cannot be made from RLE here, and 1.2.3.4 is no transfer syntax at all.
    _, found = rad69(ws, stored, ["CT_small.dcm", "JPEG2000.dcm"], ("1.2.3.4", "1.2.840.10008.1.2.4.94"))
    assert found.status() == FAILURE
    assert sorted(found.errors()) == sorted([("urn:dicom:wado:0007", stored["CT_small.dcm"][2]),
                                             ("urn:dicom:wado:0007", stored["JPEG2000.dcm"][2])])
    assert_valid(found, "iti")


def test_rad69_one_document_of_two_not_producible_is_partial(ws: LiveServer, stored: dict) -> None:
    # Only JPEG baseline listed: the CT (16-bit) cannot be made JPEG baseline; the stored JPEG is sent as it is.
    _, found = rad69(ws, stored, ["SC_rgb_jpeg_dcmtk.dcm", "CT_small.dcm"], (JPEG_BASELINE,))
    assert found.status() == PARTIAL
    assert found.errors() == [("urn:dicom:wado:0007", stored["CT_small.dcm"][2])]
    assert found.documents() == {stored["SC_rgb_jpeg_dcmtk.dcm"][2]: stored["SC_rgb_jpeg_dcmtk.dcm"][3].read_bytes()}


def test_rad69_soap11_is_answered_in_kind(ws: LiveServer, stored: dict) -> None:
    study, series, instance, path = stored["CT_small.dcm"]
    message = envelope(rad69_body({(study, series): [instance]}, REPOSITORY), action=None, soap=SOAP11)
    reply = post(ws, message, "text/xml; charset=utf-8", SOAPAction=f'"{RAD69}"')
    assert reply.status == 200
    assert 'start-info="text/xml"' in reply.header("Content-Type")
    found = answer(reply)
    assert etree.QName(found.envelope).namespace == SOAP11
    assert found.documents() == {instance: path.read_bytes()}


def test_rad69_mtom_request(ws: LiveServer, stored: dict) -> None:
    study, series, instance, path = stored["MR_small_bigendian.dcm"]
    body, content_type = mtom_request(envelope(rad69_body({(study, series): [instance]}, REPOSITORY,
                                                         ("1.2.840.10008.1.2.2",))))
    reply = post(ws, body, content_type)
    assert reply.status == 200
    assert answer(reply).documents() == {instance: path.read_bytes()}


def test_liberal_reading(ws: LiveServer, stored: dict) -> None:
    """Whitespace around the Action, text between elements, other prefixes, another wsa:To, and
    HomeCommunityId after the other identifiers (the 2017 WADO-WS draft's order)."""
    study, series, instance, path = stored["CT_small.dcm"]
    body = (f'<x:RetrieveImagingDocumentSetRequest xmlns:x="urn:ihe:rad:xdsi-b:2009" xmlns:y="urn:ihe:iti:xds-b:2007">\n'
            f'  stray text <x:StudyRequest studyInstanceUID=" {study} ">\n <x:SeriesRequest seriesInstanceUID="{series}">'
            f"<y:DocumentRequest>\n <y:RepositoryUniqueId> {REPOSITORY} </y:RepositoryUniqueId>"
            f"<y:DocumentUniqueId>\n{instance}\n</y:DocumentUniqueId>"
            f"<y:HomeCommunityId>{COMMUNITY}</y:HomeCommunityId></y:DocumentRequest>"
            f"</x:SeriesRequest></x:StudyRequest><x:TransferSyntaxUIDList> <x:TransferSyntaxUID> {EXPLICIT} "
            f"</x:TransferSyntaxUID></x:TransferSyntaxUIDList></x:RetrieveImagingDocumentSetRequest>")
    message = (f'<S:Envelope xmlns:S="{NS["s"]}" xmlns:A="{NS["wsa"]}"><S:Header><A:Action S:mustUnderstand="true">\n'
               f"  {RAD69}  \n</A:Action><A:To>http://elsewhere.example/ImagingDocumentSource</A:To></S:Header>"
               f"<S:Body>{body}</S:Body></S:Envelope>")
    reply = post(ws, message)
    found = answer(reply)
    assert found.status() == SUCCESS, etree.tostring(found.envelope)[:2000]
    assert found.documents() == {instance: path.read_bytes()}


def _nist_instances(sample: Path) -> list[tuple[str, str, str]]:
    tree = etree.parse(str(sample))
    found = []
    for study in tree.xpath("//*[local-name()='StudyRequest']"):
        for series in study.xpath("*[local-name()='SeriesRequest']"):
            for uid in series.xpath(".//*[local-name()='DocumentUniqueId']/text()"):
                found.append((study.get("studyInstanceUID"), series.get("seriesInstanceUID"), uid))
    return found


@pytest.fixture(scope="module")
def nist(ws: LiveServer) -> dict[str, bytes]:
    """Instances with the UIDs the NIST samples ask for, stored: SOP Instance UID -> file."""
    files = {}
    for sample in sorted((VECTORS / "nist-iheos-toolkit2").glob("*.xml")):
        for study, series, uid in _nist_instances(sample):
            if uid not in files:
                files[uid] = make_instance(study_uid=study, series_uid=series, sop_uid=uid, rows=8, columns=8)
    assert stow(ws, dicom_parts(*files.values())).status == 200
    return files


@pytest.mark.parametrize(("sample", "status", "errors"), [
    ("01-one-object-one-study.xml", FAILURE, ["XDSUnknownRepositoryId"]),
    ("02-two-objects-each-of-two-studies.xml", FAILURE, ["XDSUnknownRepositoryId"] * 4),
    ("03-two-repositories.xml", PARTIAL, ["XDSUnknownRepositoryId"]),
    ("04-two-home-communities.xml", PARTIAL, ["XDSUnknownCommunity"]),
])
def test_nist_samples_replayed(ws: LiveServer, nist: dict[str, bytes], sample: str, status: str,
                               errors: list[str]) -> None:
    """Samples 01 and 02 address repository .110, which this source (.110.1) is not; 03 and 04 each
    address this source for one document and another source for the other."""
    body = (VECTORS / "nist-iheos-toolkit2" / sample).read_text()
    reply = post(ws, envelope(body))
    found = answer(reply)
    assert found.status() == status
    assert [code for code, _ in found.errors()] == errors
    for uid, data in found.documents().items():
        assert data == nist[uid]
    assert_valid(found, "iti")


def test_dcm4chee_mtom_sample_replayed(ws: LiveServer) -> None:
    """dcm4chee-arc's RAD-69 request, byte for byte except its repository (this source's), asks for
    Implicit VR Little Endian: the document comes transcoded, pixel for pixel the stored one."""
    raw = (VECTORS / "dcm4chee-arc-cs" / "rad69-request.http").read_bytes().replace(b"\r\n", b"\n")
    head, _, body = raw.partition(b"\n\n")
    content_type = re.search(rb"^Content-Type: (.*)$", head, re.M).group(1).decode()  # type: ignore[union-attr]
    body = body.replace(b"\n", b"\r\n").replace(b"1.3.6.1.4.1.21367.13.80.110<", REPOSITORY.encode() + b"<")
    uids = re.findall(rb'(?:studyInstanceUID|seriesInstanceUID)="([0-9.]+)"|<xdsb:DocumentUniqueId>([0-9.]+)<', body)
    study, series, document = (a.decode() or b.decode() for a, b in uids)
    data = make_instance(study_uid=study, series_uid=series, sop_uid=document, rows=16, columns=16)
    assert stow(ws, dicom_parts(data)).status == 200
    reply = post(ws, body, content_type)
    found = answer(reply)
    assert found.status() == SUCCESS
    got = pydicom.dcmread(io.BytesIO(found.documents()[document]))
    assert got.file_meta.TransferSyntaxUID == IMPLICIT
    assert np.array_equal(got.pixel_array, pydicom.dcmread(io.BytesIO(data)).pixel_array)
    assert_valid(found, "iti")


def test_wsdl_and_schemas_are_served_with_public_locations(ws: LiveServer) -> None:
    reply = ws.request("GET", "/wado-ws?wsdl")
    assert reply.status == 200 and reply.header("Content-Type").startswith("text/xml")
    wsdl = etree.fromstring(reply.body)
    [address] = wsdl.xpath("//*[local-name()='address']/@location")
    assert address == f"{ws.base}/wado-ws"
    pending, seen = list(wsdl.xpath("//@schemaLocation")), set()
    while pending:
        location = pending.pop()
        assert location.startswith(f"{ws.base}/wado-ws?xsd="), location
        if location in seen:
            continue
        seen.add(location)
        schema = ws.request("GET", location.removeprefix(ws.base))
        assert schema.status == 200, location
        pending += etree.fromstring(schema.body).xpath("//@schemaLocation")
    assert len(seen) == 5  # XDS.b, XDS-I.b, WADO-WS, ebRS rs and rim
    assert ws.request("GET", "/wado-ws?xsd=../../etc/passwd").status == 404
    assert ws.request("GET", "/wado-ws").status == 400


def test_unknown_action_is_action_not_supported(ws: LiveServer) -> None:
    reply = post(ws, envelope(rad69_body({("1.2", "1.2.3"): ["1.2.3.4"]}, REPOSITORY), action="urn:example:Nothing"))
    assert reply.status == 400
    code, subcode, reason = fault(reply)
    assert (code, subcode) == ("env:Sender", "wsa:ActionNotSupported")
    assert "urn:example:Nothing" in reason
    assert answer(reply).header("Action") == "http://www.w3.org/2005/08/addressing/fault"
    assert answer(reply).envelope.findtext(".//wsa:ProblemAction/wsa:Action", namespaces=NS) == "urn:example:Nothing"


def test_action_that_does_not_match_the_body_is_a_sender_fault(ws: LiveServer) -> None:
    reply = post(ws, envelope(rad69_body({("1.2", "1.2.3"): ["1.2.3.4"]}, REPOSITORY),
                              action="urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"))
    assert reply.status == 400 and fault(reply)[0] == "env:Sender"


@pytest.mark.parametrize(("message", "words"), [
    (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><unclosed></s:Body>", "well-formed"),
    (b"not xml at all", "well-formed"),
    (b"<Envelope xmlns='urn:other'><Body/></Envelope>", "neither SOAP"),
    (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body/></s:Envelope>", "Body is empty"),
    (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><r:RetrieveImagingDocumentSetRequest "
     b"xmlns:r='urn:ihe:rad:xdsi-b:2009'/></s:Body></s:Envelope>", "no StudyRequest"),
])
def test_malformed_messages_are_sender_faults(ws: LiveServer, message: bytes, words: str) -> None:
    reply = post(ws, message)
    code, _, reason = fault(reply)
    # SOAP 1.2 Part 2 7.5.2.2: Sender faults are 400, VersionMismatch 500.
    assert (code, reply.status) in (("env:Sender", 400), ("env:VersionMismatch", 500)) and words in reason


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
                             for i in range(1, 10))
                  + b"]><s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body>&lol9;</s:Body></s:Envelope>")
EXTERNAL_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                   b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body>&x;</s:Body></s:Envelope>")


@pytest.mark.parametrize("message", [BILLION_LAUGHS, EXTERNAL_ENTITY, BILLION_LAUGHS.decode().encode("utf-16")],
                         ids=["billion-laughs", "external-entity", "utf-16-doctype"])
def test_doctype_and_entities_are_refused_unexpanded(ws: LiveServer, message: bytes) -> None:
    started = time.monotonic()
    reply = post(ws, message, "application/soap+xml")
    assert time.monotonic() - started < 2
    assert reply.status == 400
    assert b"root:" not in reply.body and b"lollol" not in reply.body
    assert "DOCTYPE" in fault(reply)[2] or "well-formed" in fault(reply)[2]


def test_oversized_request_is_refused(ws: LiveServer) -> None:
    reply = post(ws, envelope(" " * (300 * 1024) + rad69_body({("1.2", "1.2.3"): ["1.2.3.4"]}, REPOSITORY)))
    assert reply.status == 400 and "larger than" in fault(reply)[2]


def test_other_media_type_is_415(ws: LiveServer) -> None:
    reply = post(ws, b"{}", "application/json")
    assert reply.status == 415


def test_unknown_must_understand_header_faults(ws: LiveServer) -> None:
    message = envelope("<x/>").replace("<s:Header>", '<s:Header><z:Secret xmlns:z="urn:z" s:mustUnderstand="1"/>')
    reply = post(ws, message)
    assert reply.status == 500 and fault(reply)[0] == "env:MustUnderstand"


def test_invalid_uid_is_a_per_document_error(ws: LiveServer, stored: dict) -> None:
    _, found = rad69(ws, stored, ["CT_small.dcm"], extra=["1.2.abc"])
    assert found.status() == PARTIAL
    assert found.errors() == [("urn:dicom:wado:0012", "1.2.abc")]


INFORMATION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"


def information_body(documents: list[tuple[str, list[str]]], *, study: tuple[str, str] | None = None,
                     element: str = "DocumentInformationRequest", extra: str = "") -> str:
    """The 2017 layout by default (no UIDs on Study/SeriesRequest, one XPath per document)."""
    requests = "".join(
        f"<w:{element}><i:RepositoryUniqueId>{REPOSITORY}</i:RepositoryUniqueId>"
        f"<i:DocumentUniqueId>{uid}</i:DocumentUniqueId>{extra}"
        + "".join(f"<w:XPath>{path}</w:XPath>" for path in paths) + f"</w:{element}>"
        for uid, paths in documents)
    study_attr = f' studyInstanceUID="{study[0]}"' if study else ""
    series_attr = f' seriesInstanceUID="{study[1]}"' if study else ""
    return (f'<w:RetrieveImagingDocumentSetInformationRequest xmlns:w="{NS["wado"]}" xmlns:i="{NS["ihe"]}">'
            f"<w:StudyRequest{study_attr}><w:SeriesRequest{series_attr}>{requests}</w:SeriesRequest></w:StudyRequest>"
            f"</w:RetrieveImagingDocumentSetInformationRequest>")


def xpath_responses(found) -> dict[str, list[str]]:
    return {response.findtext("ihe:DocumentUniqueId", namespaces=NS):
            [r.text or "" for r in response.findall("wado:XPathResponseList/wado:XPathResponse", NS)]
            for response in found.findall(".//wado:DocumentInformationResponse")}


SOP_CLASS = '/NativeDicomModel/DicomAttribute[@keyword="SOPClassUID"]/Value/text()'
FAMILY_NAME = '/NativeDicomModel/DicomAttribute[@keyword="PatientName"]/PersonName/Alphabetic/FamilyName/text()'


def test_information_filters_metadata_by_xpath(ws: LiveServer, stored: dict) -> None:
    _, _, ct, path = stored["CT_small.dcm"]
    _, _, mr, mr_path = stored["MR_small_bigendian.dcm"]
    reply = post(ws, envelope(information_body([(ct, [FAMILY_NAME]), (mr, [SOP_CLASS])]),
                              action=INFORMATION))
    assert reply.status == 200, reply.body[:2000]
    found = answer(reply)
    assert found.header("Action") == "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse"
    assert found.status() == SUCCESS
    ds, mr_ds = pydicom.dcmread(path), pydicom.dcmread(mr_path)
    assert xpath_responses(found) == {ct: [str(ds.PatientName.family_name)], mr: [mr_ds.SOPClassUID]}
    assert_valid(found, "wado")


def test_information_ps318_form_with_several_xpaths_and_a_frame(ws: LiveServer, stored: dict) -> None:
    study, series, ct, path = stored["CT_small.dcm"]
    paths = ['/NativeDicomModel/DicomAttribute[@tag="00080060"]/Value[@number=1]/text()',
             'p:NativeDicomModel/p:DicomAttribute[@keyword="Rows"]/p:Value/text()']
    body = information_body([(ct, paths)], study=(study, series), element="DocumentRequest",
                            extra="<w:FrameNumber>1</w:FrameNumber>").replace(
        "<w:DocumentRequest>", '<w:DocumentRequest xmlns:p="http://dicom.nema.org/PS3.19/models/NativeDICOM">')
    reply = post(ws, envelope(body, action="urn:wado:2011:RetrieveImagingDocumentSetInformation"))
    found = answer(reply)
    assert found.header("Action") == "urn:wado:2011:RetrieveImagingDocumentSetInformationResponse"
    assert xpath_responses(found) == {ct: ["CT", str(pydicom.dcmread(path).Rows)]}
    assert found.envelope.findtext(".//wado:FrameNumber", namespaces=NS) == "1"
    assert_valid(found, "wado")


def test_information_without_xpath_is_the_whole_model(ws: LiveServer, stored: dict) -> None:
    _, _, ct, _ = stored["CT_small.dcm"]
    found = answer(post(ws, envelope(information_body([(ct, [])]), action=INFORMATION)))
    [text] = xpath_responses(found)[ct]
    model = etree.fromstring(text.encode())
    assert etree.QName(model).localname == "NativeDicomModel"
    assert model.find('{*}DicomAttribute[@keyword="SOPInstanceUID"]/{*}Value').text == ct


def test_information_partial_success(ws: LiveServer, stored: dict) -> None:
    _, _, ct, _ = stored["CT_small.dcm"]
    body = information_body([(ct, ["count(/)"]), ("1.2.3.4.404", ["count(/)"])])
    found = answer(post(ws, envelope(body, action=INFORMATION)))
    assert found.status() == PARTIAL
    assert found.errors() == [("XDSMissingDocument", "1.2.3.4.404")]
    assert xpath_responses(found) == {ct: ["1"]}
    assert_valid(found, "wado")


@pytest.fixture(scope="module")
def large(ws: LiveServer) -> str:
    """An instance whose Native DICOM Model has some 20,000 elements (a long sequence)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from tests.dicomfiles import make_dataset, to_bytes

    ds = make_dataset()
    items = []
    for number in range(2000):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = str(number), "99X", f"meaning {number}"
        items.append(item)
    ds.AnatomicRegionSequence = Sequence(items)
    assert stow(ws, dicom_parts(to_bytes(ds))).status == 200
    return ds.SOPInstanceUID


@pytest.mark.parametrize("expression", [
    "count(//*[count(//*[count(//*)>0])>0])",
    "//*[. = //*]",
    "concat(" + ", ".join(["string(/)"] * 60) + ")",
    "//*",
], ids=["exponential", "quadratic", "huge-text", "huge-node-set"])
def test_hostile_xpath_is_a_fault_within_a_second(ws: LiveServer, large: str, expression: str) -> None:
    """The XPath's own cost is bounded at 1 s: the server's CPU time for the request, against the
    same request with a cheap filter, which pays the rest (building the 20,000-element model).
    CPU time, since the wall clock of a shared machine stretches with other processes' load."""
    def measured(path: str) -> tuple[float, float, Reply]:
        cpu, started = server_cpu([ws.process.pid]) or 0.0, time.monotonic()
        reply = post(ws, envelope(information_body([(large, [path])]), action=INFORMATION))
        return (server_cpu([ws.process.pid]) or 0.0) - cpu, time.monotonic() - started, reply

    cheap, _, reply = measured("count(/)")
    assert answer(reply).status() == SUCCESS
    hostile, wall, reply = measured(expression)
    assert reply.status == 400 and fault(reply)[0] == "env:Sender", reply.body[:1000]
    assert hostile - cheap < 1.0, (hostile, cheap, wall)
    assert wall < 30, wall


@pytest.mark.parametrize("expression", ["document('/etc/passwd')", "//Value[", "$secret", "ext:f()", ""])
def test_refused_xpath_is_a_sender_fault(ws: LiveServer, stored: dict, expression: str) -> None:
    _, _, ct, _ = stored["CT_small.dcm"]
    body = information_body([(ct, [expression])])
    if not expression:
        body = body.replace("<w:XPath></w:XPath>", "<w:XPath> </w:XPath>")
    reply = post(ws, envelope(body, action=INFORMATION))
    assert reply.status == 400 and fault(reply)[0] == "env:Sender"
    assert b"root:" not in reply.body


RENDERED = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"


def rendered_body(study: str, series: str, documents: list[tuple[str, str]]) -> str:
    """Documents as (SOP Instance UID, parameter elements in the schema's order)."""
    requests = "".join(f"<w:RenderedDocumentRequest><i:RepositoryUniqueId>{REPOSITORY}</i:RepositoryUniqueId>"
                       f"<i:DocumentUniqueId>{uid}</i:DocumentUniqueId>{parameters}</w:RenderedDocumentRequest>"
                       for uid, parameters in documents)
    return (f'<w:RetrieveRenderedImagingDocumentSetRequest xmlns:w="{NS["wado"]}" xmlns:i="{NS["ihe"]}">'
            f'<w:StudyRequest studyInstanceUID="{study}"><w:SeriesRequest seriesInstanceUID="{series}">{requests}'
            f"</w:SeriesRequest></w:StudyRequest></w:RetrieveRenderedImagingDocumentSetRequest>")


def rendered_images(found) -> dict[str, tuple[str, bytes]]:
    return {response.findtext("wado:SourceDocumentUniqueId", namespaces=NS):
            (response.findtext("ihe:mimeType", namespaces=NS), found.document(response.find("ihe:Document", NS)))
            for response in found.findall(".//wado:RenderedDocumentResponse")}


@pytest.mark.parametrize("action", [RENDERED, "urn:dicom:ws:wado:2011:RetrieveRenderedImagingDocumentSet",
                                    "urn:ihe:iti:2007:RetrieveRenderedImagingDocumentSet"])
def test_rendered_images_with_their_parameters(ws: LiveServer, stored: dict, action: str) -> None:
    from PIL import Image

    study, series, ct, _ = stored["CT_small.dcm"]
    png = ("<w:Rows>32</w:Rows><w:Columns>32</w:Columns><w:Region><w:XMin>0</w:XMin><w:YMin>0</w:YMin>"
           "<w:XMax>0.5</w:XMax><w:YMax>0.5</w:YMax></w:Region><w:WindowCenter>40</w:WindowCenter>"
           "<w:WindowWidth>400</w:WindowWidth><w:ContentTypeList><w:ContentType>image/png</w:ContentType>"
           "</w:ContentTypeList>")
    reply = post(ws, envelope(rendered_body(study, series, [(ct, png)]), action=action))
    assert reply.status == 200, reply.body[:1500]
    found = answer(reply)
    assert found.header("Action") == "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse"
    assert found.status() == SUCCESS
    [(mime, data)] = rendered_images(found).values()
    image = Image.open(io.BytesIO(data))
    assert mime == "image/png" and image.format == "PNG" and max(image.size) <= 32
    assert set(found.content_types.values()) == {"image/png"}
    assert found.envelope.findtext(".//wado:RenderedDocumentResponse/wado:WindowWidth", namespaces=NS) == "400.0"
    assert_valid(found, "wado")


def test_rendered_per_document_errors(ws: LiveServer, stored: dict) -> None:
    study, series, ct, _ = stored["CT_small.dcm"]
    jpeg = "<w:ContentTypeList><w:ContentType>image/*</w:ContentType></w:ContentTypeList>"
    body = rendered_body(study, series, [
        (ct, jpeg), ("1.2.3.404", jpeg),
        (ct, "<w:WindowCenter>40</w:WindowCenter>" + jpeg),
        (ct, "<w:ContentTypeList><w:ContentType>application/pdf</w:ContentType></w:ContentTypeList>"),
        (ct, "<w:Rows>many</w:Rows>" + jpeg)])
    found = answer(post(ws, envelope(body, action=RENDERED)))
    assert found.status() == PARTIAL
    assert [code for code, _ in found.errors()] == ["XDSMissingDocument", "urn:dicom:wado:0012",
                                                     "urn:dicom:wado:0007", "urn:dicom:wado:0012"]
    [(mime, data)] = rendered_images(found).values()
    assert mime == "image/jpeg" and data.startswith(b"\xff\xd8")
    assert_valid(found, "wado")


def test_dcm4chee_rendered_sample_replayed(ws: LiveServer) -> None:
    """dcm4chee-arc's rendered request (MTOM, 64x64, window, quality 50, frame 1), its repository
    changed to this source's, for an instance stored under its UIDs."""
    raw = (VECTORS / "dcm4chee-arc-cs" / "rendered-request.http").read_bytes().replace(b"\r\n", b"\n")
    head, _, body = raw.partition(b"\n\n")
    content_type = re.search(rb"^Content-Type: (.*)$", head, re.M).group(1).decode()  # type: ignore[union-attr]
    body = body.replace(b"\n", b"\r\n").replace(b"1.3.6.1.4.1.21367.13.80.110<", REPOSITORY.encode() + b"<")
    study = re.search(rb'studyInstanceUID="([0-9.]+)"', body).group(1).decode()  # type: ignore[union-attr]
    series = re.search(rb'seriesInstanceUID="([0-9.]+)"', body).group(1).decode()  # type: ignore[union-attr]
    document = re.search(rb"<xdsb:DocumentUniqueId>([0-9.]+)<", body).group(1).decode()  # type: ignore[union-attr]
    data = make_instance(study_uid=study, series_uid=series, sop_uid=document, rows=128, columns=128)
    assert stow(ws, dicom_parts(data)).status == 200
    found = answer(post(ws, body, content_type))
    assert found.status() == SUCCESS
    [(mime, jpeg)] = rendered_images(found).values()
    from PIL import Image

    image = Image.open(io.BytesIO(jpeg))
    assert mime == "image/jpeg" and image.format == "JPEG" and max(image.size) == 64
    assert_valid(found, "wado")
