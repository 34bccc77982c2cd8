"""Orthanc's DICOMweb client pushing a study to xdsi (its STOW-RS job: chunked, a 73-character boundary)."""

from __future__ import annotations

import json

import pydicom
from pydicom.uid import generate_uid

from tests.dicomfiles import pydicom_files, to_bytes
from tests.interop.orthanc import Orthanc
from tests.live import LiveServer

# pydicom's dicomdir tests hold three MR studies; this one has 11 instances in 3 series.
STUDY = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.1"


def fresh_study() -> tuple[str, dict[str, bytes]]:
    """That study's files under new study, series and instance UIDs, so no earlier run already stored them."""
    study = generate_uid()
    series: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for path in pydicom_files():
        if "98892003" not in path.parts:
            continue
        ds = pydicom.dcmread(path)
        if ds.StudyInstanceUID != STUDY:
            continue
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        files[ds.SOPInstanceUID] = to_bytes(ds)
    assert len(files) == 11 and len(series) == 3, (len(files), len(series))
    return study, files


def test_orthanc_pushes_a_study_that_comes_back_byte_identical(orthanc: Orthanc, live: LiveServer) -> None:
    study, files = fresh_study()
    uploaded = [orthanc.upload(data) for data in files.values()]
    studies = {answer["ParentStudy"] for answer in uploaded}
    assert len(studies) == 1, studies

    job = orthanc.stow("xdsi", sorted(studies))
    assert job.status_code == 200, f"{job.status_code} {job.text}\n{orthanc.log_tail()}"
    assert job.json()["InstancesCount"] == str(len(files))

    found = live.request("GET", f"/dicom-web/studies/{study}/instances", headers={"Accept": "application/dicom+json"})
    assert found.status == 200, found.body
    by_sop = {item["00080018"]["Value"][0]: item["0020000E"]["Value"][0] for item in json.loads(found.body)}
    assert set(by_sop) == set(files)
    for sop, series in by_sop.items():
        got = live.request("GET", f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
                           headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.status == 200, got.body
        assert got.body == files[sop], sop
