"""anonymize=yes: the Basic Profile on stored instances, streamed, with consistent UIDs and untouched files."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.dicomfiles import make_dataset, make_instance, to_bytes
from xdsi.dicom import confidentiality, uids
from xdsi.encoding import native_xml
from xdsi.errors import AnonymizationUnavailable
from xdsi.repository import index
from xdsi.repository.index import StoredInstance
from xdsi.services.anonymize import Anonymizer
from xdsi.services.archive import Archive

SAMPLES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "image_dfl.dcm",
           "SC_rgb_rle.dcm", "liver_1frame.dcm",
           "examples_palette.dcm"]


def _store(archive: Archive, data: bytes) -> StoredInstance:
    ds = pydicom.dcmread(io.BytesIO(data))
    archive.store.store([io.BytesIO(data)])
    with archive.sessions() as session:
        [found] = index.stored_instances(session, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return found


def _file_hash(archive: Archive, instance: StoredInstance) -> str:
    return hashlib.sha256(archive.blobs.path(instance.blob_key).read_bytes()).hexdigest()


def _answer(archive: Archive, anonymizer: Anonymizer, instance: StoredInstance, syntax: str | None = None) -> bytes:
    body = anonymizer.instance_body(archive.blobs, instance, syntax, archive.limits, 1 << 30)
    data = b"".join(body.chunks)
    assert len(data) == body.length
    return data


def test_phi_goes_uids_are_replaced_and_pixels_and_the_stored_file_stay(archive: Archive) -> None:
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    original.InstitutionName = "General Hospital"
    original.ImageComments = "John's scan"
    original.add_new(0x00091001, "LO", "private PHI")
    original.OtherPatientIDsSequence = Sequence([Dataset()])
    instance = _store(archive, to_bytes(original))
    before = _file_hash(archive, instance)

    out = pydicom.dcmread(io.BytesIO(_answer(archive, Anonymizer(), instance)))

    assert out.PatientName == "" and out.PatientID == "" and out.PatientBirthDate == "" and out.StudyDate == ""
    assert out.InstitutionName == "ANONYMIZED"  # X/Z/D: a dummy keeps a Type 1 present
    for keyword in ("ImageComments", "OtherPatientIDsSequence", "PatientAge", "PatientWeight"):
        assert keyword not in out, keyword
    assert not any(element.tag.is_private for element in out)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        new = str(out[keyword].value)
        assert new != str(original[keyword].value) and new.startswith("2.25.") and uids.is_valid_uid(new)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPClassUID == original.SOPClassUID and out.file_meta.TransferSyntaxUID == instance.transfer_syntax_uid
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert out.PixelData == original.PixelData
    assert out.Rows == original.Rows and out.RescaleIntercept == original.RescaleIntercept  # K: not in the table
    assert _file_hash(archive, instance) == before


def test_references_stay_consistent_within_one_answer_and_differ_between_answers(archive: Archive) -> None:
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    derived = make_dataset(study_uid=image.StudyInstanceUID, series_uid=image.SeriesInstanceUID,
                           patient_id=image.PatientID, patient_name=str(image.PatientName),
                           FrameOfReferenceUID=image.FrameOfReferenceUID)
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    derived.SourceImageSequence = Sequence([reference])
    first, second = _store(archive, to_bytes(image)), _store(archive, to_bytes(derived))

    answer = Anonymizer()
    out_image = pydicom.dcmread(io.BytesIO(_answer(archive, answer, first)))
    out_derived = pydicom.dcmread(io.BytesIO(_answer(archive, answer, second)))
    assert out_derived.SourceImageSequence[0].ReferencedSOPInstanceUID == out_image.SOPInstanceUID
    assert out_derived.SourceImageSequence[0].ReferencedSOPClassUID == image.SOPClassUID
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert out_derived[keyword].value == out_image[keyword].value

    again = pydicom.dcmread(io.BytesIO(_answer(archive, Anonymizer(), first)))
    assert again.SOPInstanceUID != out_image.SOPInstanceUID


@pytest.mark.parametrize("name", SAMPLES)
def test_streamed_and_whole_answers_are_the_same_data_set(archive: Archive, name: str) -> None:
    """The streaming route (header rewritten, pixel data copied) against reading the file whole."""
    instance = _store(archive, Path(get_testdata_file(name)).read_bytes())
    key = b"k" * 32
    streamed = pydicom.dcmread(io.BytesIO(_answer(archive, Anonymizer(key), instance)))
    whole = Anonymizer(key)._whole(archive.blobs, instance, instance.transfer_syntax_uid, 1 << 30)
    expected = pydicom.dcmread(io.BytesIO(b"".join(whole.chunks)))
    assert streamed == expected
    assert streamed.file_meta.TransferSyntaxUID == expected.file_meta.TransferSyntaxUID
    if "PixelData" in expected:
        assert streamed.PixelData == expected.PixelData


def test_asked_in_another_syntax_it_is_transcoded_then_deidentified(archive: Archive) -> None:
    instance = _store(archive, Path(get_testdata_file("CT_small.dcm")).read_bytes())
    out = pydicom.dcmread(io.BytesIO(_answer(archive, Anonymizer(), instance, uids.IMPLICIT_VR_LITTLE_ENDIAN)))
    assert out.file_meta.TransferSyntaxUID == uids.IMPLICIT_VR_LITTLE_ENDIAN
    assert out.PatientName == "" and out.PatientIdentityRemoved == "YES"


def test_table_actions() -> None:
    assert confidentiality.action_for(0x00100010) == "Z"  # Patient's Name
    assert confidentiality.action_for(0x00080080) == "D"  # Institution Name, X/Z/D
    assert confidentiality.action_for(0x00081140) == "U"  # Referenced Image Sequence, X/Z/U*
    assert confidentiality.action_for(0x00080022) == "Z"  # Acquisition Date, X/Z
    assert confidentiality.action_for(0x00280010) == "K"  # Rows: not in the table
    assert confidentiality.action_for(0x00291010) == "X"  # private
    assert confidentiality.action_for(0x60003000) == "X" and confidentiality.action_for(0x60020010) == "K"
    assert confidentiality.action_for(0x50001010) == "X"


def test_spliced_answer_reads_the_same_bytes_each_time(archive: Archive) -> None:
    """An answer may go over a document twice (a WS-Security digest, then the wire)."""
    instance = _store(archive, Path(get_testdata_file("CT_small.dcm")).read_bytes())
    spliced = Anonymizer().spliced(archive.blobs, instance, None, archive.limits)
    assert spliced is not None
    once, twice = b"".join(spliced.chunks(archive.blobs)), b"".join(spliced.chunks(archive.blobs))
    assert once == twice and len(once) == spliced.length
    assert Anonymizer().spliced(archive.blobs, instance, uids.IMPLICIT_VR_LITTLE_ENDIAN, archive.limits) is None


@pytest.mark.parametrize("syntax", [None, uids.IMPLICIT_VR_LITTLE_ENDIAN])
def test_burned_in_annotation_cannot_be_deidentified(archive: Archive, syntax: str | None) -> None:
    instance = _store(archive, make_instance(BurnedInAnnotation="YES"))
    with pytest.raises(AnonymizationUnavailable, match="Burned In Annotation"):
        Anonymizer().instance_body(archive.blobs, instance, syntax, archive.limits, 1 << 30)
    assert not confidentiality.burned_in(make_dataset(BurnedInAnnotation="NO"))


def test_metadata_is_the_deidentified_model_with_bulk_data_inline_or_left_out(archive: Archive) -> None:
    ds = make_dataset(patient_name="Quixotebrand^Maribel", rows=64, columns=64)
    ds.add_new(0x00091001, "LO", "private PHI")
    ds.RedPaletteColorLookupTableData = b"\x01\x02" * 8  # 16 bytes: inline
    ds.SegmentedRedPaletteColorLookupTableData = b"\x00\x01" * 4096  # 8 KiB, above the threshold: left out
    instance = _store(archive, to_bytes(ds))
    key = b"m" * 32
    text = Anonymizer(key).metadata_xml(archive.blobs, instance, archive.limits, 1024)
    model = native_xml.loads_dataset(text)
    assert not model.PatientName and model.PatientIdentityRemoved == "YES" and "PatientBirthDate" in model
    assert b"Quixotebrand" not in text and ds.StudyInstanceUID.encode() not in text
    assert b"BulkData" not in text and "PixelData" not in model
    assert "SegmentedRedPaletteColorLookupTableData" not in model
    assert model.RedPaletteColorLookupTableData == b"\x01\x02" * 8
    assert not any(element.tag.is_private for element in model)
    # The same key maps the UIDs as it does in the de-identified file.
    document = pydicom.dcmread(io.BytesIO(_answer(archive, Anonymizer(key), instance)))
    assert model.SOPInstanceUID == document.SOPInstanceUID and model.StudyInstanceUID == document.StudyInstanceUID
    assert model.AvailableTransferSyntaxUID == instance.transfer_syntax_uid
