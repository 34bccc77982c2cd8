"""Retrieve plans over real stored instances: kinds, syntaxes, rendered forms and per-object resolution."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from tests.conftest import store_all
from tests.dicomfiles import make_dataset, make_report, to_bytes
from xdsi.dicom import uids
from xdsi.errors import NotAcceptable, NotFound
from xdsi.services import plans
from xdsi.services.archive import Archive
from xdsi.services.plans import AS_STORED, MediaTypes, ObjectKind, Resolved, Syntaxes, Unavailable
from xdsi.services.retrieve import Target, opened_files

MPEG2 = uids.MPEG2_MAIN_LEVEL


def plan_of(archive: Archive, study: str, series: str | None = None, sop: str | None = None) -> plans.RetrievePlan:
    with archive.sessions() as session:
        return plans.plan(session, Target.checked(study, series, sop))


def _jpeg_baseline_file() -> bytes:
    path = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
    assert path is not None
    with open(path, "rb") as handle:
        return handle.read()


def _sr(study: str) -> bytes:
    return to_bytes(make_report(study_uid=study))


def test_a_study_of_mixed_objects_is_planned_per_object(archive: Archive) -> None:
    study = generate_uid()
    series = generate_uid()
    single = make_dataset(study_uid=study, series_uid=series, InstanceNumber=1)
    multi = make_dataset(study_uid=study, series_uid=series, frames=3, InstanceNumber=2)
    store_all(archive, to_bytes(single), to_bytes(multi), _sr(study))
    plan = plan_of(archive, study)
    kinds = {item.instance.sop_instance_uid: item.kind for item in plan.objects}
    assert kinds[single.SOPInstanceUID] is ObjectKind.IMAGE
    assert kinds[multi.SOPInstanceUID] is ObjectKind.MULTI_FRAME
    by_kind = {item.kind: item for item in plan.objects}
    assert by_kind[ObjectKind.IMAGE].rendered[0] == "image/jpeg"  # PS3.18 Table 8.7.4-1 default
    assert by_kind[ObjectKind.MULTI_FRAME].number_of_frames == 3
    assert by_kind[ObjectKind.STRUCTURED_REPORT].rendered == ("text/html", "text/plain")
    assert by_kind[ObjectKind.STRUCTURED_REPORT].number_of_frames == 0
    assert plan.as_stored == uids.EXPLICIT_VR_LITTLE_ENDIAN
    assert plan.syntaxes[0] == uids.EXPLICIT_VR_LITTLE_ENDIAN
    for item in plan.objects:
        assert item.size > 0 and item.syntaxes[0] == uids.EXPLICIT_VR_LITTLE_ENDIAN
        assert uids.JPEG_2000_LOSSLESS in item.syntaxes


def test_an_unknown_target_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFound, match="not in the archive"):
        plan_of(archive, generate_uid())


def test_as_stored_sends_every_file_unchanged_with_its_length(archive: Archive) -> None:
    study = generate_uid()
    store_all(archive, to_bytes(make_dataset(study_uid=study)), to_bytes(make_dataset(study_uid=study)))
    plan = plan_of(archive, study)
    resolved = plan.require(AS_STORED)
    assert [item.transcoded for item in resolved] == [False, False]
    assert [item.length for item in resolved] == [item.size for item in plan.objects]
    files = opened_files(archive.blobs, plan.instances)
    try:
        body = plans.dicom_body(files, resolved[0], archive.settings.max_transcode_bytes)
        data = b"".join(body.chunks)
    finally:
        files.close()
    assert len(data) == resolved[0].length == body.length
    assert data[128:132] == b"DICM"


def test_a_syntax_list_resolves_to_the_first_producible_and_transcodes(archive: Archive) -> None:
    study = generate_uid()
    store_all(archive, to_bytes(make_dataset(study_uid=study, rows=16, columns=16)))
    plan = plan_of(archive, study)
    unknown = "1.2.3.4.5.6"
    [resolved] = plan.require(Syntaxes((unknown, uids.RLE_LOSSLESS, uids.EXPLICIT_VR_LITTLE_ENDIAN)))
    assert resolved.transfer_syntax == uids.RLE_LOSSLESS and resolved.transcoded and resolved.length is None
    files = opened_files(archive.blobs, plan.instances)
    try:
        body = plans.dicom_body(files, resolved, archive.settings.max_transcode_bytes)
        data = b"".join(body.chunks)
    finally:
        files.close()
    assert body.transfer_syntax == uids.RLE_LOSSLESS
    assert uids.RLE_LOSSLESS.encode() in data[:512]
    [same] = plan.require(Syntaxes((uids.EXPLICIT_VR_LITTLE_ENDIAN,)))
    assert not same.transcoded and same.length == plan.objects[0].size


def test_an_object_not_producible_in_any_listed_syntax_is_an_error_value_for_it_alone(archive: Archive) -> None:
    """RAD-69: one document that cannot be sent in any listed syntax fails alone."""
    study = generate_uid()
    series = generate_uid()
    video = make_dataset(study_uid=study, series_uid=series, InstanceNumber=1)
    video.file_meta.TransferSyntaxUID = MPEG2
    video.BitsAllocated, video.BitsStored, video.HighBit = 8, 8, 7
    video.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])  # an MPEG-2 sequence header, kept as is
    video["PixelData"].VR = "OB"
    native = make_dataset(study_uid=study, series_uid=series, InstanceNumber=2)
    store_all(archive, to_bytes(video), to_bytes(native))
    plan = plan_of(archive, study)
    assert plan.syntaxes == ()  # nothing both can be sent in but as stored
    outcomes = plan.resolve(Syntaxes((uids.EXPLICIT_VR_LITTLE_ENDIAN,)))
    by_uid = {outcome.object.instance.sop_instance_uid: outcome for outcome in outcomes}
    failed = by_uid[video.SOPInstanceUID]
    assert isinstance(failed, Unavailable)
    assert video.SOPInstanceUID in failed.reason and "MPEG2" in failed.reason.replace("-", "")
    assert isinstance(by_uid[native.SOPInstanceUID], Resolved)
    with pytest.raises(NotAcceptable, match=video.SOPInstanceUID):
        plan.require(Syntaxes((uids.EXPLICIT_VR_LITTLE_ENDIAN,)))
    video_plan = next(item for item in plan.objects if item.kind is ObjectKind.VIDEO)
    # Its stream first (PS3.18 Table 8.7.4-1), then its frames as still images (PyAV decodes them).
    assert video_plan.rendered == ("video/mpeg", "image/jpeg", "image/png", "image/gif") and video_plan.frames == ()
    assert video_plan.syntaxes == (MPEG2,)


def test_a_compressed_file_keeps_its_stored_form_first_among_frame_forms(archive: Archive) -> None:
    store_all(archive, _jpeg_baseline_file())
    ds = dcmread(io.BytesIO(_jpeg_baseline_file()), stop_before_pixels=True)
    [item] = plan_of(archive, ds.StudyInstanceUID).objects
    assert item.stored_syntax == uids.JPEG_BASELINE
    assert item.frames[0].media_type == "image/jpeg" and item.frames[0].stored_syntax == uids.JPEG_BASELINE
    assert item.kind is ObjectKind.IMAGE and item.rendered[0] == "image/jpeg"


def test_media_types_resolve_by_pattern_in_preference_order(archive: Archive) -> None:
    study = generate_uid()
    store_all(archive, to_bytes(make_dataset(study_uid=study)), _sr(study))
    plan = plan_of(archive, study)
    outcomes = plan.resolve(MediaTypes(("image/png", "text/*")))
    by_kind = {outcome.object.kind: outcome for outcome in outcomes}
    image, report = by_kind[ObjectKind.IMAGE], by_kind[ObjectKind.STRUCTURED_REPORT]
    assert isinstance(image, Resolved) and image.media_type == "image/png" and image.transfer_syntax is None
    assert isinstance(report, Resolved) and report.media_type == "text/html"
    assert image.transcoded and image.length is None
    only_pdf = plan.resolve(MediaTypes(("application/pdf",)))
    assert all(isinstance(outcome, Unavailable) for outcome in only_pdf)
    assert "offers image/jpeg" in next(o.reason for o in only_pdf if o.object.kind is ObjectKind.IMAGE)
    assert isinstance(plan.resolve(MediaTypes(("*/*",)))[0], Resolved)
    with pytest.raises(ValueError, match="rendered form"):
        plans.dicom_body(opened_files(archive.blobs, []), image, 1)
