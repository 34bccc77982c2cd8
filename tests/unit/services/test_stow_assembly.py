"""The STOW-RS metadata-and-bulk-data assembly as a service: no HTTP, parts as the edge hands them over."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread

from tests.dicomfiles import make_dataset
from xdsi.encoding import dicom_json
from xdsi.errors import InvalidRequest
from xdsi.services.archive import Archive
from xdsi.services.retrieve import Target, instances, open_file
from xdsi.services.store import Status
from xdsi.services.stow_assembly import MetadataPart

JSON = "application/dicom+json"


def _metadata(uri: str) -> tuple[bytes, bytes, str]:
    ds = make_dataset()
    pixels = ds.PixelData
    del ds.PixelData
    obj = dicom_json.dataset_to_json(ds)
    obj["7FE00010"] = {"vr": "OW", "BulkDataURI": uri}
    return dicom_json.dumps([obj]), pixels, ds.StudyInstanceUID


def test_metadata_and_its_bulk_data_part_become_one_stored_instance(archive: Archive) -> None:
    metadata, pixels, study = _metadata("urn:test:pixels")
    parts = [MetadataPart(JSON, None, None, io.BytesIO(metadata)),
             MetadataPart("application/octet-stream", None, "urn:test:pixels", io.BytesIO(pixels))]
    [outcome] = archive.assembler.store_metadata(parts, JSON, None)
    assert outcome.status is Status.STORED
    with archive.sessions() as session:
        [found] = instances(session, Target.checked(study))
    with open_file(archive.blobs, found) as handle:
        assert dcmread(handle).PixelData == pixels
    assert list(archive.blobs.tmp.iterdir()) == []


def test_a_bulk_part_without_location_fails_the_request_and_leaves_no_scratch_file(archive: Archive) -> None:
    metadata, pixels, _ = _metadata("urn:test:pixels")
    parts = [MetadataPart("application/octet-stream", None, "urn:test:pixels", io.BytesIO(pixels)),
             MetadataPart("application/octet-stream", None, None, io.BytesIO(pixels)),
             MetadataPart(JSON, None, None, io.BytesIO(metadata))]
    with pytest.raises(InvalidRequest, match=r"bulk data part 2 .* has no Content-Location"):
        archive.assembler.store_metadata(parts, JSON, None)
    assert list(archive.blobs.tmp.iterdir()) == []
