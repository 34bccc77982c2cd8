"""The request forms of WADO-WS, read from a Body element into the services' own values.

Read as consumers write them, not as one schema revision orders them: elements are found by
local name whatever their prefix or namespace spelling (the DocumentRequest of RAD-69 lives in
the ITI namespace, its parents in the RAD one), HomeCommunityId may come before or after the
other identifiers (the published ITI schema and the 2017 WADO-WS draft differ), text between
elements is ignored and values are trimmed. What a request cannot do without (a document's UID,
a study) is a Sender fault naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from lxml import etree

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.encoding.xpath import XPathFilter, compile_filter
from xdsi.errors import InvalidRequest
from xdsi.services.imaging_documents import DocumentRequest
from xdsi.soap.faults import SENDER, Fault


@dataclass(frozen=True)
class DocumentSetRequest:
    """RetrieveImagingDocumentSetRequest (RAD TF-3 4.69.4.1.2)."""

    documents: tuple[DocumentRequest, ...]
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class InformationRequest:
    """One document of RetrieveImagingDocumentSetInformationRequest (PS3.18 2017b 6.4.3.1)."""

    document: DocumentRequest
    filters: tuple[XPathFilter, ...]
    frame_number: int | None
    anonymize: bool


# PS3.18 6.4.3: without an XPath the whole Native DICOM Model of the document is returned.
WHOLE_DOCUMENT = "/NativeDicomModel"
_TRUE = ("true", "1")


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    """Element children called ``name`` in any namespace."""
    for child in element:
        if isinstance(child.tag, str) and local(child) == name:
            yield child


def child_text(element: etree._Element, name: str) -> str | None:
    """The trimmed text of the first child called ``name``; None when absent or empty."""
    for child in children(element, name):
        return (child.text or "").strip() or None
    return None


def _attribute(element: etree._Element, *names: str) -> str | None:
    for name in names:
        value = (element.get(name) or "").strip()
        if value:
            return value
    return None


def documents(body: etree._Element, request_name: str, *, ids_required: bool = True
              ) -> Iterator[tuple[DocumentRequest, etree._Element]]:
    """Each ``request_name`` element under StudyRequest/SeriesRequest, as a DocumentRequest and
    the element itself (for an operation's own parameters)."""
    studies = list(children(body, "StudyRequest"))
    if not studies:
        raise Fault(SENDER, f"{local(body)} has no StudyRequest")
    for study in studies:
        # studyIUID / seriesIUID: the attribute names of dcm4chee-arc before 2017, still sent by old consumers.
        study_uid = _attribute(study, "studyInstanceUID", "studyIUID")
        if ids_required and study_uid is None:
            raise Fault(SENDER, "a StudyRequest has no studyInstanceUID")
        for series in children(study, "SeriesRequest"):
            series_uid = _attribute(series, "seriesInstanceUID", "seriesIUID")
            if ids_required and series_uid is None:
                raise Fault(SENDER, f"a SeriesRequest of study {study_uid} has no seriesInstanceUID")
            for element in children(series, request_name):
                document_uid = child_text(element, "DocumentUniqueId")
                if document_uid is None:
                    raise Fault(SENDER, f"a {request_name} has no DocumentUniqueId")
                yield DocumentRequest(
                    document_uid=document_uid,
                    study_uid=study_uid,
                    series_uid=series_uid if study_uid is not None else None,
                    repository_id=child_text(element, "RepositoryUniqueId"),
                    home_community_id=child_text(element, "HomeCommunityId"),
                ), element


def document_set_request(body: etree._Element) -> DocumentSetRequest:
    """RAD-69, with the 2017 WADO-WS extension of each DocumentRequest (Anonymize, FrameNumber)."""
    found = tuple(replace(request, anonymize=_flag(element, "Anonymize"),
                          frame_number=child_text(element, "FrameNumber"))
                  for request, element in documents(body, "DocumentRequest"))
    if not found:
        raise Fault(SENDER, "the request names no DocumentRequest")
    syntaxes: list[str] = []
    for listing in children(body, "TransferSyntaxUIDList"):
        syntaxes += [uid for element in children(listing, "TransferSyntaxUID")
                     if (uid := (element.text or "").strip())]
    # The schema makes the list mandatory; a consumer that leaves it out gets what WADO-RS sends
    # without a transfer-syntax parameter (PS3.18 8.7.3.5.2: Explicit VR Little Endian).
    return DocumentSetRequest(found, tuple(syntaxes) or (EXPLICIT_VR_LITTLE_ENDIAN,))


def information_request(body: etree._Element) -> tuple[InformationRequest, ...]:
    """Each document asked for, with its compiled filters. The 2017 WADO-WS draft names the
    element DocumentInformationRequest with one XPath and no study or series UIDs; PS3.18 6.4.3
    names it DocumentRequest, inside UID-bearing Study/SeriesRequests, with its XPath elements
    (read here directly or inside an XPathList). Both are read. An XPath's prefixes are those in
    scope where the client wrote it (see encoding/xpath.py for the namespace rule)."""
    found = []
    for name in ("DocumentInformationRequest", "DocumentRequest"):
        for document, element in documents(body, name, ids_required=False):
            paths = [path for path in element.iter() if isinstance(path.tag, str) and local(path) == "XPath"]
            filters = tuple(compile_filter((path.text or "").strip(), {k: v for k, v in path.nsmap.items() if k})
                            for path in paths) or (compile_filter(WHOLE_DOCUMENT),)
            found.append(InformationRequest(document, filters, _frame_number(element), _flag(element, "Anonymize")))
    if not found:
        raise Fault(SENDER, "the request names no DocumentInformationRequest")
    return tuple(found)


def _flag(element: etree._Element, name: str) -> bool:
    """An xs:boolean child: true or 1 (XML Schema 2 3.2.2); absent, false, 0 or anything else is false."""
    return (child_text(element, name) or "").lower() in _TRUE


def _frame_number(element: etree._Element) -> int | None:
    text = child_text(element, "FrameNumber")
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 1 << 31:
        raise InvalidRequest(f"FrameNumber {text[:20]!r} is not a positive integer")
    return int(text)


@dataclass(frozen=True)
class RenderedRequest:
    """One RenderedDocumentRequest (PS3.18 2017b 6.4.2.1): the WADO-URI rendering parameters."""

    document: DocumentRequest
    content_types: tuple[str, ...]
    annotation: str | None = None
    rows: int | None = None
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None
    window_center: float | None = None
    window_width: float | None = None
    image_quality: int | None = None
    presentation_uid: str | None = None
    presentation_series_uid: str | None = None
    anonymize: bool = False
    frame_number: int | None = None
    charsets: tuple[str, ...] = ()
    problem: InvalidRequest | None = None


def rendered_request(body: etree._Element) -> tuple[RenderedRequest, ...]:
    """Each RenderedDocumentRequest. A value that is not of its type fails only its document (the
    InvalidRequest is kept in ``problem``); ContentTypeList defaults to image/jpeg (PS3.18 9.1.2.1)."""
    found = []
    for document, element in documents(body, "RenderedDocumentRequest"):
        listing = next(children(element, "ContentTypeList"), None)
        content_types = tuple(text for item in (children(listing, "ContentType") if listing is not None else ())
                              if (text := (item.text or "").strip()))
        charsets = next(children(element, "CharsetList"), None)
        try:
            found.append(RenderedRequest(
                document, content_types or ("image/jpeg",),
                annotation=child_text(element, "Annotation"),
                rows=_number(element, "Rows", int), columns=_number(element, "Columns", int),
                region=_region(element),
                window_center=_number(element, "WindowCenter", float),
                window_width=_number(element, "WindowWidth", float),
                image_quality=_number(element, "ImageQuality", int),
                presentation_uid=child_text(element, "PresentationUID"),
                presentation_series_uid=child_text(element, "PresentationSeriesUID"),
                anonymize=_flag(element, "Anonymize"),
                frame_number=_frame_number(element),
                charsets=tuple((item.text or "").strip() for item in children(charsets, "Charset"))
                if charsets is not None else (),
            ))
        except InvalidRequest as problem:
            found.append(RenderedRequest(document, content_types, problem=problem))
    if not found:
        raise Fault(SENDER, "the request names no RenderedDocumentRequest")
    return tuple(found)


def _number(element: etree._Element, name: str, kind: type[int] | type[float]) -> Any:
    text = child_text(element, name)
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidRequest(f"{name} {text[:20]!r} is not a number") from None
    if kind is int and value < 1:
        raise InvalidRequest(f"{name} must be a positive integer, not {text[:20]}")
    return value


def _region(element: etree._Element) -> tuple[float, float, float, float] | None:
    """Region as XMin, YMin, XMax, YMax children (2017 WADO-WS, PS3.18 Annex E.3) or as the
    dcm4che string 'x1,y1,x2,y2' (the WADO-URI form)."""
    region = next(children(element, "Region"), None)
    if region is None:
        return None
    parts = [child_text(region, name) for name in ("XMin", "YMin", "XMax", "YMax")]
    if None in parts:
        parts = [part.strip() for part in (region.text or "").split(",")]
    try:
        values = tuple(float(part or "") for part in parts)
    except ValueError:
        raise InvalidRequest("Region needs four numbers: XMin, YMin, XMax, YMax") from None
    if len(values) != 4:
        raise InvalidRequest("Region needs four numbers: XMin, YMin, XMax, YMax")
    return values[0], values[1], values[2], values[3]
