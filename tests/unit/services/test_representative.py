"""Which object a rendered resource stands for when it is not an image, over real stored instances."""

from __future__ import annotations

import numpy as np
from pydicom.uid import generate_uid

from tests.conftest import store_all
from tests.dicomfiles import SMALL_PDF, make_dataset, make_document, make_report, make_video, to_bytes
from tests.unit.services.test_plans import plan_of
from xdsi.dicom import uids
from xdsi.services.archive import Archive
from xdsi.services.plans import MediaTypes
from xdsi.services.representative import document_for


def test_an_instance_that_is_a_document_stands_for_itself_whatever_is_asked(archive: Archive) -> None:
    study = generate_uid()
    report, pdf = make_report(study_uid=study), make_document(SMALL_PDF, study_uid=study)
    video = make_video([b"\x00\x00\x01\xb3" + b"\x00" * 64], uids.MPEG2_MAIN_LEVEL, study_uid=study)
    image = make_dataset(study_uid=study)
    store_all(archive, *(to_bytes(ds) for ds in (report, pdf, video, image)))
    for ds, asked in ((report, "image/png"), (pdf, "image/png"), (video, "text/html"), (video, "*/*")):
        found = document_for(plan_of(archive, study, ds.SeriesInstanceUID, ds.SOPInstanceUID), MediaTypes((asked,)))
        assert found is not None and found.instance.sop_instance_uid == ds.SOPInstanceUID
    # A video's frames are the renderer's when an image is what the client takes first.
    for asked in (("image/png",), ("image/*", "video/*")):
        assert document_for(plan_of(archive, study, video.SeriesInstanceUID, video.SOPInstanceUID),
                            MediaTypes(asked)) is None
    assert document_for(plan_of(archive, study, image.SeriesInstanceUID, image.SOPInstanceUID),
                        MediaTypes(("text/html",))) is None  # an image is the renderer's, even asked for text


def test_a_study_prefers_an_acceptable_image_then_the_first_acceptable_document(archive: Archive) -> None:
    study, documents = generate_uid(), generate_uid()
    report = make_report(study_uid=study, series_uid=documents, InstanceNumber=1)
    pdf = make_document(SMALL_PDF, study_uid=study, series_uid=documents, InstanceNumber=2)
    image = make_dataset(study_uid=study, rows=8, columns=8, PixelData=np.zeros((8, 8), np.uint16).tobytes())
    store_all(archive, *(to_bytes(ds) for ds in (report, pdf, image)))
    plan = plan_of(archive, study)
    assert document_for(plan, MediaTypes(("*/*",))) is None
    assert document_for(plan, MediaTypes(("image/*", "text/html"))) is None
    chosen = document_for(plan, MediaTypes(("text/*",)))
    assert chosen is not None and chosen.instance.sop_instance_uid == report.SOPInstanceUID
    chosen = document_for(plan, MediaTypes(("application/pdf", "text/plain")))
    assert chosen is not None and chosen.instance.sop_instance_uid == report.SOPInstanceUID  # the first that fits
    chosen = document_for(plan, MediaTypes(("application/pdf",)))
    assert chosen is not None and chosen.instance.sop_instance_uid == pdf.SOPInstanceUID
    assert document_for(plan, MediaTypes(("video/mp4",))) is None  # nothing fits: the images' 406
    # A series of documents only: its first document stands for it even when nothing fits.
    chosen = document_for(plan_of(archive, study, documents), MediaTypes(("image/png",)))
    assert chosen is not None and chosen.instance.sop_instance_uid == report.SOPInstanceUID
