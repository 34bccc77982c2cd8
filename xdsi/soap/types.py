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
from dataclasses import dataclass

from lxml import etree

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.services.imaging_documents import DocumentRequest
from xdsi.soap.faults import SENDER, Fault


@dataclass(frozen=True)
class DocumentSetRequest:
    """RetrieveImagingDocumentSetRequest (RAD TF-3 4.69.4.1.2)."""

    documents: tuple[DocumentRequest, ...]
    transfer_syntaxes: tuple[str, ...]


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
    found = tuple(request for request, _ in documents(body, "DocumentRequest"))
    if not found:
        raise Fault(SENDER, "the request names no DocumentRequest")
    syntaxes: list[str] = []
    for listing in children(body, "TransferSyntaxUIDList"):
        syntaxes += [uid for element in children(listing, "TransferSyntaxUID")
                     if (uid := (element.text or "").strip())]
    # The schema makes the list mandatory; a consumer that leaves it out gets what WADO-RS sends
    # without a transfer-syntax parameter (PS3.18 8.7.3.5.2: Explicit VR Little Endian).
    return DocumentSetRequest(found, tuple(syntaxes) or (EXPLICIT_VR_LITTLE_ENDIAN,))
