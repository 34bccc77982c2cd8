"""The STOW-RS metadata-and-bulk-data assembly as a service: no HTTP, parts as the edge hands them over."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import make_settings
from tests.dicomfiles import make_dataset
from xdsi.encoding import dicom_json
from xdsi.errors import InvalidRequest, Overloaded
from xdsi.repository import index
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


def _budgeted(database_url: str, tmp_path: Path, budget: int) -> Archive:
    opened = Archive.open(make_settings(database_url, tmp_path / "store", max_metadata_bytes=budget,
                                        stow_metadata_budget_bytes=budget))
    opened.prepare()
    return opened


def _instances(count: int) -> tuple[bytes, list[str]]:
    datasets = [dicom_json.dataset_to_json(make_dataset()) for _ in range(count)]
    for obj in datasets:
        del obj["7FE00010"]
    return dicom_json.dumps(datasets), [obj["00080018"]["Value"][0] for obj in datasets]


def test_metadata_parts_past_the_budget_store_nothing_and_return_what_they_held(
    database_url: str, tmp_path: Path
) -> None:
    first, first_uids = _instances(3)
    second, second_uids = _instances(3)
    archive = _budgeted(database_url, tmp_path, len(first) + len(second) - 1)
    try:
        parts = [MetadataPart(JSON, None, None, io.BytesIO(first)), MetadataPart(JSON, None, None, io.BytesIO(second))]
        with pytest.raises(Overloaded, match="STOW-RS metadata"):
            archive.assembler.store_metadata(parts, JSON, None)
        assert archive.assembler.budget.used == 0
        with archive.sessions() as session:
            assert [index.find_instance(session, uid) for uid in first_uids + second_uids] == [None] * 6
        outcomes = archive.assembler.store_metadata([MetadataPart(JSON, None, None, io.BytesIO(first))], JSON, None)
        assert [o.status for o in outcomes] == [Status.STORED] * 3
        assert archive.assembler.budget.used == 0
        assert list(archive.blobs.tmp.iterdir()) == []
    finally:
        archive.close()


def test_a_part_malformed_after_good_data_sets_stores_none_of_them(archive: Archive) -> None:
    good, uids = _instances(2)
    broken = good[:-1] + b', {"00100020": {"vr": "LO", "Value": [NaN]}}]'
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        archive.assembler.store_metadata([MetadataPart(JSON, None, None, io.BytesIO(broken))], JSON, None)
    with archive.sessions() as session:
        assert [index.find_instance(session, uid) for uid in uids] == [None, None]
