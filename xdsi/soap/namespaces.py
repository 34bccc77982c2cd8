"""XML namespaces and WS-Addressing actions of WADO-WS (PS3.18 2017b 6.4, RAD TF-3 4.69, ITI TF-2x V)."""

from __future__ import annotations

from xdsi import errormap

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
IHE = "urn:ihe:iti:xds-b:2007"
IHERAD = "urn:ihe:rad:xdsi-b:2009"
WADO = "urn:dicom:wado:ws:2011"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XML = "http://www.w3.org/XML/1998/namespace"
# OASIS WSS 1.0/1.1: the security header and token elements (wsse; errormap names its fault
# codes, so it holds the name), and wsu:Id / wsu:Timestamp.
WSSE = errormap.WSSE
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"

ANONYMOUS = f"{WSA}/anonymous"
FAULT_ACTION = f"{WSA}/soap/fault"
ADDRESSING_FAULT_ACTION = f"{WSA}/fault"

RETRIEVE_IMAGING_DOCUMENT_SET = "RetrieveImagingDocumentSet"
RETRIEVE_RENDERED = "RetrieveRenderedImagingDocumentSet"
RETRIEVE_INFORMATION = "RetrieveImagingDocumentSetInformation"

# Request Action -> (operation, response Action). Several spellings reach each operation:
# PS3.18 2017b 6.4.2 and dcm4chee-arc (from 2018) write the rendered action under
# urn:dicom:wado:ws:2011:, older dcm4chee under urn:dicom:ws:wado:2011:, and PS3.18 Annex E.3's
# example answers under urn:ihe:iti:2007:. The metadata action is urn:wado:2011: in PS3.18 2016e
# 6.4.3.1 and urn:dicom:wado:ws:2011: in the 2017 IHE WADO-WS WSDL. Answers keep the family of
# the request's spelling, except the deprecated rendered ones, answered in the current form.
ACTIONS: dict[str, tuple[str, str]] = {
    "urn:ihe:rad:2009:RetrieveImagingDocumentSet": (
        RETRIEVE_IMAGING_DOCUMENT_SET, "urn:ihe:iti:2007:RetrieveDocumentSetResponse"),
    "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet": (
        RETRIEVE_RENDERED, "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse"),
    "urn:dicom:ws:wado:2011:RetrieveRenderedImagingDocumentSet": (
        RETRIEVE_RENDERED, "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse"),
    "urn:ihe:iti:2007:RetrieveRenderedImagingDocumentSet": (
        RETRIEVE_RENDERED, "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse"),
    "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation": (
        RETRIEVE_INFORMATION, "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse"),
    "urn:wado:2011:RetrieveImagingDocumentSetInformation": (
        RETRIEVE_INFORMATION, "urn:wado:2011:RetrieveImagingDocumentSetInformationResponse"),
}

# The Body element of each operation's request (by local name: consumers put these elements in
# the namespaces above, and an Action-less request is dispatched by its Body).
REQUEST_ELEMENTS = {
    "RetrieveImagingDocumentSetRequest": RETRIEVE_IMAGING_DOCUMENT_SET,
    "RetrieveRenderedImagingDocumentSetRequest": RETRIEVE_RENDERED,
    "RetrieveImagingDocumentSetInformationRequest": RETRIEVE_INFORMATION,
}

DEFAULT_RESPONSE_ACTIONS = {
    RETRIEVE_IMAGING_DOCUMENT_SET: "urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    RETRIEVE_RENDERED: "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse",
    RETRIEVE_INFORMATION: "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse",
}


def qname(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"
