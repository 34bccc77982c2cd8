"""dicomweb-client retrieving every stored pydicom file: instances, series, studies, metadata,
frames, bulk data and pixel data, compared with the files themselves."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from tests.interop.corpus import Corpus
from tests.live import LiveServer

EXPLICIT = "1.2.840.10008.1.2.1"


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def _pixels(ds: Dataset) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.pixel_array
        except Exception:  # noqa: BLE001 - no decoder for this syntax: nothing to compare
            return None


def test_every_instance_as_stored_is_byte_identical(served: tuple[DICOMwebClient, LiveServer],
                                                      corpus: Corpus) -> None:
    client, server = served
    for ds in corpus.datasets:
        study, series, sop = _uids(ds)
        got = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
        assert got.SOPInstanceUID == sop and got.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        raw = server.request("GET", f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
                             headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert raw.body == corpus.sent[sop], corpus.paths[sop].name


def test_explicit_vr_little_endian_gives_the_same_pixels(client: DICOMwebClient, corpus: Corpus) -> None:
    outcome: Counter[str] = Counter()
    for ds in corpus.datasets:
        original = _pixels(ds)
        if original is None and ds.file_meta.TransferSyntaxUID.is_compressed:
            # Nothing here decodes it, so the server cannot either: 406, not a broken answer.
            with pytest.raises(requests.HTTPError) as refused:
                client.retrieve_instance(*_uids(ds), media_types=(("application/dicom", EXPLICIT),))
            assert refused.value.response.status_code == 406
            outcome["refused"] += 1
            continue
        got = client.retrieve_instance(*_uids(ds), media_types=(("application/dicom", EXPLICIT),))
        assert got.file_meta.TransferSyntaxUID == EXPLICIT
        if original is None:
            outcome["no decodable pixels"] += 1
            continue
        transcoded = _pixels(got)
        assert transcoded is not None and np.array_equal(transcoded, original), corpus.paths[ds.SOPInstanceUID].name
        outcome[str(ds.file_meta.TransferSyntaxUID)] += 1
    # Big endian, deflated and every compressed syntax of the corpus came back decoded.
    stored = {str(ds.file_meta.TransferSyntaxUID) for ds in corpus.datasets if _pixels(ds) is not None}
    assert {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50"} <= stored
    for syntax in stored:
        assert outcome[syntax] >= 1, (syntax, outcome)


def test_series_and_studies_hold_their_instances(client: DICOMwebClient, corpus: Corpus) -> None:
    studies: dict[str, set[str]] = {}
    for ds in corpus.datasets:
        studies.setdefault(ds.StudyInstanceUID, set()).add(ds.SOPInstanceUID)
    for study, members in list(studies.items())[:30]:
        got = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
        assert {d.SOPInstanceUID for d in got} == members
    ds = corpus.datasets[0]
    series = client.retrieve_series(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                    media_types=(("application/dicom", "*"),))
    assert ds.SOPInstanceUID in {d.SOPInstanceUID for d in series}


def _frame_count(ds: Dataset) -> int | None:
    """Number of Frames, or None when the file's value is not an integer (e.g. badVR.dcm's '1A')."""
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except ValueError:
        return None


def _bulk_uris(obj: dict, path: tuple = ()) -> list[tuple[tuple, str]]:
    found = []
    for tag, attribute in obj.items():
        if "BulkDataURI" in attribute:
            found.append(((*path, tag), attribute["BulkDataURI"]))
        elif attribute.get("vr") == "SQ":
            for number, item in enumerate(attribute.get("Value", []), 1):
                found += _bulk_uris(item, (*path, tag, number))
    return found


def _element(ds: Dataset, path: tuple) -> pydicom.DataElement:
    for index in range(0, len(path) - 1, 2):
        ds = ds[int(path[index], 16)].value[path[index + 1] - 1]
    return ds[int(path[-1], 16)]


def test_metadata_and_every_bulk_data_uri(client: DICOMwebClient, corpus: Corpus) -> None:
    resolved = 0
    for ds in corpus.datasets:
        obj = client.retrieve_instance_metadata(*_uids(ds))
        assert obj["00080018"]["Value"] == [ds.SOPInstanceUID]
        for path, uri in _bulk_uris(obj):
            element = _element(ds, path)
            if element.tag == 0x7FE00010 and element.is_undefined_length:
                frames = list(generate_frames(element.value, number_of_frames=_frame_count(ds) or 1))
                got = client.retrieve_bulkdata(uri, media_types=(("application/octet-stream", "*"),))
                assert [f.rstrip(b"\0") for f in got] == [f.rstrip(b"\0") for f in frames]
            else:
                parts = client.retrieve_bulkdata(uri)
                assert len(parts) == 1, (corpus.paths[ds.SOPInstanceUID].name, path, len(parts))
                got = parts[0]
                if isinstance(element.value, bytes) and ds.is_little_endian:
                    assert got.rstrip(b"\0") == element.value.rstrip(b"\0"), (corpus.paths[ds.SOPInstanceUID].name, path)
                else:
                    assert got, (corpus.paths[ds.SOPInstanceUID].name, path)
            resolved += 1
    assert resolved >= 100


def test_frames_with_the_library_default_accept(client: DICOMwebClient, corpus: Corpus) -> None:
    checked = 0
    for ds in corpus.datasets:
        frames = _frame_count(ds)
        if "PixelData" not in ds or not ds.get("Rows") or frames is None:
            continue
        numbers = list(range(1, min(frames, 3) + 1))
        got = client.retrieve_instance_frames(*_uids(ds), frame_numbers=numbers)
        if ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"):
            if ds.BitsAllocated == 1:
                continue
            size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
            assert got == [ds.PixelData[(n - 1) * size:n * size] for n in numbers]
        elif ds.file_meta.TransferSyntaxUID.is_compressed:
            stored = list(generate_frames(ds.PixelData, number_of_frames=frames))
            assert [f.rstrip(b"\0") for f in got] == [stored[n - 1].rstrip(b"\0") for n in numbers]
        else:  # big endian or deflated: native frames travel little endian (PS3.18 8.7.3.3.1)
            if ds.BitsAllocated == 1 or ds.get("PlanarConfiguration", 0) == 1:
                continue
            pixels = ds.pixel_array.reshape(frames, -1)
            little = pixels.astype(pixels.dtype.newbyteorder("<"))
            assert got == [little[n - 1].tobytes() for n in numbers], corpus.paths[ds.SOPInstanceUID].name
        checked += 1
    assert checked >= 60


@pytest.mark.parametrize("accept", [("application/octet-stream", "*"), ("application/octet-stream", EXPLICIT)])
def test_frames_of_compressed_instances_decoded_on_request(client: DICOMwebClient, corpus: Corpus,
                                                           accept: tuple[str, str]) -> None:
    decoded = 0
    for ds in corpus.datasets:
        if not ds.file_meta.TransferSyntaxUID.is_compressed or _frame_count(ds) != 1:
            continue
        original = _pixels(ds)
        if original is None:
            continue
        [frame] = client.retrieve_instance_frames(*_uids(ds), frame_numbers=[1], media_types=(accept,))
        if accept[1] == "*":
            assert frame.rstrip(b"\0") == next(generate_frames(ds.PixelData, number_of_frames=1)).rstrip(b"\0")
        else:
            # The decoded frame is the pixel data of the instance decoded whole, whose pixels
            # test_explicit_vr_little_endian_gives_the_same_pixels compares with the original.
            native = client.retrieve_instance(*_uids(ds), media_types=(("application/dicom", EXPLICIT),))
            assert np.array_equal(_pixels(native), original), corpus.paths[ds.SOPInstanceUID].name
            assert frame == native.PixelData[: len(frame)] and len(native.PixelData) - len(frame) <= 1
        decoded += 1
    assert decoded >= 10
