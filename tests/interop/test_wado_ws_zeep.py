"""zeep, a real SOAP client, calls WADO-WS on a running server: built from the WSDL the server
publishes, and from the published 2017 IHE WADO-WS WSDL in ../shared (pointed at this server)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from pydicom.data import get_testdata_file
from zeep import Client, Settings

from tests.conftest import DATABASES
from tests.integration.test_stow_rs import dicom_parts
from tests.integration.test_stow_rs import post as stow
from tests.live import LiveServer
from tests.wadows import EXPLICIT, PARTIAL, SUCCESS, VECTORS

PUBLISHED_WSDL = VECTORS / "ihe-wadows-2017" / "wsdl" / "XDS-I.b_ImagingDocumentSource.wsdl"
BINDING = "{urn:ihe:rad:xdsi-b:2009}ImagingDocumentSource_Binding"
FILES = ["CT_small.dcm", "MR_small.dcm"]


@pytest.fixture(scope="module", params=DATABASES)
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp(f"zeep-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new()
    server = LiveServer(url, folder / "store")
    for name in FILES:
        assert stow(server, dicom_parts(Path(get_testdata_file(name)).read_bytes())).status == 200
    yield server
    server.stop()


def _documents(name: str) -> tuple[pydicom.Dataset, bytes]:
    path = Path(get_testdata_file(name))
    return pydicom.dcmread(path), path.read_bytes()


def _rad69_request(ws: LiveServer, missing: str | None = None) -> dict:
    studies = []
    for name in FILES:
        ds, _ = _documents(name)
        documents = [{"RepositoryUniqueId": ws.settings.repository_unique_id, "DocumentUniqueId": ds.SOPInstanceUID}]
        if missing and name == FILES[0]:
            documents.append({"RepositoryUniqueId": ws.settings.repository_unique_id, "DocumentUniqueId": missing})
        studies.append({"studyInstanceUID": ds.StudyInstanceUID,
                        "SeriesRequest": [{"seriesInstanceUID": ds.SeriesInstanceUID, "DocumentRequest": documents}]})
    return {"StudyRequest": studies, "TransferSyntaxUIDList": {"TransferSyntaxUID": [EXPLICIT]}}


def test_zeep_from_the_served_wsdl_retrieves_documents(ws: LiveServer) -> None:
    client = Client(f"{ws.base}/wado-ws?wsdl", settings=Settings(strict=True))
    result = client.service.ImagingDocumentSource_RetrieveImagingDocumentSet(**_rad69_request(ws))
    assert result.RegistryResponse.status == SUCCESS
    got = {response.DocumentUniqueId: response.Document for response in result.DocumentResponse}
    expected = {ds.SOPInstanceUID: data for ds, data in map(_documents, FILES)}
    assert got == expected
    assert {response.mimeType for response in result.DocumentResponse} == {"application/dicom"}


def test_zeep_partial_success(ws: LiveServer) -> None:
    client = Client(f"{ws.base}/wado-ws?wsdl")
    result = client.service.ImagingDocumentSource_RetrieveImagingDocumentSet(**_rad69_request(ws, missing="1.2.3.4.5"))
    assert result.RegistryResponse.status == PARTIAL
    [error] = result.RegistryResponse.RegistryErrorList.RegistryError
    assert (error.errorCode, error.location) == ("XDSMissingDocument", "1.2.3.4.5")
    assert len(result.DocumentResponse) == len(FILES)


def test_zeep_from_the_published_wsdl_retrieves_documents(ws: LiveServer) -> None:
    """The 2017 WSDL's RAD-69 output names a RetrieveDocumentResponse wrapper (an IHE erratum);
    xdsi answers the published ITI RetrieveDocumentSetResponse, which a zeep client of that WSDL
    reads in its lax mode: the RegistryResponse and DocumentResponse elements come as raw elements,
    with each XOP attachment already put back in its Document as base64."""
    client = Client(str(PUBLISHED_WSDL), settings=Settings(strict=False))
    service = client.create_service(BINDING, f"{ws.base}/wado-ws")
    result = service.ImagingDocumentSource_RetrieveImagingDocumentSet(**_rad69_request(ws))
    raw = {etree.QName(element).localname: element for element in reversed(result._raw_elements)}
    assert raw["RegistryResponse"].get("status") == SUCCESS
    got = {}
    for element in result._raw_elements:
        if etree.QName(element).localname == "DocumentResponse":
            uid = element.findtext("{urn:ihe:iti:xds-b:2007}DocumentUniqueId")
            got[uid] = base64.b64decode(element.findtext("{urn:ihe:iti:xds-b:2007}Document"))
    assert got == {ds.SOPInstanceUID: data for ds, data in map(_documents, FILES)}


FAMILY_NAME = '/NativeDicomModel/DicomAttribute[@keyword="PatientName"]/PersonName/Alphabetic/FamilyName/text()'


@pytest.mark.parametrize("wsdl", ["served", "published"])
def test_zeep_retrieves_filtered_metadata(ws: LiveServer, wsdl: str) -> None:
    """RetrieveImagingDocumentSetInformation in the 2017 layout, which both WSDLs describe."""
    if wsdl == "served":
        service = Client(f"{ws.base}/wado-ws?wsdl", settings=Settings(strict=True)).service
    else:
        service = Client(str(PUBLISHED_WSDL)).create_service(BINDING, f"{ws.base}/wado-ws")
    ds, _ = _documents("CT_small.dcm")
    result = service.ImagingDocumentSource_RetrieveImagingDocumentSetInformation(StudyRequest=[{"SeriesRequest": [{
        "DocumentInformationRequest": [{"RepositoryUniqueId": ws.settings.repository_unique_id,
                                        "DocumentUniqueId": ds.SOPInstanceUID, "XPath": FAMILY_NAME}]}]}])
    assert result.RegistryResponse.status == SUCCESS
    [document] = result.DocumentInformationResponse
    assert document.DocumentUniqueId == ds.SOPInstanceUID
    assert document.XPathResponseList.XPathResponse == [str(ds.PatientName.family_name)]


@pytest.mark.parametrize("wsdl", ["served", "published"])
def test_zeep_retrieves_a_rendered_image(ws: LiveServer, wsdl: str) -> None:
    from PIL import Image

    if wsdl == "served":
        service = Client(f"{ws.base}/wado-ws?wsdl", settings=Settings(strict=True)).service
    else:
        service = Client(str(PUBLISHED_WSDL)).create_service(BINDING, f"{ws.base}/wado-ws")
    ds, _ = _documents("CT_small.dcm")
    result = service.ImagingDocumentSource_RetrieveRenderedImagingDocumentSet(StudyRequest=[{
        "studyInstanceUID": ds.StudyInstanceUID, "SeriesRequest": [{
            "seriesInstanceUID": ds.SeriesInstanceUID, "RenderedDocumentRequest": [{
                "RepositoryUniqueId": ws.settings.repository_unique_id, "DocumentUniqueId": ds.SOPInstanceUID,
                "Rows": 48, "Region": {"XMin": 0.25, "YMin": 0.25, "XMax": 0.75, "YMax": 0.75},
                "ContentTypeList": {"ContentType": ["image/jpeg"]}}]}]}])
    assert result.RetrieveDocumentSetResponse.RegistryResponse.status == SUCCESS
    [document] = result.RenderedDocumentResponse
    assert document.SourceDocumentUniqueId == ds.SOPInstanceUID and document.mimeType == "image/jpeg"
    image = Image.open(io.BytesIO(document.Document))
    assert image.format == "JPEG" and image.size[1] <= 48


def _service(ws: LiveServer, wsdl: str):
    if wsdl == "served":
        return Client(f"{ws.base}/wado-ws?wsdl", settings=Settings(strict=True)).service
    return Client(str(PUBLISHED_WSDL), settings=Settings(strict=False)).create_service(BINDING, f"{ws.base}/wado-ws")


@pytest.mark.parametrize("wsdl", ["served", "published"])
def test_zeep_anonymize_and_frame_number_in_document_requests(ws: LiveServer, wsdl: str) -> None:
    """The 2017 extension of ihe:DocumentRequest, as zeep writes it from either WSDL: Anonymize gives
    the de-identified instance; FrameNumber refuses its document (a RAD-69 document is the whole file)."""
    ct, _ = _documents("CT_small.dcm")
    mr, _ = _documents("MR_small.dcm")
    repository = ws.settings.repository_unique_id
    studies = [{"studyInstanceUID": ds.StudyInstanceUID, "SeriesRequest": [{
        "seriesInstanceUID": ds.SeriesInstanceUID, "DocumentRequest": [{
            "RepositoryUniqueId": repository, "DocumentUniqueId": ds.SOPInstanceUID, **extra}]}]}
        for ds, extra in ((ct, {"Anonymize": True}), (mr, {"FrameNumber": 1}))]
    result = _service(ws, wsdl).ImagingDocumentSource_RetrieveImagingDocumentSet(
        StudyRequest=studies, TransferSyntaxUIDList={"TransferSyntaxUID": [EXPLICIT]})
    if wsdl == "served":
        status = result.RegistryResponse.status
        errors = [(e.errorCode, e.location) for e in result.RegistryResponse.RegistryErrorList.RegistryError]
        documents = {response.DocumentUniqueId: response.Document for response in result.DocumentResponse}
    else:  # lax: raw elements, as in test_zeep_from_the_published_wsdl_retrieves_documents
        raw = {etree.QName(element).localname: element for element in result._raw_elements}
        status = raw["RegistryResponse"].get("status")
        errors = [(e.get("errorCode"), e.get("location")) for e in raw["RegistryResponse"].iter("{*}RegistryError")]
        documents = {element.findtext("{urn:ihe:iti:xds-b:2007}DocumentUniqueId"):
                     base64.b64decode(element.findtext("{urn:ihe:iti:xds-b:2007}Document"))
                     for element in result._raw_elements if etree.QName(element).localname == "DocumentResponse"}
    assert status == PARTIAL and errors == [("urn:dicom:wado:0013", mr.SOPInstanceUID)]
    [data] = documents.values()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.PatientName == "" and out.PatientIdentityRemoved == "YES"
    assert out.StudyInstanceUID != ct.StudyInstanceUID and out.pixel_array.tolist() == ct.pixel_array.tolist()
    assert str(ct.PatientName).encode() not in data and ct.StudyInstanceUID.encode() not in data


@pytest.mark.parametrize("wsdl", ["served", "published"])
def test_zeep_anonymized_metadata_and_rendering(ws: LiveServer, wsdl: str) -> None:
    service = _service(ws, wsdl)
    ds, _ = _documents("CT_small.dcm")
    repository = ws.settings.repository_unique_id
    result = service.ImagingDocumentSource_RetrieveImagingDocumentSetInformation(StudyRequest=[{"SeriesRequest": [{
        "DocumentInformationRequest": [{"RepositoryUniqueId": repository, "DocumentUniqueId": ds.SOPInstanceUID,
                                        "Anonymize": True, "XPath": FAMILY_NAME}]}]}])
    assert result.RegistryResponse.status == SUCCESS
    [document] = result.DocumentInformationResponse
    assert document.XPathResponseList.XPathResponse in ([""], [None])  # the name is emptied (Z)
    result = service.ImagingDocumentSource_RetrieveRenderedImagingDocumentSet(StudyRequest=[{
        "studyInstanceUID": ds.StudyInstanceUID, "SeriesRequest": [{
            "seriesInstanceUID": ds.SeriesInstanceUID, "RenderedDocumentRequest": [{
                "RepositoryUniqueId": repository, "DocumentUniqueId": ds.SOPInstanceUID, "Annotation": "technique",
                "Anonymize": True, "ContentTypeList": {"ContentType": ["image/png"]}}]}]}])
    assert result.RetrieveDocumentSetResponse.RegistryResponse.status == SUCCESS
    [rendered] = result.RenderedDocumentResponse
    assert rendered.Anonymize is True and rendered.mimeType == "image/png"
    assert rendered.Document.startswith(b"\x89PNG")
