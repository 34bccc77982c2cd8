"""dicomweb-client as it comes, against ``xdsi serve`` on a non-default port with no base_url.

The client sends ``Host: 127.0.0.1`` without the port, so the server must name URLs it can
follow by itself. Every pydicom file is stored; each one the server reports stored is then
searched, its metadata retrieved, and every BulkDataURI in it (in sequences too) fetched with
``retrieve_bulkdata`` and compared byte for byte with the value in the file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError

from tests.conftest import DATABASES
from tests.dicomfiles import pydicom_files
from tests.live import LiveServer

# xdsi stored 151 pydicom files when this test was written (as `xdsi import` of them does); files are only ever
# added to what it accepts, so fewer is a regression.
MIN_STORED = 151
BULK_DATA_THRESHOLD = 1024  # the default bulk_data_threshold
PIXEL_DATA_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
UNDEFINED_LENGTH = 0xFFFFFFFF
# PS3.5 7.3: a big endian value is swapped per unit of its VR; PS3.18 8.7.3.3.1: bulk data travels little endian.
SWAP_WIDTH = {"AT": 2, "OW": 2, "SS": 2, "US": 2, "FL": 4, "OF": 4, "OL": 4, "SL": 4, "UL": 4,
              "FD": 8, "OD": 8, "OV": 8, "SV": 8, "UV": 8}

Served = tuple[DICOMwebClient, LiveServer, dict[str, Path]]


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _sendable(path: Path) -> Dataset | None:
    """The dataset store_instances would send, or None when the client could not even encode it."""
    try:
        ds = _read(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(io.BytesIO(), ds)  # what store_instances does with it
    except (InvalidDicomError, ValueError, TypeError, EOFError, OSError):
        return None
    return ds


@pytest.fixture(scope="module", params=DATABASES)
def stored_by_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp(f"bulkdata-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    server = LiveServer(url, folder / "store")  # a free port, never 80; no base_url
    client = DICOMwebClient(url=server.root)
    stored: dict[str, Path] = {}
    try:
        for path in pydicom_files():
            ds = _sendable(path)
            if ds is None:
                continue
            # One file per request: the answer then says which file each stored instance came from.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    answer = client.store_instances([ds])
            except requests.HTTPError as refused:
                assert refused.response.status_code == 409, (path.name, refused.response.text[:300])
                continue
            for item in answer.get("ReferencedSOPSequence", []):
                assert item.RetrieveURL.startswith(server.root + "/studies/"), item.RetrieveURL
                stored.setdefault(item.ReferencedSOPInstanceUID, path)
        yield client, server, stored
    finally:
        server.stop()


def test_most_pydicom_files_are_stored(stored_by_client: Served) -> None:
    _client, _server, stored = stored_by_client
    assert len(stored) >= MIN_STORED, len(stored)


def _bulk_data_uris(obj: dict, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(tag, item index, tag, ...) paths of every BulkDataURI, in sequence items too."""
    for tag, attribute in obj.items():
        if "BulkDataURI" in attribute:
            yield (*path, int(tag, 16)), attribute["BulkDataURI"]
        elif attribute.get("vr") == "SQ":
            for index, item in enumerate(attribute.get("Value", [])):
                yield from _bulk_data_uris(item, (*path, int(tag, 16), index))


def _expected(ds: Dataset, path: tuple) -> list[bytes]:
    """The value at ``path`` as PS3.18 sends it: the file's bytes, little endian; encapsulated
    pixel data as its frames, which is how xdsi answers a BulkDataURI naming it."""
    top = ds
    for position in range(0, len(path) - 1, 2):
        ds = ds[path[position]].value[path[position + 1]]
    raw = ds.get_item(path[-1])
    assert isinstance(raw, RawDataElement), path  # untouched: the bytes as the file holds them
    data = raw.value or b""
    if raw.length == UNDEFINED_LENGTH:
        assert len(path) == 1 and path[0] in PIXEL_DATA_TAGS, path
        tables = (top.get("ExtendedOffsetTable"), top.get("ExtendedOffsetTableLengths"))
        return list(generate_frames(data, number_of_frames=int(top.get("NumberOfFrames") or 1),
                                    extended_offsets=tables if all(tables) else None))
    if not raw.is_little_endian and raw.VR in SWAP_WIDTH:
        width = SWAP_WIDTH[raw.VR]
        data = np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    return [data]


def test_search_metadata_and_every_bulk_data_uri(stored_by_client: Served) -> None:
    client, server, stored = stored_by_client
    fetched, wrong = 0, []
    for sop, path in stored.items():
        ds = _read(path)
        study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
        instance = f"{server.root}/studies/{study}/series/{series}/instances/{sop}"
        [found] = client.search_for_instances(search_filters={"SOPInstanceUID": sop})
        assert found["00081190"]["Value"] == [instance], path.name
        metadata = client.retrieve_instance_metadata(study, series, sop)
        assert metadata["00080018"]["Value"] == [sop], path.name
        uris = dict(_bulk_data_uris(metadata))
        pixel_data = ds.get_item(0x7FE00010)
        if pixel_data is not None and pixel_data.length > BULK_DATA_THRESHOLD:
            assert (0x7FE00010,) in uris, path.name
        for where, uri in uris.items():
            assert uri.startswith(instance + "/bulkdata/"), (path.name, uri)
            if client.retrieve_bulkdata(uri) != _expected(ds, where):
                wrong.append((path.name, uri.removeprefix(instance)))
            fetched += 1
    assert not wrong
    assert fetched >= 100, fetched  # 111 when this test was written
