"""WADO-WS Anonymize against a running server, spoken raw: RAD-69 documents, document information
(PS3.19 metadata under XPath) and rendered images de-identified by the PS3.15 Basic Profile, one key
per request; FrameNumber on a RAD-69 document refused; no identifying value left in any answer."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from lxml import etree
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.conftest import DATABASES
from tests.dicomfiles import dataset_of, make_dataset, make_presentation_state, to_bytes
from tests.integration.test_stow_rs import dicom_parts
from tests.integration.test_stow_rs import post as stow
from tests.live import LiveServer
from tests.wadows import (
    EXPLICIT,
    IHE,
    NS,
    PARTIAL,
    RAD69,
    SOAP11,
    SUCCESS,
    Answer,
    answer,
    assert_valid,
    envelope,
    mtom_request,
    post,
)

REPOSITORY = "1.3.6.1.4.1.21367.13.80.110.1"
IMPLICIT = "1.2.840.10008.1.2"
INFORMATION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
RENDERED = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"
# Identifying values of the study, each distinctive enough that a grep of the answer finds only it.
NAME, PATIENT_ID, BIRTH, INSTITUTION = "Quixotebrand^Maribel", "PID-7731-XZ", "19611023", "Saint Quillon Clinic"
ANONYMIZE = "<w:Anonymize>true</w:Anonymize>"


@pytest.fixture(scope="module", params=DATABASES)
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp(f"wado-ws-anonymize-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new()
    server = LiveServer(url, folder / "store", repository_unique_id=REPOSITORY)
    yield server
    server.stop()


def _image(study: str, series: str, **attributes: object) -> Dataset:
    return make_dataset(study_uid=study, series_uid=series, patient_name=NAME, patient_id=PATIENT_ID,
                        PatientBirthDate=BIRTH, InstitutionName=INSTITUTION, rows=64, columns=64,
                        FrameOfReferenceUID=f"{study}.9", **attributes)


@pytest.fixture(scope="module")
def study(ws: LiveServer) -> dict[str, Dataset]:
    """One study of one patient: two images (the second referencing the first), an image with
    burned-in annotation, the first image again without its study date, and two presentation
    states of the first image, one with a text object and one without."""
    study_uid, series_uid = generate_uid(), generate_uid()
    first = _image(study_uid, series_uid, ImageComments=f"scan of {NAME}")
    second = _image(study_uid, series_uid, InstanceNumber=2, ReferencedImageSequence=Sequence([dataset_of(
        ReferencedSOPClassUID=first.SOPClassUID, ReferencedSOPInstanceUID=first.SOPInstanceUID)]))
    burned = _image(study_uid, series_uid, InstanceNumber=3, BurnedInAnnotation="YES")
    undated = _image(generate_uid(), generate_uid())
    del undated.StudyDate
    plain_state = make_presentation_state(first)
    text_state = make_presentation_state(first)
    text_state.GraphicAnnotationSequence[0].TextObjectSequence = Sequence([dataset_of(
        BoundingBoxAnnotationUnits="DISPLAY", UnformattedTextValue=NAME, BoundingBoxTopLeftHandCorner=[0.1, 0.1],
        BoundingBoxBottomRightHandCorner=[0.9, 0.9], BoundingBoxTextHorizontalJustification="LEFT")])
    found = {"first": first, "second": second, "burned": burned, "undated": undated, "plain_state": plain_state,
             "text_state": text_state}
    for ds in found.values():
        assert stow(ws, dicom_parts(to_bytes(ds))).status == 200
    return found


def identifying(study: dict[str, Dataset]) -> list[bytes]:
    """What no de-identified answer may hold: the patient's values and the original study, series
    and instance UIDs (an instance's UID only outside the DocumentUniqueId that echoes the request)."""
    values = [NAME.split("^")[0], PATIENT_ID, BIRTH, INSTITUTION, "20240102"]
    for key in ("first", "second"):
        values += [study[key].StudyInstanceUID, study[key].SeriesInstanceUID, study[key].FrameOfReferenceUID]
    return [value.encode() for value in values]


def _request(study: dict[str, Dataset], documents: list[tuple[str, str]], syntaxes: tuple[str, ...] = (EXPLICIT,)
             ) -> str:
    """A RAD-69 request for (key of ``study``, extra DocumentRequest elements) of one series."""
    first = study["first"]
    requests = "".join(
        f'<i:DocumentRequest xmlns:i="{IHE}" xmlns:w="{NS["wado"]}"><i:RepositoryUniqueId>{REPOSITORY}'
        f"</i:RepositoryUniqueId><i:DocumentUniqueId>{study[key].SOPInstanceUID}</i:DocumentUniqueId>{extra}"
        f"</i:DocumentRequest>" for key, extra in documents)
    listed = "".join(f"<r:TransferSyntaxUID>{uid}</r:TransferSyntaxUID>" for uid in syntaxes)
    return (f'<r:RetrieveImagingDocumentSetRequest xmlns:r="urn:ihe:rad:xdsi-b:2009">'
            f'<r:StudyRequest studyInstanceUID="{first.StudyInstanceUID}">'
            f'<r:SeriesRequest seriesInstanceUID="{first.SeriesInstanceUID}">{requests}</r:SeriesRequest>'
            f"</r:StudyRequest><r:TransferSyntaxUIDList>{listed}</r:TransferSyntaxUIDList>"
            f"</r:RetrieveImagingDocumentSetRequest>")


def rad69(ws: LiveServer, message: str) -> tuple[bytes, Answer]:
    reply = post(ws, envelope(message, action=RAD69))
    assert reply.status == 200, reply.body[:2000]
    return reply.body, answer(reply)


def _datasets(found: Answer) -> dict[str, Dataset]:
    return {uid: pydicom.dcmread(io.BytesIO(data)) for uid, data in found.documents().items()}


def assert_no_identifying(data: bytes, study: dict[str, Dataset], *, instances: bool = True) -> None:
    values = identifying(study) + ([study[key].SOPInstanceUID.encode() for key in ("first", "second")]
                                   if instances else [])
    for value in values:
        assert value not in data, value


def test_rad69_anonymize_deidentifies_every_document_with_one_key(ws: LiveServer, study: dict[str, Dataset]) -> None:
    first, second = study["first"], study["second"]
    body, found = rad69(ws, _request(study, [("first", ANONYMIZE), ("second", ANONYMIZE)]))
    assert found.status() == SUCCESS and not found.errors()
    out = _datasets(found)
    one, two = out[first.SOPInstanceUID], out[second.SOPInstanceUID]
    for ds in (one, two):
        assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""
        assert ds.PatientIdentityRemoved == "YES" and "ImageComments" not in ds
        assert ds.StudyInstanceUID.startswith("2.25.") and ds.SOPInstanceUID.startswith("2.25.")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # One key: the study, series and frame of reference map alike, and the reference still points at the first.
    assert one.StudyInstanceUID == two.StudyInstanceUID and one.SeriesInstanceUID == two.SeriesInstanceUID
    assert one.FrameOfReferenceUID == two.FrameOfReferenceUID
    assert two.ReferencedImageSequence[0].ReferencedSOPInstanceUID == one.SOPInstanceUID
    assert np.array_equal(one.pixel_array, first.pixel_array)
    for data in found.documents().values():
        assert_no_identifying(data, study)
    # The envelope echoes each requested DocumentUniqueId (ITI TF-2b 3.43.4.2.2), nothing else identifying.
    assert_no_identifying(body, study, instances=False)
    assert_valid(found, "iti")


def test_rad69_anonymize_gives_other_uids_in_another_request(ws: LiveServer, study: dict[str, Dataset]) -> None:
    uid = study["first"].SOPInstanceUID
    _, once = rad69(ws, _request(study, [("first", ANONYMIZE)]))
    _, again = rad69(ws, _request(study, [("first", ANONYMIZE)]))
    a, b = _datasets(once)[uid], _datasets(again)[uid]
    assert a.StudyInstanceUID != b.StudyInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert a.PixelData == b.PixelData


def test_rad69_anonymize_with_transcoding_and_beside_an_identified_document(
        ws: LiveServer, study: dict[str, Dataset]) -> None:
    first, second = study["first"], study["second"]
    # Stored Explicit VR Little Endian; only Implicit VR Little Endian is listed: transcoded, then de-identified.
    _, found = rad69(ws, _request(study, [("first", ANONYMIZE), ("second", "<w:Anonymize>false</w:Anonymize>")],
                                  (IMPLICIT,)))
    assert found.status() == SUCCESS
    out = _datasets(found)
    anonymized, identified = out[first.SOPInstanceUID], out[second.SOPInstanceUID]
    assert anonymized.file_meta.TransferSyntaxUID == IMPLICIT and anonymized.PatientName == ""
    assert np.array_equal(anonymized.pixel_array, first.pixel_array)
    assert_no_identifying(found.documents()[first.SOPInstanceUID], study)
    assert identified.PatientName == NAME and identified.SOPInstanceUID == second.SOPInstanceUID
    assert_valid(found, "iti")


def test_rad69_refuses_burned_in_annotation_and_frame_number(ws: LiveServer, study: dict[str, Dataset]) -> None:
    first, burned = study["first"], study["burned"]
    _, found = rad69(ws, _request(study, [("burned", ANONYMIZE), ("first", "<w:FrameNumber>1</w:FrameNumber>"),
                                          ("second", ANONYMIZE)]))
    assert found.status() == PARTIAL
    assert found.errors() == [("urn:dicom:wado:0001", burned.SOPInstanceUID),
                              ("urn:dicom:wado:0013", first.SOPInstanceUID)]
    contexts = [error.get("codeContext") for error in found.findall(".//rs:RegistryError")]
    assert "Burned In Annotation" in contexts[0] and "FrameNumber 1" in contexts[1]
    assert list(found.documents()) == [study["second"].SOPInstanceUID]
    assert_valid(found, "iti")


def test_rad69_burned_in_without_anonymize_is_returned_as_stored(ws: LiveServer, study: dict[str, Dataset]) -> None:
    burned = study["burned"]
    _, found = rad69(ws, _request(study, [("burned", "")]))
    assert found.status() == SUCCESS
    assert found.documents()[burned.SOPInstanceUID] == to_bytes(burned)


def information(ws: LiveServer, study: dict[str, Dataset], documents: list[tuple[str, list[str]]]) -> Answer:
    requests = "".join(
        f"<w:DocumentInformationRequest><i:RepositoryUniqueId>{REPOSITORY}</i:RepositoryUniqueId>"
        f"<i:DocumentUniqueId>{study[key].SOPInstanceUID}</i:DocumentUniqueId>{ANONYMIZE}"
        + "".join(f"<w:XPath>{path}</w:XPath>" for path in paths) + "</w:DocumentInformationRequest>"
        for key, paths in documents)
    message = (f'<w:RetrieveImagingDocumentSetInformationRequest xmlns:w="{NS["wado"]}" xmlns:i="{IHE}">'
               f"<w:StudyRequest><w:SeriesRequest>{requests}</w:SeriesRequest></w:StudyRequest>"
               f"</w:RetrieveImagingDocumentSetInformationRequest>")
    reply = post(ws, envelope(message, action=INFORMATION))
    assert reply.status == 200, reply.body[:2000]
    assert_no_identifying(reply.body, study, instances=False)
    found = answer(reply)
    assert_valid(found, "wado")
    return found


def responses(found: Answer) -> dict[str, list[str]]:
    return {response.findtext("ihe:DocumentUniqueId", namespaces=NS):
            [r.text or "" for r in response.findall("wado:XPathResponseList/wado:XPathResponse", NS)]
            for response in found.findall(".//wado:DocumentInformationResponse")}


STUDY_UID = '/NativeDicomModel/DicomAttribute[@keyword="StudyInstanceUID"]/Value/text()'
SOP_UID = '/NativeDicomModel/DicomAttribute[@keyword="SOPInstanceUID"]/Value/text()'
REFERENCED = ('/NativeDicomModel/DicomAttribute[@keyword="ReferencedImageSequence"]/Item/'
              'DicomAttribute[@keyword="ReferencedSOPInstanceUID"]/Value/text()')
NAME_PATH = '/NativeDicomModel/DicomAttribute[@keyword="PatientName"]'


def test_information_filters_the_deidentified_model(ws: LiveServer, study: dict[str, Dataset]) -> None:
    first, second = study["first"], study["second"]
    found = information(ws, study, [("first", [STUDY_UID, SOP_UID, f"count({NAME_PATH}/PersonName)"]),
                                    ("second", [STUDY_UID, REFERENCED, "count(//BulkData)"])])
    assert found.status() == SUCCESS
    [study_one, sop_one, names], [study_two, referenced, uris] = responses(found).values()
    assert study_one == study_two and study_one.startswith("2.25.") and study_one != first.StudyInstanceUID
    assert referenced == sop_one != first.SOPInstanceUID  # one key for the request's documents
    assert names == "0" and uris == "0"
    again = information(ws, study, [("second", [STUDY_UID])])
    assert responses(again)[second.SOPInstanceUID] != [study_one]


def test_information_whole_model_is_deidentified_without_bulk_data(ws: LiveServer, study: dict[str, Dataset]) -> None:
    first = study["first"]
    found = information(ws, study, [("first", [])])
    [[text]] = responses(found).values()
    model = etree.fromstring(text.encode())
    keywords = {element.get("keyword") for element in model.iter("{*}DicomAttribute")}
    # Pixel Data is left out: a BulkDataURI would name the identified original by its UIDs.
    assert "PixelData" not in keywords and not list(model.iter("{*}BulkData"))
    assert {"PatientIdentityRemoved", "DeidentificationMethod", "Rows", "AvailableTransferSyntaxUID"} <= keywords
    assert_no_identifying(text.encode(), study)
    assert first.SOPInstanceUID not in text


def rendered(ws: LiveServer, study: dict[str, Dataset], documents: list[tuple[str, str]]) -> Answer:
    """Each document in a StudyRequest of its own, in order."""
    png = "<w:ContentTypeList><w:ContentType>image/png</w:ContentType></w:ContentTypeList>"
    studies = "".join(
        f'<w:StudyRequest studyInstanceUID="{study[key].StudyInstanceUID}">'
        f'<w:SeriesRequest seriesInstanceUID="{study[key].SeriesInstanceUID}">'
        f"<w:RenderedDocumentRequest><i:RepositoryUniqueId>{REPOSITORY}</i:RepositoryUniqueId>"
        f"<i:DocumentUniqueId>{study[key].SOPInstanceUID}</i:DocumentUniqueId>{parameters}{png}"
        f"</w:RenderedDocumentRequest></w:SeriesRequest></w:StudyRequest>" for key, parameters in documents)
    message = (f'<w:RetrieveRenderedImagingDocumentSetRequest xmlns:w="{NS["wado"]}" xmlns:i="{IHE}">'
               f"{studies}</w:RetrieveRenderedImagingDocumentSetRequest>")
    reply = post(ws, envelope(message, action=RENDERED))
    assert reply.status == 200, reply.body[:2000]
    found = answer(reply)
    assert_valid(found, "wado")
    return found


def pixels(found: Answer) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(found.document(response.find("ihe:Document", NS)))))
            for response in found.findall(".//wado:RenderedDocumentResponse")]


def test_rendered_anonymize_echoed_and_technique_without_date(ws: LiveServer, study: dict[str, Dataset]) -> None:
    technique = "<w:Annotation>technique</w:Annotation>"
    found = rendered(ws, study, [("first", technique + ANONYMIZE), ("first", technique),
                                 ("undated", technique)])
    assert found.status() == SUCCESS
    assert [r.findtext("wado:Anonymize", namespaces=NS) for r in found.findall(".//wado:RenderedDocumentResponse")
            ] == ["true", None, None]
    anonymized, identified, undated = pixels(found)
    # The same image, its technique text without the study date: as the stored copy that has none.
    assert np.array_equal(anonymized, undated) and not np.array_equal(anonymized, identified)


def test_rendered_anonymize_leaves_out_presentation_state_text(ws: LiveServer, study: dict[str, Dataset]) -> None:
    def state(key: str) -> str:
        return (f"<w:PresentationUID>{study[key].SOPInstanceUID}</w:PresentationUID>"
                f"<w:PresentationSeriesUID>{study[key].SeriesInstanceUID}</w:PresentationSeriesUID>")

    found = rendered(ws, study, [("first", state("text_state") + ANONYMIZE), ("first", state("text_state")),
                                 ("first", state("plain_state"))])
    assert found.status() == SUCCESS
    anonymized, with_text, without_text = pixels(found)
    assert not np.array_equal(with_text, without_text)  # the text object is drawn when not anonymized
    assert np.array_equal(anonymized, without_text)  # and left out, its graphics kept, when anonymized


def test_rendered_anonymize_refusals(ws: LiveServer, study: dict[str, Dataset]) -> None:
    found = rendered(ws, study, [("first", "<w:Annotation>patient,technique</w:Annotation>" + ANONYMIZE),
                                 ("burned", ANONYMIZE), ("second", ANONYMIZE)])
    assert found.status() == PARTIAL
    assert found.errors() == [("urn:dicom:wado:0012", study["first"].SOPInstanceUID),
                              ("urn:dicom:wado:0001", study["burned"].SOPInstanceUID)]
    assert len(pixels(found)) == 1


def test_rad69_anonymize_over_mtom_request_and_soap11(ws: LiveServer, study: dict[str, Dataset]) -> None:
    data, content_type = mtom_request(envelope(_request(study, [("first", ANONYMIZE)])))
    found = answer(post(ws, data, content_type))
    assert found.status() == SUCCESS
    assert _datasets(found)[study["first"].SOPInstanceUID].PatientName == ""
    reply = post(ws, envelope(_request(study, [("first", ANONYMIZE)]), action=None, soap=SOAP11), "text/xml; charset=utf-8",
                 SOAPAction=f'"{RAD69}"')
    assert reply.status == 200 and answer(reply).status() == SUCCESS
    assert_no_identifying(reply.body, study, instances=False)


def test_schema_admits_the_extension(study: dict[str, Dataset]) -> None:
    """Our own schema (served with the WSDL) accepts the DocumentRequest the 2017 draft extends."""
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).resolve().parents[2] / "schemas" / "IHE"
                                             / "XDSI.b_ImagingDocumentSource.xsd")))
    request = etree.fromstring(_request(study, [("first", ANONYMIZE + "<w:FrameNumber>2</w:FrameNumber>")]))
    assert schema.validate(request), schema.error_log
