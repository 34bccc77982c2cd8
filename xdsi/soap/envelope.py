"""SOAP envelopes: reading a request safely, and writing answers with their WS-Addressing headers.

Requests are parsed with no DTD, no entity expansion and no network access, and a message that
declares a DOCTYPE or an entity is refused before any parser sees it (RELIABILITY-SECURITY:
billion laughs, external entities). SOAP 1.2 and SOAP 1.1 are read alike and answered in kind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from xdsi.soap import namespaces as ns
from xdsi.soap.faults import MUST_UNDERSTAND, SENDER, VERSION_MISMATCH, Fault

# A DOCTYPE (hence any entity declaration) in UTF-8, and in the UTF-16 forms XML also allows.
_FORBIDDEN = tuple(token.encode(codec) for token in ("<!DOCTYPE", "<!ENTITY")
                   for codec in ("ascii", "utf-16-le", "utf-16-be"))
_TRUE = ("1", "true")
# Prefixes of fault Subcode values outside the envelope's namespace (a QName needs its prefix bound).
_SUBCODE_PREFIXES = {ns.WSA: "wsa", ns.WSSE: "wsse"}


@dataclass(frozen=True)
class SoapVersion:
    envelope_ns: str
    content_type: str  # of a plain message, and the start-info / type of an MTOM one
    must_understand: str  # the value written on answers' headers


SOAP12 = SoapVersion(ns.SOAP12, "application/soap+xml", "true")
SOAP11 = SoapVersion(ns.SOAP11, "text/xml", "1")


@dataclass(frozen=True)
class Request:
    """A parsed request: its SOAP version, addressing headers (trimmed) and Body payload."""

    version: SoapVersion
    envelope: etree._Element
    body: etree._Element
    action: str | None
    message_id: str | None
    to: str | None


def parser() -> etree.XMLParser:
    """lxml's parser with everything that reaches outside the document switched off."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True, remove_comments=True)


def parse_request(data: bytes, understood: frozenset[str] = frozenset()) -> Request:
    """The request in ``data``; a Fault for what is not a well-formed SOAP envelope.

    ``understood``: namespaces of header blocks handled elsewhere (WS-Security when enabled);
    any other header marked mustUnderstand that is not WS-Addressing is a MustUnderstand fault.
    """
    if any(token in data for token in _FORBIDDEN):
        raise Fault(SENDER, "DOCTYPE and entity declarations are not accepted in SOAP messages")
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError:
        raise Fault(SENDER, "the message is not well-formed XML") from None
    if etree.QName(root).localname != "Envelope":
        raise Fault(SENDER, "the message is not a SOAP envelope")
    version = {SOAP12.envelope_ns: SOAP12, SOAP11.envelope_ns: SOAP11}.get(etree.QName(root).namespace or "")
    if version is None:
        raise Fault(VERSION_MISMATCH, "the envelope is neither SOAP 1.2 nor SOAP 1.1")
    header = root.find(ns.qname(version.envelope_ns, "Header"))
    body = root.find(ns.qname(version.envelope_ns, "Body"))
    if body is None:
        raise Fault(SENDER, "the envelope has no Body")
    payload = next((child for child in body if isinstance(child.tag, str)), None)
    if payload is None:
        raise Fault(SENDER, "the Body is empty")
    blocks = [] if header is None else [child for child in header if isinstance(child.tag, str)]
    for block in blocks:
        namespace = etree.QName(block).namespace or ""
        marked = (block.get(ns.qname(version.envelope_ns, "mustUnderstand")) or "").strip() in _TRUE
        if marked and namespace != ns.WSA and namespace not in understood:
            raise Fault(MUST_UNDERSTAND, f"header {etree.QName(block).localname} ({namespace}) is not understood")
    return Request(version, root, payload, _header(blocks, "Action"), _header(blocks, "MessageID"),
                   _header(blocks, "To"))


def _header(blocks: list[etree._Element], name: str) -> str | None:
    for block in blocks:
        if block.tag == ns.qname(ns.WSA, name):
            return (block.text or "").strip() or None
    return None


def response(version: SoapVersion, action: str, relates_to: str | None, payload: etree._Element) -> etree._Element:
    """An answer envelope: WS-Addressing Action (mustUnderstand), MessageID, RelatesTo and To
    (ITI TF-2x V.3.2.2; the reply goes back on the request's connection, so To is anonymous)."""
    envelope = etree.Element(ns.qname(version.envelope_ns, "Envelope"),
                             nsmap={"env": version.envelope_ns, "wsa": ns.WSA})
    header = etree.SubElement(envelope, ns.qname(version.envelope_ns, "Header"))
    action_element = etree.SubElement(header, ns.qname(ns.WSA, "Action"))
    action_element.set(ns.qname(version.envelope_ns, "mustUnderstand"), version.must_understand)
    action_element.text = action
    etree.SubElement(header, ns.qname(ns.WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, ns.qname(ns.WSA, "RelatesTo")).text = relates_to
    etree.SubElement(header, ns.qname(ns.WSA, "To")).text = ns.ANONYMOUS
    body = etree.SubElement(envelope, ns.qname(version.envelope_ns, "Body"))
    body.append(payload)
    return envelope


def fault_envelope(version: SoapVersion, fault: Fault, relates_to: str | None) -> etree._Element:
    """The fault as SOAP 1.2 (Code/Subcode/Reason, Detail with wsa:ProblemAction) or SOAP 1.1."""
    wsa_fault = fault.subcode is not None and fault.subcode[0] == ns.WSA
    action = ns.ADDRESSING_FAULT_ACTION if wsa_fault else ns.FAULT_ACTION
    e = version.envelope_ns
    if version is SOAP12:
        element = etree.Element(ns.qname(e, "Fault"))
        code = etree.SubElement(element, ns.qname(e, "Code"))
        etree.SubElement(code, ns.qname(e, "Value")).text = f"env:{fault.code}"
        if fault.subcode is not None:
            namespace, local = fault.subcode
            prefix = _SUBCODE_PREFIXES.get(namespace, "env")
            sub = etree.SubElement(code, ns.qname(e, "Subcode"))
            value = etree.SubElement(sub, ns.qname(e, "Value"), nsmap={prefix: namespace} if prefix != "env" else None)
            value.text = f"{prefix}:{local}"
        reason = etree.SubElement(element, ns.qname(e, "Reason"))
        text = etree.SubElement(reason, ns.qname(e, "Text"))
        text.set(ns.qname(ns.XML, "lang"), "en")
        text.text = fault.reason
        if fault.problem_action is not None:
            detail = etree.SubElement(element, ns.qname(e, "Detail"))
            problem = etree.SubElement(detail, ns.qname(ns.WSA, "ProblemAction"))
            etree.SubElement(problem, ns.qname(ns.WSA, "Action")).text = fault.problem_action
    else:
        element = etree.Element(ns.qname(e, "Fault"))
        # SOAP 1.1 4.4.1: Client and Server are its names for Sender and Receiver.
        code = {SENDER: "Client", "Receiver": "Server"}.get(fault.code, fault.code)
        etree.SubElement(element, "faultcode").text = f"env:{code}"
        etree.SubElement(element, "faultstring").text = fault.reason
    return response(version, action, relates_to, element)


def serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
