"""The request forms read liberally: any prefix, identifiers in either order, legacy attribute names."""

from __future__ import annotations

import pytest
from lxml import etree

from xdsi.errors import InvalidRequest, InvalidXPath
from xdsi.services.imaging_documents import DocumentRequest
from xdsi.soap import types
from xdsi.soap.faults import Fault


def body(text: str) -> etree._Element:
    return etree.fromstring(text)


def test_rad69_request_with_community_after_the_ids_and_legacy_attributes() -> None:
    request = types.document_set_request(body(
        "<q:RetrieveImagingDocumentSetRequest xmlns:q='urn:ihe:rad:xdsi-b:2009' xmlns:z='urn:ihe:iti:xds-b:2007'>"
        "<q:StudyRequest studyIUID='1.2'> text <q:SeriesRequest seriesIUID='1.2.3'><z:DocumentRequest>"
        "<z:RepositoryUniqueId> 1.9 </z:RepositoryUniqueId><z:DocumentUniqueId>1.2.3.4</z:DocumentUniqueId>"
        "<z:HomeCommunityId>urn:oid:1.8</z:HomeCommunityId></z:DocumentRequest></q:SeriesRequest></q:StudyRequest>"
        "</q:RetrieveImagingDocumentSetRequest>"))
    assert request.documents == (DocumentRequest("1.2.3.4", "1.2", "1.2.3", "1.9", "urn:oid:1.8"),)
    assert request.transfer_syntaxes == ("1.2.840.10008.1.2.1",)  # no list: Explicit VR Little Endian


@pytest.mark.parametrize("text", [
    "<R/>",
    "<R><StudyRequest><SeriesRequest seriesInstanceUID='1'><DocumentRequest><DocumentUniqueId>1</DocumentUniqueId>"
    "</DocumentRequest></SeriesRequest></StudyRequest></R>",
    "<R><StudyRequest studyInstanceUID='1'><SeriesRequest seriesInstanceUID='1'><DocumentRequest/></SeriesRequest>"
    "</StudyRequest></R>",
    "<R><StudyRequest studyInstanceUID='1'/></R>",
])
def test_rad69_request_without_what_it_needs_is_a_sender_fault(text: str) -> None:
    with pytest.raises(Fault):
        types.document_set_request(body(text))


def test_information_request_in_the_ps318_layout() -> None:
    requests = types.information_request(body(
        "<w:RetrieveImagingDocumentSetInformationRequest xmlns:w='urn:dicom:wado:ws:2011' "
        "xmlns:i='urn:ihe:iti:xds-b:2007' xmlns:n='http://dicom.nema.org/PS3.19/models/NativeDICOM'>"
        "<w:StudyRequest studyInstanceUID='1.2'><w:SeriesRequest seriesInstanceUID='1.2.3'><w:DocumentRequest>"
        "<i:DocumentUniqueId>1.2.3.4</i:DocumentUniqueId><w:FrameNumber>2</w:FrameNumber><w:XPathList>"
        "<w:XPath>/n:NativeDicomModel</w:XPath><w:XPath>count(//Value)</w:XPath></w:XPathList>"
        "</w:DocumentRequest></w:SeriesRequest></w:StudyRequest></w:RetrieveImagingDocumentSetInformationRequest>"))
    [request] = requests
    assert request.document == DocumentRequest("1.2.3.4", "1.2", "1.2.3")
    assert [f.expression for f in request.filters] == ["/n:NativeDicomModel", "count(//Value)"]
    assert request.frame_number == 2 and not request.anonymize


def test_information_request_in_the_2017_layout_without_xpath_is_the_whole_model() -> None:
    [request] = types.information_request(body(
        "<RetrieveImagingDocumentSetInformationRequest><StudyRequest><SeriesRequest><DocumentInformationRequest>"
        "<DocumentUniqueId>1.2.3.4</DocumentUniqueId><Anonymize>true</Anonymize></DocumentInformationRequest>"
        "</SeriesRequest></StudyRequest></RetrieveImagingDocumentSetInformationRequest>"))
    assert request.document == DocumentRequest("1.2.3.4")
    assert [f.expression for f in request.filters] == [types.WHOLE_DOCUMENT] and request.anonymize


@pytest.mark.parametrize(("inner", "error"), [
    ("<XPath>document('x')</XPath>", InvalidXPath),
    ("<XPath>q:NativeDicomModel</XPath>", InvalidXPath),
    ("<FrameNumber>0</FrameNumber>", InvalidRequest),
    ("<FrameNumber>x</FrameNumber>", InvalidRequest),
])
def test_information_request_refusals(inner: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        types.information_request(body(
            "<R><StudyRequest><SeriesRequest><DocumentInformationRequest><DocumentUniqueId>1.2</DocumentUniqueId>"
            f"{inner}</DocumentInformationRequest></SeriesRequest></StudyRequest></R>"))


def test_rad69_document_request_reads_the_2017_extension() -> None:
    request = types.document_set_request(body(
        "<q:RetrieveImagingDocumentSetRequest xmlns:q='urn:ihe:rad:xdsi-b:2009' xmlns:z='urn:ihe:iti:xds-b:2007' "
        "xmlns:w='urn:dicom:wado:ws:2011'><q:StudyRequest studyInstanceUID='1.2'><q:SeriesRequest "
        "seriesInstanceUID='1.2.3'><z:DocumentRequest><z:DocumentUniqueId>1.2.3.4</z:DocumentUniqueId>"
        "<w:Anonymize> true </w:Anonymize><w:FrameNumber>3</w:FrameNumber></z:DocumentRequest><z:DocumentRequest>"
        "<z:DocumentUniqueId>1.2.3.5</z:DocumentUniqueId><w:Anonymize>0</w:Anonymize></z:DocumentRequest>"
        "</q:SeriesRequest></q:StudyRequest></q:RetrieveImagingDocumentSetRequest>"))
    assert request.documents == (DocumentRequest("1.2.3.4", "1.2", "1.2.3", anonymize=True, frame_number="3"),
                                 DocumentRequest("1.2.3.5", "1.2", "1.2.3"))
