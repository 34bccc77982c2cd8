"""dicomweb-client's rendered retrievals, unmodified, against the corpus it stored: instances, frames
and series come back as the images they should be."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from tests.dicomfiles import SMALL_PDF, make_document, make_video, to_bytes
from tests.integration.test_wado_uri_documents import MPEG4, VIDEO, _report
from tests.interop.corpus import Corpus
from tests.rendering import expected, psnr


def _find(corpus: Corpus, name: str) -> pydicom.Dataset:
    for ds in corpus.datasets:
        if corpus.paths[ds.SOPInstanceUID].name == name:
            return ds
    pytest.fail(f"{name} is not in the corpus: {corpus.skipped.get(name)}")


def _stored(ds: pydicom.Dataset, frame: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.pixels.pixel_array(ds, index=frame, as_rgb=False)


def test_retrieve_instance_rendered(client: DICOMwebClient, corpus: Corpus) -> None:
    ds = _find(corpus, "CT_small.dcm")
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
    assert psnr(np.asarray(Image.open(io.BytesIO(png))), expected(ds, _stored(ds))) >= 40
    jpeg = client.retrieve_instance_rendered(*uids, media_types=("image/jpeg",), params={"quality": 95})
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    assert psnr(np.asarray(Image.open(io.BytesIO(jpeg))), expected(ds, _stored(ds))) >= 30
    default = client.retrieve_instance_rendered(*uids)  # no media type: the server's default, JPEG
    assert Image.open(io.BytesIO(default)).format == "JPEG"


def test_retrieve_instance_frames_rendered(client: DICOMwebClient, corpus: Corpus) -> None:
    ds = _find(corpus, "emri_small.dcm")
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    png = client.retrieve_instance_frames_rendered(*uids, frame_numbers=[4], media_types=("image/png",))
    assert psnr(np.asarray(Image.open(io.BytesIO(png))), expected(ds, _stored(ds, 3))) >= 40
    gif = client.retrieve_instance_frames_rendered(*uids, frame_numbers=[1, 2, 3], media_types=("image/gif",))
    assert Image.open(io.BytesIO(gif)).n_frames == 3


def test_retrieve_series_rendered(client: DICOMwebClient, corpus: Corpus) -> None:
    ds = _find(corpus, "SC_rgb.dcm")
    png = client.retrieve_series_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID, media_types=("image/png",),
                                          params={"viewport": "50,50"})
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and max(image.size) == 50


def test_retrieve_rendered_reports_documents_and_video(client: DICOMwebClient) -> None:
    """The client's text, PDF and video branches of retrieve_instance_rendered (each sends its own
    Accept), and retrieve_series_rendered of a report series, against objects it stored itself."""
    report = _report()
    pdf = make_document(SMALL_PDF, study_uid=report.StudyInstanceUID)
    video = make_video(VIDEO, MPEG4, study_uid=report.StudyInstanceUID)
    datasets = [pydicom.dcmread(io.BytesIO(to_bytes(ds))) for ds in (report, pdf, video)]
    answer = client.store_instances(datasets)
    assert len(answer.get("ReferencedSOPSequence", [])) == 3

    def uids(ds: pydicom.Dataset) -> tuple[str, str, str]:
        return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID

    html = client.retrieve_instance_rendered(*uids(report), media_types=("text/html",))
    assert b"Finding (121071, DCM)" in html and html.lstrip().startswith(b"<!DOCTYPE html>")
    text = client.retrieve_instance_rendered(*uids(report), media_types=("text/plain",), params={"charset": "utf-8"})
    assert "所見 <none>" in text.decode("utf-8")
    assert client.retrieve_instance_rendered(*uids(pdf), media_types=("application/pdf",)) == SMALL_PDF
    assert client.retrieve_instance_rendered(*uids(video), media_types=("video/mp4",)) == b"".join(VIDEO)
    series = client.retrieve_series_rendered(report.StudyInstanceUID, report.SeriesInstanceUID,
                                             media_types=("text/plain",))
    assert b"Finding (121071, DCM)" in series
