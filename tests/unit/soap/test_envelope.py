"""Reading request envelopes safely and writing answers with their WS-Addressing headers."""

from __future__ import annotations

import pytest
from lxml import etree

from xdsi.soap import envelope
from xdsi.soap import namespaces as ns
from xdsi.soap.faults import MUST_UNDERSTAND, SENDER, VERSION_MISMATCH, Fault

BODY = "<r:RetrieveImagingDocumentSetRequest xmlns:r='urn:ihe:rad:xdsi-b:2009'/>"


def message(soap: str = ns.SOAP12, header: str = "", body: str = BODY) -> bytes:
    return f"<e:Envelope xmlns:e='{soap}' xmlns:a='{ns.WSA}'><e:Header>{header}</e:Header><e:Body> text {body}</e:Body></e:Envelope>".encode()


@pytest.mark.parametrize("soap", [ns.SOAP12, ns.SOAP11])
def test_addressing_headers_are_read_trimmed(soap: str) -> None:
    request = envelope.parse_request(message(soap, "<a:Action e:mustUnderstand='1'>\n  urn:x:Act \n</a:Action>"
                                                   "<a:MessageID> urn:uuid:1 </a:MessageID><a:To>http://x/</a:To>"))
    assert (request.action, request.message_id, request.to) == ("urn:x:Act", "urn:uuid:1", "http://x/")
    assert request.version.envelope_ns == soap
    assert etree.QName(request.body).localname == "RetrieveImagingDocumentSetRequest"


@pytest.mark.parametrize("data", [
    b"<?xml version='1.0'?><!DOCTYPE e [<!ENTITY a 'b'>]><e/>",
    "<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE e><e/>".encode("utf-16-le"),
    "<!DOCTYPE e><e/>".encode("utf-16-be"),
    b"<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><!ENTITY x 'y'></e:Envelope>",
])
def test_doctype_and_entities_are_refused_before_parsing(data: bytes) -> None:
    with pytest.raises(Fault) as raised:
        envelope.parse_request(data)
    assert raised.value.code == SENDER and "DOCTYPE" in raised.value.reason


@pytest.mark.parametrize(("data", "code"), [
    (b"<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><e:Body>", SENDER),
    (b"<Envelope xmlns='urn:soap:9'><Body><x/></Body></Envelope>", VERSION_MISMATCH),
    (b"<Other/>", SENDER),
    (b"<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'/>", SENDER),
])
def test_what_is_not_a_soap_envelope_is_a_fault(data: bytes, code: str) -> None:
    with pytest.raises(Fault) as raised:
        envelope.parse_request(data)
    assert raised.value.code == code
    assert raised.value.status == (400 if code == SENDER else 500)


def test_an_unknown_must_understand_header_faults_unless_understood() -> None:
    data = message(header="<s:Security xmlns:s='urn:sec' e:mustUnderstand='true'/>")
    with pytest.raises(Fault) as raised:
        envelope.parse_request(data)
    assert raised.value.code == MUST_UNDERSTAND
    assert envelope.parse_request(data, frozenset({"urn:sec"})).body is not None
    assert envelope.parse_request(message(header="<s:Other xmlns:s='urn:sec'/>")).body is not None


@pytest.mark.parametrize("version", [envelope.SOAP12, envelope.SOAP11])
def test_answers_carry_action_message_id_relates_to_and_to(version: envelope.SoapVersion) -> None:
    answer = envelope.response(version, "urn:x:Reply", "urn:uuid:req", etree.Element("{urn:p}Payload"))
    header = answer.find(ns.qname(version.envelope_ns, "Header"))
    action = header.find(ns.qname(ns.WSA, "Action"))
    assert action.text == "urn:x:Reply"
    assert action.get(ns.qname(version.envelope_ns, "mustUnderstand")) == version.must_understand
    assert header.findtext(ns.qname(ns.WSA, "RelatesTo")) == "urn:uuid:req"
    assert header.findtext(ns.qname(ns.WSA, "To")) == ns.ANONYMOUS
    assert header.findtext(ns.qname(ns.WSA, "MessageID")).startswith("urn:uuid:")


def test_faults_in_each_version() -> None:
    fault = Fault(SENDER, "no such action", subcode=(ns.WSA, "ActionNotSupported"), problem_action="urn:x")
    soap12 = envelope.fault_envelope(envelope.SOAP12, fault, None)
    assert soap12.findtext(f".//{{{ns.SOAP12}}}Code/{{{ns.SOAP12}}}Value") == "env:Sender"
    assert soap12.findtext(f".//{{{ns.SOAP12}}}Subcode/{{{ns.SOAP12}}}Value") == "wsa:ActionNotSupported"
    assert soap12.findtext(f".//{{{ns.WSA}}}Action") == ns.ADDRESSING_FAULT_ACTION
    assert soap12.findtext(f".//{{{ns.WSA}}}ProblemAction/{{{ns.WSA}}}Action") == "urn:x"
    soap11 = envelope.fault_envelope(envelope.SOAP11, Fault(SENDER, "bad"), None)
    assert soap11.findtext(".//faultcode") == "env:Client"
    assert soap11.findtext(f".//{{{ns.WSA}}}Action") == ns.FAULT_ACTION
