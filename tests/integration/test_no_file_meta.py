"""Data sets without File Meta Information, from pydicom's own files, through STOW-RS and `xdsi import`.

Which files those are is decided here without xdsi: no 'DICM' at offset 128, and pydicom
(``force=True``) reads SOP Class and Instance UIDs from them. Each is stored, retrieved as
stored over WADO-RS, found by QIDO-RS, and its metadata rebuilt into the original data set.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from sqlalchemy import select

from tests.dicomfiles import pydicom_files
from tests.integration.test_cli import run_xdsi
from tests.integration.test_stow_rs import post
from tests.live import LiveServer
from tests.unit.encoding.conftest import assert_same_dataset
from xdsi.dicom import uids
from xdsi.encoding import dicom_json
from xdsi.encoding.dicom_json import json_to_dataset
from xdsi.repository.models import Instance
from xdsi.services.archive import Archive

WITH_META = Path(get_testdata_file("CT_small.dcm"))  # a PS3.10 file stored beside, never flagged
SYNTAXES = {  # pydicom's (is_implicit_VR, is_little_endian) of a file read without its meta
    (True, True): "1.2.840.10008.1.2",
    (False, True): "1.2.840.10008.1.2.1",
    (False, False): "1.2.840.10008.1.2.2",
}


def read_forced(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(path, force=True)


@lru_cache(maxsize=1)
def bare_files() -> tuple[Path, ...]:
    """pydicom's files that lack the 'DICM' prefix yet hold a data set pydicom reads with its UIDs."""
    found = []
    for path in pydicom_files():
        with open(path, "rb") as fp:
            if fp.read(132)[128:] == b"DICM":
                continue
        try:
            ds = read_forced(path)
        except Exception:  # noqa: BLE001 - not a data set at all (text, JSON, ICC profile, ...)
            continue
        if "SOPClassUID" in ds and "SOPInstanceUID" in ds and "FileMetaInformationGroupLength" not in ds:
            found.append(path)
    return tuple(found)


def test_the_selection_covers_every_encoding() -> None:
    encodings = {read_forced(path).original_encoding for path in bare_files()}
    assert encodings == set(SYNTAXES), [path.name for path in bare_files()]


def check_retrieved_as_sent(live: LiveServer, path: Path) -> None:
    """WADO-RS as stored, QIDO-RS and metadata of a data set that came without File Meta Information."""
    original = read_forced(path)
    syntax = SYNTAXES[original.original_encoding]
    instance = (f"/dicom-web/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
                f"/instances/{original.SOPInstanceUID}")

    reply = live.request("GET", instance, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert reply.status == 200, reply.body[:300]
    assert reply.header("Content-Type") == f"application/dicom; transfer-syntax={syntax}"
    meta = pydicom.dcmread(io.BytesIO(reply.body), stop_before_pixels=True).file_meta
    header_end = 128 + 4 + 12 + meta.FileMetaInformationGroupLength
    assert reply.body[header_end:] == path.read_bytes()
    assert (meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID) == (
        original.SOPClassUID, original.SOPInstanceUID, syntax)
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert meta.ImplementationClassUID == uids.IMPLEMENTATION_CLASS_UID

    found = live.request("GET", f"/dicom-web/instances?SOPInstanceUID={original.SOPInstanceUID}",
                         headers={"Accept": "application/dicom+json"})
    assert found.status == 200
    [match] = json.loads(found.body)
    assert match["00080016"]["Value"] == [original.SOPClassUID]
    assert match["0020000D"]["Value"] == [original.StudyInstanceUID]

    metadata = live.request("GET", instance + "/metadata", headers={"Accept": "application/dicom+json"})
    assert metadata.status == 200
    [obj] = dicom_json.loads(metadata.body)  # DS numbers keep their text (1.000 is not 1.0)
    assert obj["00083002"]["Value"] == [syntax]  # Available Transfer Syntax UID: as stored
    del obj["00083002"]

    def bulk(uri: str, vr: str) -> bytes:
        value = live.request("GET", uri, headers={"Accept": "application/octet-stream"})
        assert value.status == 200, uri
        return value.body

    assert_same_dataset(original, json_to_dataset(obj, bulk), little_endian=original.is_little_endian)


def flags(live: LiveServer) -> dict[str, bool]:
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            return dict(session.execute(select(Instance.sop_instance_uid, Instance.file_meta_added)).all())
    finally:
        archive.close()


def test_stow_rs_stores_every_data_set_without_file_meta(database_url: str, tmp_path: Path) -> None:
    # Overwrite: pydicom ships one data set in two encodings under the same SOP Instance UID.
    live = LiveServer(database_url, tmp_path / "store", workers=1, duplicate_policy="overwrite")
    try:
        assert post(live, WITH_META.read_bytes(), "application/dicom").status == 200
        for path in bare_files():
            reply = post(live, path.read_bytes(), "application/dicom")
            assert reply.status == 200, (path.name, reply.body)
            check_retrieved_as_sent(live, path)
            assert flags(live)[read_forced(path).SOPInstanceUID] is True
        assert flags(live)[read_forced(WITH_META).SOPInstanceUID] is False
    finally:
        live.stop()


@pytest.mark.parametrize("path", bare_files(), ids=lambda path: path.name)
def test_import_stores_a_data_set_without_file_meta(database_url: str, tmp_path: Path, path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for source in (path, WITH_META):
        shutil.copy(source, folder / source.name)
    storage = tmp_path / "store"
    result = run_xdsi("import", "--no-progress", "--database-url", database_url, "--storage", str(storage),
                      str(folder))
    assert result.returncode == 0, result.stderr
    assert "stored 2, duplicate 0, failed 0, skipped (not DICOM) 0" in result.stdout
    live = LiveServer(database_url, storage, workers=1)
    try:
        check_retrieved_as_sent(live, path)
        assert flags(live) == {read_forced(path).SOPInstanceUID: True, read_forced(WITH_META).SOPInstanceUID: False}
    finally:
        live.stop()


def test_a_truncated_file_meta_is_refused_as_not_dicom(database_url: str, tmp_path: Path) -> None:
    """pydicom's no_meta.dcm is CT_small.dcm cut one byte late: a stray byte before the data set."""
    path = Path(get_testdata_file("no_meta.dcm"))
    assert path.read_bytes()[1:] in Path(get_testdata_file("CT_small.dcm")).read_bytes()
    live = LiveServer(database_url, tmp_path / "store", workers=1)
    try:
        reply = post(live, path.read_bytes(), "application/dicom")
        assert reply.status == 409
        [failed] = json.loads(reply.body)["0008119A"]["Value"]  # Other Failures: no UIDs to name it by
        assert failed["00081197"]["Value"] == [0xC000]
        assert "nor a data set without File Meta Information" in reply.header("Warning")
        assert flags(live) == {}
    finally:
        live.stop()
