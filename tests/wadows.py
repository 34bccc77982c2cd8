"""A raw SOAP 1.2 / 1.1 + MTOM client for WADO-WS tests, independent of the server's own code:
envelopes written as text, answers split with the email package's MIME parser, XOP resolved by
hand, and bodies checked against the published schemas in ../shared."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import unquote

from lxml import etree

from tests.conftest import SHARED
from tests.live import LiveServer, Reply

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
IHE = "urn:ihe:iti:xds-b:2007"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
WADO = "urn:dicom:wado:ws:2011"
RAD69 = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
EXPLICIT = "1.2.840.10008.1.2.1"
NS = {"s": SOAP12, "s11": SOAP11, "wsa": WSA, "xop": XOP, "ihe": IHE, "rs": RS, "wado": WADO}
VECTORS = SHARED / "vectors" / "wado-ws"


def envelope(body: str, action: str | None = RAD69, *, soap: str = SOAP12, message_id: str | None = None,
             to: str = "http://127.0.0.1/wado-ws") -> str:
    header = ""
    if action is not None:
        header = (f'<wsa:Action s:mustUnderstand="1">{action}</wsa:Action>'
                  f'<wsa:MessageID>{message_id or f"urn:uuid:{uuid.uuid4()}"}</wsa:MessageID><wsa:To>{to}</wsa:To>')
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{soap}" xmlns:wsa="{WSA}">'
            f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>")


def document_request(uid: str, repository: str | None, community: str | None = None) -> str:
    parts = []
    if community is not None:
        parts.append(f"<ihe:HomeCommunityId>{community}</ihe:HomeCommunityId>")
    if repository is not None:
        parts.append(f"<ihe:RepositoryUniqueId>{repository}</ihe:RepositoryUniqueId>")
    parts.append(f"<ihe:DocumentUniqueId>{uid}</ihe:DocumentUniqueId>")
    return f'<ihe:DocumentRequest xmlns:ihe="{IHE}">{"".join(parts)}</ihe:DocumentRequest>'


def rad69_body(series: dict[tuple[str, str], list[str]], repository: str | None, syntaxes: tuple[str, ...] = (EXPLICIT,),
               community: str | None = None) -> str:
    """A RetrieveImagingDocumentSetRequest for {(study, series): [SOP instance UIDs]}."""
    studies: dict[str, list[str]] = {}
    for (study, series_uid), documents in series.items():
        requests = "".join(document_request(uid, repository, community) for uid in documents)
        studies.setdefault(study, []).append(f'<r:SeriesRequest seriesInstanceUID="{series_uid}">{requests}</r:SeriesRequest>')
    body = "".join(f'<r:StudyRequest studyInstanceUID="{study}">{"".join(items)}</r:StudyRequest>'
                   for study, items in studies.items())
    listed = "".join(f"<r:TransferSyntaxUID>{uid}</r:TransferSyntaxUID>" for uid in syntaxes)
    return (f'<r:RetrieveImagingDocumentSetRequest xmlns:r="urn:ihe:rad:xdsi-b:2009">{body}'
            f"<r:TransferSyntaxUIDList>{listed}</r:TransferSyntaxUIDList></r:RetrieveImagingDocumentSetRequest>")


def post(live: LiveServer, message: str | bytes, content_type: str = "application/soap+xml; charset=utf-8",
         **headers: str) -> Reply:
    data = message.encode() if isinstance(message, str) else message
    return live.request("POST", "/wado-ws", body=data, headers={"Content-Type": content_type, **headers})


def mtom_request(message: str, action: str = RAD69) -> tuple[bytes, str]:
    """``message`` as an MTOM/XOP request (one root part), and its Content-Type."""
    boundary, start = f"MIMEBoundary_{uuid.uuid4().hex}", f"0.{uuid.uuid4().hex}@client"
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{start}>\r\n\r\n{message}\r\n--{boundary}--\r\n")
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{start}>"; '
                    f'start-info="application/soap+xml"; action="{action}"')
    return body.encode(), content_type


@dataclass
class Answer:
    envelope: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)

    def find(self, path: str) -> etree._Element | None:
        return self.envelope.find(path, NS)

    def findall(self, path: str) -> list[etree._Element]:
        return self.envelope.findall(path, NS)

    @property
    def body(self) -> etree._Element:
        body = self.find("s:Body") if self.find("s:Body") is not None else self.find("s11:Body")
        assert body is not None
        return body[0]

    def header(self, name: str) -> str | None:
        element = self.envelope.find(f".//wsa:{name}", NS)
        return None if element is None else element.text

    def status(self) -> str:
        [response] = self.envelope.xpath("//*[local-name()='RegistryResponse']")
        return response.get("status")

    def errors(self) -> list[tuple[str, str]]:
        """(errorCode, location) of each RegistryError."""
        return [(e.get("errorCode"), e.get("location")) for e in self.findall(".//rs:RegistryError")]

    def document(self, element: etree._Element) -> bytes:
        """The bytes an ihe:Document stands for, through its xop:Include."""
        include = element.find("xop:Include", NS)
        assert include is not None, "the document is not an XOP attachment"
        return self.attachments[unquote(include.get("href").removeprefix("cid:"))]

    def documents(self) -> dict[str, bytes]:
        """DocumentUniqueId -> bytes of every DocumentResponse."""
        return {response.findtext("ihe:DocumentUniqueId", namespaces=NS): self.document(response.find("ihe:Document", NS))
                for response in self.findall(".//ihe:DocumentResponse")}

    def infoset(self) -> etree._Element:
        """The Body payload as XOP decoding gives it: each xop:Include replaced by the base64 of its part."""
        payload = etree.fromstring(etree.tostring(self.body))
        for include in payload.iter(f"{{{XOP}}}Include"):
            parent = include.getparent()
            parent.remove(include)
            parent.text = base64.b64encode(self.attachments[unquote(include.get("href")[4:])][:48]).decode()
        return payload


def answer(reply: Reply) -> Answer:
    """Parse an MTOM or plain SOAP answer (checking the MTOM headers the profile requires)."""
    content_type = reply.header("Content-Type")
    if not content_type.startswith("multipart/related"):
        return Answer(etree.fromstring(reply.body))
    assert 'type="application/xop+xml"' in content_type and "start-info=" in content_type, content_type
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1)  # type: ignore[union-attr]
    chunks = reply.body.split(b"\r\n--" + boundary.encode())
    assert chunks[0].startswith(b"--" + boundary.encode() + b"\r\n") and chunks[-1] == b"--\r\n"
    chunks[0] = chunks[0].removeprefix(b"--" + boundary.encode())
    parts = []
    for chunk in chunks[:-1]:
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in head.decode().split("\r\n"))}
        parts.append((headers, content))
    (root_headers, root), *attachments = parts
    assert root_headers["content-type"].startswith("application/xop+xml")
    found = Answer(etree.fromstring(root))
    for headers, content in attachments:
        cid = headers["content-id"].strip().strip("<>")
        found.attachments[cid] = content
        found.content_types[cid] = headers["content-type"]
    return found


def fault(reply: Reply) -> tuple[str, str | None, str]:
    """(Code, Subcode, Reason) of a SOAP 1.2 fault answer."""
    found = answer(reply)
    code = found.envelope.findtext(".//s:Fault/s:Code/s:Value", namespaces=NS)
    subcode = found.envelope.findtext(".//s:Fault/s:Code/s:Subcode/s:Value", namespaces=NS)
    reason = found.envelope.findtext(".//s:Fault/s:Reason/s:Text", namespaces=NS)
    return code, subcode, reason


@cache
def published_schema(which: str) -> etree.XMLSchema:
    """'iti': the published IHE ITI XDS.b schema (RAD-69 answers); 'wado': the 2017 WADO-WS schema."""
    path = {"iti": VECTORS / "ihe-iti-official" / "XDS.b_DocumentRepository.xsd",
            "wado": VECTORS / "ihe-wadows-2017" / "schema" / "DICOM" / "dicom.wado.ws.2011.xsd"}[which]
    return etree.XMLSchema(etree.parse(str(path)))


def assert_valid(found: Answer, which: str) -> None:
    schema = published_schema(which)
    payload = found.infoset()
    assert schema.validate(payload), f"{schema.error_log}\n{etree.tostring(payload)[:3000]!r}"
