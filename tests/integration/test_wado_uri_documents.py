"""WADO-URI for non-images and de-identification against a running server: SR as HTML and text in a charset,
PDF, CDA, video with Range, and anonymize=yes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import lxml.html
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.dicomfiles import (
    ENCAPSULATED_CDA_STORAGE,
    SMALL_PDF,
    make_document,
    make_instance,
    make_report,
    make_video,
    to_bytes,
)
from tests.integration.test_stow_rs import dicom_parts, post
from tests.integration.test_wado_uri import Stored, _reason
from tests.live import LiveServer

MPEG4 = "1.2.840.10008.1.2.4.102"
CDA = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>R</title></ClinicalDocument>'
VIDEO = [b"\x00\x00\x01\xb3" + bytes(range(256)) * 64, b"\x00\x00\x01\xb8" + b"\x11" * 3000]


def _report() -> pydicom.Dataset:
    ds = make_report(study_uid=generate_uid(), patient_name="Yamada^Tarou=山田^太郎")
    concept = pydicom.Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", "Finding"
    item = pydicom.Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", "所見 <none>"
    item.ConceptNameCodeSequence = pydicom.Sequence([concept])
    ds.ContentSequence = pydicom.Sequence([item])
    ds.ConceptNameCodeSequence = pydicom.Sequence([concept])
    return ds


def documents_of_each_kind() -> dict[str, pydicom.Dataset]:
    """A report, a PDF, a CDA and a video, each in a study of its own."""
    return {
        "sr": _report(),
        "pdf": make_document(SMALL_PDF, study_uid=generate_uid()),
        "cda": make_document(CDA, sop_class_uid=ENCAPSULATED_CDA_STORAGE, mime_type="text/xml",
                             study_uid=generate_uid()),
        "video": make_video(VIDEO, MPEG4, study_uid=generate_uid()),
    }


@pytest.fixture(scope="module")
def objects(live: LiveServer) -> dict[str, Stored]:
    made = documents_of_each_kind()
    found = {}
    for key, data in [*((key, to_bytes(ds)) for key, ds in made.items()),
                      ("ct", Path(get_testdata_file("CT_small.dcm")).read_bytes())]:
        found[key] = Stored(Path(key), data)
        assert post(live, dicom_parts(data)).status == 200
    return found


def test_an_sr_is_text_html_by_default_and_escaped(live: LiveServer, objects: dict[str, Stored]) -> None:
    reply = live.request("GET", objects["sr"].url())
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=UTF-8"
    page = reply.body.decode()
    assert "所見 &lt;none&gt;" in page and "<none>" not in page
    tree = lxml.html.fromstring(reply.body)
    assert tree.xpath("//li/span[@class='concept']/text()") == ["Finding (121071, DCM)"]
    assert int(reply.header("Content-Length")) == len(reply.body)


def test_sr_text_plain_and_the_charset_list(live: LiveServer, objects: dict[str, Stored]) -> None:
    sr = objects["sr"]
    reply = live.request("GET", sr.url(contentType="text/plain", charset="ISO-8859-1, ISO-2022-JP;q=0.5"))
    assert reply.status == 200 and reply.header("Content-Type") == "text/plain; charset=ISO-2022-JP"
    assert "山田 太郎" in reply.body.decode("iso2022_jp")
    reply = live.request("GET", sr.url(contentType="text/html", charset="ISO-8859-1"))
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=ISO-8859-1"
    assert b"&#25152;&#35211;" in reply.body  # 所見 as character references
    _reason(live.request("GET", sr.url(contentType="text/plain", charset="ISO-8859-1")), 406, "charset", "ISO-8859-1")
    _reason(live.request("GET", sr.url(contentType="text/plain", charset="klingon-8")), 406, "charset", "klingon-8")


def test_image_parameters_with_a_document_are_400(live: LiveServer, objects: dict[str, Stored]) -> None:
    reply = live.request("GET", objects["sr"].url(contentType="text/html", rows="64"))
    _reason(reply, 400, "rows", "only to rendered images")


def test_pdf_and_cda_are_the_documents_as_stored(live: LiveServer, objects: dict[str, Stored]) -> None:
    reply = live.request("GET", objects["pdf"].url(contentType="application/pdf"))
    assert reply.status == 200 and reply.header("Content-Type") == "application/pdf" and reply.body == SMALL_PDF
    assert reply.header("Accept-Ranges") == "bytes"
    reply = live.request("GET", objects["cda"].url(contentType="text/xml"))
    assert reply.status == 200 and reply.header("Content-Type") == "text/xml" and reply.body == CDA
    # Without contentType a document is sent as DICOM (PS3.18 9.1.2.1: only images and reports differ).
    reply = live.request("GET", objects["pdf"].url())
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"


def test_video_is_its_bitstream_with_ranges(live: LiveServer, objects: dict[str, Stored]) -> None:
    stream = b"".join(VIDEO)
    video = objects["video"]
    reply = live.request("GET", video.url(contentType="video/mp4"))
    assert reply.status == 200 and reply.header("Content-Type") == "video/mp4" and reply.body == stream
    reply = live.request("GET", video.url(contentType="video/*"), headers={"Range": "bytes=16380-16399"})
    assert reply.status == 206 and reply.body == stream[16380:16400]
    assert reply.header("Content-Range") == f"bytes 16380-16399/{len(stream)}"
    reply = live.request("GET", video.url(contentType="video/mp4"), headers={"Range": f"bytes={len(stream)}-"})
    assert reply.status == 416 and reply.header("Content-Range") == f"bytes */{len(stream)}"
    _reason(live.request("GET", video.url(contentType="video/mpeg")), 406, "contentType", "video/mp4")


def test_anonymize_yes_deidentifies_consistently_and_leaves_the_store(
        live: LiveServer, objects: dict[str, Stored]) -> None:
    ct = objects["ct"]
    stored_before = live.request("GET", ct.url(contentType="application/dicom", transferSyntax="*")).body
    first = live.request("GET", ct.url(contentType="application/dicom", anonymize="yes"))
    assert first.status == 200 and first.header("Content-Type") == "application/dicom"
    assert int(first.header("Content-Length")) == len(first.body)
    out = pydicom.dcmread(io.BytesIO(first.body))
    assert out.PatientName == "" and out.PatientID == "" and out.PatientIdentityRemoved == "YES"
    assert out.SOPInstanceUID != ct.ds.SOPInstanceUID and out.StudyInstanceUID != ct.ds.StudyInstanceUID
    assert out.PixelData == ct.ds.PixelData
    # Two requests map UIDs differently: each answer is its own de-identification.
    again = pydicom.dcmread(io.BytesIO(live.request("GET", ct.url(contentType="application/dicom",
                                                                  anonymize="yes")).body))
    assert again.SOPInstanceUID != out.SOPInstanceUID
    after = live.request("GET", ct.url(contentType="application/dicom", transferSyntax="*")).body
    assert hashlib.sha256(after).digest() == hashlib.sha256(stored_before).digest() == hashlib.sha256(ct.data).digest()


def test_anonymize_with_a_transfer_syntax(live: LiveServer, objects: dict[str, Stored]) -> None:
    ct = objects["ct"]
    reply = live.request("GET", ct.url(contentType="application/dicom", anonymize="yes",
                                       transferSyntax="1.2.840.10008.1.2"))
    assert reply.status == 200
    out = pydicom.dcmread(io.BytesIO(reply.body))
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2" and out.PatientName == ""


def test_anonymize_of_burned_in_annotation_is_406_and_images_keep_their_400(live: LiveServer, tmp_path: Path) -> None:
    """PS3.15 E.1.1: the Basic Profile leaves pixels as they are, so an image whose pixels carry
    burned-in text has no de-identified copy; anonymize with an image type stays a 400 (PS3.18 9.1.2.2)."""
    path = tmp_path / "burned.dcm"
    path.write_bytes(make_instance(BurnedInAnnotation="YES", patient_name="Quixotebrand^Maribel"))
    burned = Stored(path, path.read_bytes())
    assert post(live, dicom_parts(burned.data)).status == 200
    _reason(live.request("GET", burned.url(contentType="application/dicom", anonymize="yes")), 406,
            "Burned In Annotation")
    assert live.request("GET", burned.url(contentType="application/dicom")).body == burned.data
    _reason(live.request("GET", burned.url(contentType="image/jpeg", anonymize="yes")), 400, "anonymize")
