"""Non-image answers: SR as HTML and text, encapsulated documents and video streamed from the stored file."""

from __future__ import annotations

import io

import lxml.html
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.dicomfiles import (
    ENCAPSULATED_CDA_STORAGE,
    ENHANCED_SR_STORAGE,
    SMALL_PDF,
    make_dataset,
    make_document,
    make_report,
    make_video,
    to_bytes,
)
from xdsi.dicom import uids
from xdsi.errors import NotAcceptable
from xdsi.repository import index
from xdsi.repository.index import StoredInstance
from xdsi.services import documents
from xdsi.services.archive import Archive
from xdsi.services.documents import report_html, report_text


def _store(archive: Archive, ds: Dataset) -> StoredInstance:
    data = to_bytes(ds)
    result = archive.store.store([io.BytesIO(data)])
    assert result
    with archive.sessions() as session:
        [found] = index.stored_instances(session, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return found


def _code(value: str, scheme: str, meaning: str) -> Sequence:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return Sequence([code])


def _item(relation: str, kind: str, concept: Sequence, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType, item.ConceptNameCodeSequence = relation, kind, concept
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _report(text: str = "Nodule <b>& mass</b>", charset: str = "ISO_IR 192", name: str = "Doe^John") -> Dataset:
    """An Enhanced SR: a container holding TEXT, CODE, NUM (with UCUM units) and IMAGE items."""
    ds = make_report(sop_class_uid=ENHANCED_SR_STORAGE, patient_name=name)
    ds.SpecificCharacterSet = charset
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = _code("18748-4", "LN", "Diagnostic Imaging Report")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    measured = Dataset()
    measured.NumericValue = "12.5"
    measured.MeasurementUnitsCodeSequence = _code("mm", "UCUM", "millimeter")
    image = Dataset()
    image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"
    findings = _item("CONTAINS", "CONTAINER", _code("121070", "DCM", "Findings"), ContinuityOfContent="SEPARATE")
    findings.ContentSequence = Sequence([
        _item("CONTAINS", "TEXT", _code("121071", "DCM", "Finding"), TextValue=text),
        _item("CONTAINS", "CODE", _code("121071", "DCM", "Finding"),
              ConceptCodeSequence=_code("M-01000", "SRT", "Mass")),
        _item("CONTAINS", "NUM", _code("410668003", "SCT", "Length"), MeasuredValueSequence=Sequence([measured])),
        _item("INFERRED FROM", "IMAGE", _code("121112", "DCM", "Source of Measurement"),
              ReferencedSOPSequence=Sequence([image])),
    ])
    ds.ContentSequence = Sequence([findings])
    return ds


def test_sr_html_is_an_escaped_tree_of_content_items() -> None:
    page = report_html(_report())
    tree = lxml.html.fromstring(page)
    assert tree.findtext(".//h1") == "Diagnostic Imaging Report (18748-4, LN)"
    [findings] = tree.xpath("/html/body/ul/li")
    assert findings.xpath("span[@class='concept']/text()") == ["Findings (121070, DCM)"]
    children = findings.xpath("ul/li")
    assert [child.text_content() for child in children] == [
        "CONTAINS Finding (121071, DCM): Nodule <b>& mass</b>",
        "CONTAINS Finding (121071, DCM): Mass (M-01000, SRT)",
        "CONTAINS Length (410668003, SCT): 12.5 mm",
        "INFERRED FROM Source of Measurement (121112, DCM): CT Image Storage 1.2.3.4",
    ]
    assert "<b>" not in page and "&lt;b&gt;&amp; mass" in page
    header = dict(zip(tree.xpath("//dt/text()"), tree.xpath("//dd/text()"), strict=True))
    assert header["Patient"] == "Doe John" and header["Completion"] == "COMPLETE"


def test_sr_plain_text_indents_the_tree() -> None:
    text = report_text(_report())
    assert "\n[CONTAINS] Findings (121070, DCM)\n  [CONTAINS] Finding (121071, DCM): Nodule <b>& mass</b>\n" in text
    assert "  [CONTAINS] Length (410668003, SCT): 12.5 mm\n" in text


def test_a_real_comprehensive_sr_renders() -> None:
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    page = report_html(ds)
    tree = lxml.html.fromstring(page)
    assert len(tree.xpath("//li")) > 5
    assert str(ds.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning) in page


def test_structured_report_answer_picks_a_charset(archive: Archive) -> None:
    stored = _store(archive, _report(text="所見なし", name="Yamada^Tarou=山田^太郎"))

    def answer(media_type: str, charsets: tuple[str, ...]) -> documents.Payload:
        return documents.document(archive.blobs, stored, media_type, archive.limits, charsets)

    html = answer(documents.TEXT_HTML, ())
    assert html.content_type == "text/html; charset=UTF-8" and "所見なし".encode() in b"".join(html.chunks(archive.blobs))
    latin = answer(documents.TEXT_HTML, ("ISO-8859-1",))
    data = b"".join(latin.chunks(archive.blobs))
    assert latin.charset == "ISO-8859-1" and b"&#25152;&#35211;" in data and b'<meta charset="ISO-8859-1">' in data
    assert latin.length == len(data)
    with pytest.raises(NotAcceptable, match="cannot be written in any of the character sets"):
        answer(documents.TEXT_PLAIN, ("ISO-8859-1",))
    japanese = answer(documents.TEXT_PLAIN, ("ISO-8859-1", "ISO-2022-JP"))
    assert japanese.charset == "ISO-2022-JP"
    assert b"".join(japanese.chunks(archive.blobs)).decode("iso2022_jp").count("山田 太郎") == 1


def test_encapsulated_pdf_is_the_document_without_its_pad_byte(archive: Archive) -> None:
    assert len(SMALL_PDF) % 2 == 1
    stored = _store(archive, make_document(SMALL_PDF))
    payload = documents.document(archive.blobs, stored, "application/pdf", archive.limits)
    assert payload.content_type == "application/pdf" and payload.length == len(SMALL_PDF)
    assert b"".join(payload.chunks(archive.blobs)) == SMALL_PDF
    assert b"".join(payload.chunks(archive.blobs, 9, 20)) == SMALL_PDF[9:20]


def test_a_large_pdf_is_streamed_from_the_file(archive: Archive) -> None:
    large = SMALL_PDF[:-6] + b"%" + b"x" * 300_000 + b"\n%%EOF\n"
    stored = _store(archive, make_document(large))
    payload = documents.document(archive.blobs, stored, "application/pdf", archive.limits)
    assert payload.data is None and payload.pieces[0][0] > 0  # a range of the stored file, not a copy
    assert b"".join(payload.chunks(archive.blobs)) == large
    assert b"".join(payload.chunks(archive.blobs, 100_000, 100_010)) == large[100_000:100_010]


def test_encapsulated_cda_is_text_xml(archive: Archive) -> None:
    cda = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>Report</title></ClinicalDocument>'
    stored = _store(archive, make_document(cda, sop_class_uid=ENCAPSULATED_CDA_STORAGE, mime_type="text/xml"))
    payload = documents.document(archive.blobs, stored, "text/xml", archive.limits)
    assert payload.media_type == "text/xml" and b"".join(payload.chunks(archive.blobs)) == cda


@pytest.mark.parametrize(("syntax", "media_type"), [
    (uids.MPEG2_MAIN_LEVEL, "video/mpeg"), (uids.MPEG4_AVC_HIGH_PROFILE, "video/mp4"), (uids.HEVC_MAIN_PROFILE, "video/h265"),
])
def test_video_is_the_bitstream_of_its_fragments_with_ranges(archive: Archive, syntax: str, media_type: str) -> None:
    fragments = [b"\x00\x00\x01\xba" + bytes(range(256)) * 40, b"\x00\x00\x01\xb3" + b"\x5a" * 5000, b"\x00\x00\x01\xb7"]
    stream = b"".join(fragments)
    stored = _store(archive, make_video(fragments, syntax))
    payload = documents.document(archive.blobs, stored, media_type, archive.limits)
    assert payload.media_type == media_type and payload.length == len(stream) and len(payload.pieces) == 3
    assert b"".join(payload.chunks(archive.blobs)) == stream
    for start, end in ((0, 1), (10200, 10300), (10240, 15250), (len(stream) - 3, len(stream))):
        assert b"".join(payload.chunks(archive.blobs, start, end)) == stream[start:end], (start, end)


def test_a_form_the_object_does_not_offer_is_not_acceptable(archive: Archive) -> None:
    image = _store(archive, make_dataset())
    with pytest.raises(NotAcceptable, match=r"\(single-frame image\) cannot be rendered as application/pdf"):
        documents.document(archive.blobs, image, "application/pdf", archive.limits)
    report = _store(archive, _report())
    with pytest.raises(NotAcceptable, match="offers text/html, text/plain"):
        documents.document(archive.blobs, report, "video/mp4", archive.limits)
