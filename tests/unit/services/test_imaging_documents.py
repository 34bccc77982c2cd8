"""Each requested document's outcome, decided before an answer starts: found or not, this source
or another, which transfer syntax, and the transcoding itself."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from xdsi.encoding.xpath import compile_filter
from xdsi.errors import (
    InvalidUID,
    NotAcceptable,
    NotFound,
    UnknownCommunity,
    UnknownRepository,
    UnsupportedParameter,
)
from xdsi.services import imaging_documents
from xdsi.services.archive import Archive
from xdsi.services.imaging_documents import DocumentRequest, DocumentSet, Located, Refused

CT = Path(get_testdata_file("CT_small.dcm"))
JPEG = Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
IMPLICIT, EXPLICIT, JPEG_BASELINE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"


@pytest.fixture
def stored(archive: Archive) -> dict[str, DocumentRequest]:
    outcomes = archive.store.store(io.BytesIO(path.read_bytes()) for path in (CT, JPEG))
    assert all(outcome.status.succeeded for outcome in outcomes)
    requests = {}
    for path in (CT, JPEG):
        ds = dcmread(path)
        requests[path.name] = DocumentRequest(ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                              archive.settings.repository_unique_id)
    return requests


def _locate(archive: Archive, *requests: DocumentRequest) -> list[imaging_documents.Outcome]:
    with archive.sessions() as session:
        return imaging_documents.locate(session, archive.settings, requests)


def test_each_document_has_its_own_outcome(archive: Archive, stored: dict[str, DocumentRequest]) -> None:
    ct = stored[CT.name]
    requests = [ct, DocumentRequest("1.2.3", ct.study_uid, ct.series_uid),
                DocumentRequest(ct.document_uid, ct.study_uid, ct.series_uid, "1.2.999"),
                DocumentRequest(ct.document_uid, ct.study_uid, ct.series_uid, None, "urn:oid:1.2.999"),
                DocumentRequest("1.2.x", ct.study_uid, ct.series_uid),
                DocumentRequest(ct.document_uid, ct.study_uid, "1.2.3"),
                DocumentRequest(ct.document_uid)]
    outcomes = _locate(archive, *requests)
    assert isinstance(outcomes[0], Located) and outcomes[0].instance.sop_instance_uid == ct.document_uid
    errors = [type(outcome.error) if isinstance(outcome, Refused) else None for outcome in outcomes[1:]]
    # No study given (the 2017 metadata request): the SOP Instance UID alone finds it.
    assert errors == [NotFound, UnknownRepository, UnknownCommunity, InvalidUID, NotFound, None]


def test_the_stored_syntax_is_kept_wherever_the_list_names_it(archive: Archive, stored: dict) -> None:
    located = _locate(archive, stored[CT.name], stored[JPEG.name])
    as_listed = imaging_documents.resolve(located, ("1.2.3.4", IMPLICIT, EXPLICIT, JPEG_BASELINE))
    assert [o.resolved.transcoded for o in as_listed if isinstance(o, Located) and o.resolved] == [False, False]
    [ct, jpeg] = imaging_documents.resolve(located, ("1.2.3.4", IMPLICIT))
    assert isinstance(ct, Located) and ct.resolved is not None and ct.resolved.transfer_syntax == IMPLICIT
    assert isinstance(jpeg, Located) and jpeg.resolved is not None and jpeg.resolved.transcoded
    [refused, _] = imaging_documents.resolve(located, ("1.2.3.4",))
    assert isinstance(refused, Refused) and isinstance(refused.error, NotAcceptable)


def test_transcoding_happens_before_the_answer_and_a_misfit_is_refused(archive: Archive, stored: dict) -> None:
    located = _locate(archive, stored[CT.name])
    documents = DocumentSet(archive.blobs, located, archive.settings.max_transcode_bytes, archive.limits)
    try:
        # The plan allows JPEG baseline for the syntax; the CT's 16-bit pixels do not fit it.
        [refused] = documents.prepare(imaging_documents.resolve(located, (JPEG_BASELINE,)))
        assert isinstance(refused, Refused) and isinstance(refused.error, NotAcceptable)
        [prepared] = documents.prepare(imaging_documents.resolve(located, (IMPLICIT,)))
        assert isinstance(prepared, Located) and prepared.prepared is not None
        data = b"".join(documents.chunks(prepared))
        assert prepared.length == len(data)
        got = dcmread(io.BytesIO(data))
        assert got.file_meta.TransferSyntaxUID == IMPLICIT
        assert np.array_equal(got.pixel_array, dcmread(CT).pixel_array)
        [as_stored] = documents.prepare(imaging_documents.resolve(located, (EXPLICIT,)))
        assert isinstance(as_stored, Located) and b"".join(documents.chunks(as_stored)) == CT.read_bytes()
    finally:
        documents.close()
    assert all(copy.closed for copy in documents.temporary)


def test_document_information_filters_the_native_model(archive: Archive, stored: dict) -> None:
    [located] = _locate(archive, stored[CT.name])
    assert isinstance(located, Located)
    filters = [compile_filter('/NativeDicomModel/DicomAttribute[@keyword="Modality"]/Value/text()'),
               compile_filter('count(//BulkData[starts-with(@uri, "http://pacs/dicom-web/studies/")])'),
               compile_filter("count(//BulkData)")]
    with archive.sessions() as session:
        texts = imaging_documents.document_information(session, located, "http://pacs/dicom-web", filters,
                                                       imaging_documents.XPathBudget(1.0))
    assert texts[0] == "CT" and texts[1] == texts[2] != "0"  # pixel data and more, all under the root


def test_anonymize_and_frame_number_of_a_document_request(archive: Archive, stored: dict) -> None:
    """Anonymize: one key for the set (the two documents share their de-identified study), the
    spliced file read alike each time; FrameNumber: the document is refused, the whole file being
    the only RAD-69 answer."""
    ct, jpeg = stored[CT.name], stored[JPEG.name]
    requests = [replace(ct, anonymize=True), replace(jpeg, anonymize=True), replace(ct, frame_number="2")]
    located = _locate(archive, *requests)
    documents = DocumentSet(archive.blobs, located, archive.settings.max_transcode_bytes, archive.limits)
    try:
        spliced, transcoded, refused = documents.prepare(imaging_documents.resolve(located, (EXPLICIT,)))
        assert isinstance(refused, Refused) and isinstance(refused.error, UnsupportedParameter)
        assert "FrameNumber 2" in str(refused.error)
        assert isinstance(spliced, Located) and spliced.spliced is not None
        assert isinstance(transcoded, Located) and transcoded.prepared is not None  # JPEG -> Explicit, whole
        data = b"".join(documents.chunks(spliced))
        assert data == b"".join(documents.chunks(spliced)) and len(data) == spliced.length
        one, two = dcmread(io.BytesIO(data)), dcmread(io.BytesIO(b"".join(documents.chunks(transcoded))))
        assert one.PatientIdentityRemoved == two.PatientIdentityRemoved == "YES"
        assert one.SOPInstanceUID != ct.document_uid and one.PixelData == dcmread(CT).PixelData
        assert two.file_meta.TransferSyntaxUID == EXPLICIT
        # The two test files are of different studies: each maps through the same key, consistently.
        assert documents.anonymizer.uid_map(ct.study_uid) == one.StudyInstanceUID
        assert documents.anonymizer.uid_map(jpeg.study_uid) == two.StudyInstanceUID
    finally:
        documents.close()
