"""WADO-RS against a running server: retrieve, negotiation, metadata, frames, bulk data, bad input."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import re
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate_extended, generate_frames

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer, Reply

DICOM = 'multipart/related; type="application/dicom"'
AS_STORED = DICOM + "; transfer-syntax=*"
OCTETS = 'multipart/related; type="application/octet-stream"'
FILES = ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "JPEG2000.dcm",
         "emri_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"]


def parts(reply: Reply) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related answer with a parser independent of the server's."""
    assert reply.status == 200, reply.body[:300]
    boundary = re.search(r'boundary="?([^";]+)"?', reply.header("Content-Type")).group(1)  # type: ignore[union-attr]
    chunks = reply.body.split(b"--" + boundary.encode())
    assert chunks[-1].strip() == b"--"
    found = []
    for chunk in chunks[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        found.append((headers, body[:-2] if body.endswith(b"\r\n") else body))
    return found


def get(live: LiveServer, path: str, accept: str, **headers: str) -> Reply:
    return live.request("GET", path, headers={"Accept": accept, **{k.replace("_", "-"): v for k, v in headers.items()}})


@pytest.fixture(scope="module")
def stored(live: LiveServer) -> dict[str, tuple[str, Path]]:
    """pydicom files stored on the server: name -> (instance path, file)."""
    found = {}
    for name in FILES:
        path = Path(get_testdata_file(name))
        post(live, dicom_parts(path.read_bytes()))
        ds = pydicom.dcmread(path)
        found[name] = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                       f"/instances/{ds.SOPInstanceUID}", path)
    return found


@pytest.mark.parametrize("name", FILES)
def test_instance_as_stored_is_byte_identical(live: LiveServer, stored: dict, name: str) -> None:
    url, path = stored[name]
    [(headers, body)] = parts(get(live, url, AS_STORED))
    assert body == path.read_bytes()
    stored_syntax = str(pydicom.dcmread(path).file_meta.TransferSyntaxUID)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={stored_syntax}"
    single = get(live, url, "application/dicom; transfer-syntax=*")
    assert single.status == 200 and single.body == path.read_bytes()


@pytest.mark.parametrize("name", FILES)
def test_default_is_explicit_vr_little_endian_with_identical_pixels(live: LiveServer, stored: dict, name: str) -> None:
    url, path = stored[name]
    [(headers, body)] = parts(get(live, url, DICOM))
    assert headers["Content-Type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(got.pixel_array, pydicom.dcmread(path).pixel_array)


def test_explicit_transfer_syntax_and_lossless_round_trip(live: LiveServer, stored: dict) -> None:
    url, path = stored["CT_small.dcm"]
    reply = get(live, url, DICOM + "; transfer-syntax=1.2.840.10008.1.2.5")
    [(_headers, body)] = parts(reply)
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert np.array_equal(got.pixel_array, pydicom.dcmread(path).pixel_array)


def test_q_values_pick_the_preferred_syntax(live: LiveServer, stored: dict) -> None:
    url, _path = stored["CT_small.dcm"]
    accept = (DICOM + "; transfer-syntax=1.2.840.10008.1.2.5; q=0.5, " + DICOM
              + "; transfer-syntax=1.2.840.10008.1.2.1; q=0.9")
    [(headers, _body)] = parts(get(live, url, accept))
    assert headers["Content-Type"].endswith("1.2.840.10008.1.2.1")


def test_study_is_streamed_with_a_length_and_keep_alive(live: LiveServer) -> None:
    study = pydicom.uid.generate_uid()
    sent = [make_dataset(study_uid=study, patient_id="WADO-STUDY", rows=64, columns=64) for _ in range(5)]
    post(live, dicom_parts(*(to_bytes(ds) for ds in sent)))
    reply = get(live, f"/dicom-web/studies/{study}", AS_STORED)
    assert int(reply.header("Content-Length")) == len(reply.body)
    assert reply.header("Connection").lower() != "close"
    # The connection really stays open: a second multipart answer comes over the same socket.
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    try:
        sockets = []
        for _ in range(2):
            connection.request("GET", f"/dicom-web/studies/{study}", headers={"Accept": AS_STORED})
            answer = connection.getresponse()
            assert answer.status == 200 and len(answer.read()) == len(reply.body)
            sockets.append(connection.sock)
        assert sockets[0] is not None and sockets[1] is sockets[0]
    finally:
        connection.close()
    received = {pydicom.dcmread(io.BytesIO(body)).SOPInstanceUID for _h, body in parts(reply)}
    assert received == {ds.SOPInstanceUID for ds in sent}
    series = get(live, f"/dicom-web/studies/{study}/series/{sent[0].SeriesInstanceUID}", AS_STORED)
    assert len(parts(series)) == 1


def test_metadata_json_bulk_data_uris_resolve_to_the_stored_bytes(live: LiveServer, stored: dict) -> None:
    url, path = stored["MR_small_bigendian.dcm"]
    reply = get(live, url + "/metadata", "application/dicom+json")
    assert reply.header("Content-Type").startswith("application/dicom+json")
    [obj] = json.loads(reply.body)
    uri = obj["7FE00010"]["BulkDataURI"]
    assert uri.startswith(live.root + "/studies/")
    value = live.request("GET", uri, headers={"Accept": "application/octet-stream"})
    original = pydicom.dcmread(path)
    expected = original.pixel_array.astype("<u2" if original.PixelRepresentation == 0 else "<i2").tobytes()
    assert value.status == 200 and value.body == expected
    assert obj["00083002"]["Value"] == ["1.2.840.10008.1.2.2"]


def test_metadata_xml_and_caching(live: LiveServer, stored: dict) -> None:
    url, _path = stored["CT_small.dcm"]
    xml = get(live, url + "/metadata", 'multipart/related; type="application/dicom+xml"')
    [(headers, document)] = parts(xml)
    assert headers["Content-Type"].startswith("application/dicom+xml")
    assert b"<NativeDicomModel" in document and b'<BulkData uri="http' in document
    first = get(live, url + "/metadata", "application/dicom+json")
    etag = first.header("ETag")
    assert etag and first.header("Last-Modified")
    assert get(live, url + "/metadata", "application/dicom+json", If_None_Match=etag).status == 304
    assert get(live, url + "/metadata", "application/dicom+json",
               If_Modified_Since=first.header("Last-Modified")).status == 304


class _Token(str):
    """A JSON number's exact text."""


def test_metadata_ds_and_is_are_json_numbers_holding_the_stored_text(live: LiveServer, stored: dict) -> None:
    """PS3.18 F.2.3: numbers, as clients reading DS and IS as numbers need; the token is the file's
    own text (5.000000, not 5.0), and the XML metadata, rendered from the same cache, holds it too."""
    url, path = stored["CT_small.dcm"]
    reply = get(live, url + "/metadata", "application/dicom+json")
    [obj] = json.loads(reply.body, parse_float=_Token, parse_int=_Token)
    original = pydicom.dcmread(path)
    checked = 0
    for element in original:
        if element.VR in ("DS", "IS") and element.VM:
            values = element.value if element.VM > 1 else [element.value]
            sent = obj[f"{element.tag:08X}"]["Value"]
            assert sent == [str(v).strip(" ") for v in values] and all(isinstance(v, _Token) for v in sent), element
            checked += 1
    assert checked > 30
    assert b'"00180050":{"vr":"DS","Value":[5.000000]}' in reply.body
    assert b'"00200032":{"vr":"DS","Value":[-158.135803,-179.035797,-75.699997]}' in reply.body
    assert b'"00200013":{"vr":"IS","Value":[1]}' in reply.body
    [(_headers, document)] = parts(get(live, url + "/metadata", 'multipart/related; type="application/dicom+xml"'))
    assert b'keyword="SliceThickness"><Value number="1">5.000000</Value>' in document


def test_large_metadata_is_gzipped_when_accepted(live: LiveServer) -> None:
    study = pydicom.uid.generate_uid()
    post(live, dicom_parts(*(make_instance_with_text(study) for _ in range(20))))
    plain = get(live, f"/dicom-web/studies/{study}/metadata", "application/dicom+json")
    zipped = get(live, f"/dicom-web/studies/{study}/metadata", "application/dicom+json", Accept_Encoding="gzip")
    assert zipped.header("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body) / 3


def make_instance_with_text(study: str) -> bytes:
    return to_bytes(make_dataset(study_uid=study, patient_id="WADO-GZIP", ImageComments="x" * 4000))


def test_frames_native_multi_frame(live: LiveServer) -> None:
    ds = make_dataset(rows=16, columns=16, frames=20)
    post(live, dicom_parts(to_bytes(ds)))
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    size = 16 * 16 * 2
    got = parts(get(live, url + "/frames/3,1,20", OCTETS + "; transfer-syntax=*"))
    assert [body for _h, body in got] == [ds.PixelData[(n - 1) * size:n * size] for n in (3, 1, 20)]
    single = get(live, url + "/frames/7", "application/octet-stream")
    assert single.status == 200 and single.body == ds.PixelData[6 * size:7 * size]
    everything = parts(get(live, url + "/pixeldata", OCTETS))
    assert b"".join(body for _h, body in everything) == ds.PixelData


def test_frames_compressed_as_stored_and_decoded(live: LiveServer, stored: dict) -> None:
    url, path = stored["SC_rgb_rle_2frame.dcm"]
    original = pydicom.dcmread(path)
    expected = list(generate_frames(original.PixelData, number_of_frames=2))
    got = parts(get(live, url + "/frames/1,2", OCTETS + "; transfer-syntax=*"))
    assert [h["Content-Type"] for h, _b in got] == ["image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"] * 2
    assert [body for _h, body in got] == expected
    decoded = parts(get(live, url + "/frames/2", OCTETS))
    assert decoded[0][0]["Content-Type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert np.frombuffer(decoded[0][1], np.uint8).tobytes() == original.pixel_array[1].tobytes()
    default = parts(get(live, url + "/frames/1", 'multipart/related; type="*/*"'))
    assert default[0][1] == expected[0]


def test_bulk_data_ranges(live: LiveServer, stored: dict) -> None:
    url, path = stored["CT_small.dcm"]
    whole = get(live, url + "/bulkdata/7FE00010", "application/octet-stream")
    assert whole.header("Accept-Ranges") == "bytes"
    assert whole.body == pydicom.dcmread(path).PixelData
    part = get(live, url + "/bulkdata/7FE00010", "application/octet-stream", Range="bytes=100-199")
    assert part.status == 206 and part.body == whole.body[100:200]
    assert part.header("Content-Range") == f"bytes 100-199/{len(whole.body)}"
    tail = get(live, url + "/bulkdata/7FE00010", "application/octet-stream", Range="bytes=-10")
    assert tail.status == 206 and tail.body == whole.body[-10:]
    outside = get(live, url + "/bulkdata/7FE00010", "application/octet-stream", Range=f"bytes={len(whole.body)}-")
    assert outside.status == 416 and outside.header("Content-Range") == f"bytes */{len(whole.body)}"


BAD = [
    ("unknown-study", "/dicom-web/studies/1.2.3.4.5.6.7.8.9", DICOM, 404, "not in the archive"),
    ("invalid-uid", "/dicom-web/studies/1.2..3", DICOM, 400, "not a valid UID"),
    ("malformed-accept", "{url}", "multipart/related; type=", 400, "'type' has no valid value"),
    ("unsatisfiable-accept", "{url}", "image/png", 406, "offered"),
    ("unknown-transfer-syntax", "{url}", DICOM + "; transfer-syntax=1.2.3.4", 406, "1.2.3.4"),
    ("frame-zero", "{url}/frames/0", OCTETS, 400, "start at 1"),
    ("frame-text", "{url}/frames/one", OCTETS, 400, "not a positive integer"),
    ("frame-beyond", "{url}/frames/2", OCTETS, 404, "beyond the last frame"),
    ("bad-bulk-path", "{url}/bulkdata/XYZ", "application/octet-stream", 404, "not a bulk data path"),
    ("missing-bulk-element", "{url}/bulkdata/00991099", "application/octet-stream", 404, "does not exist"),
    ("metadata-of-unknown-series", "/dicom-web/studies/1.2.3/series/4.5.6/metadata", "application/dicom+json", 404,
     "not in the archive"),
    ("metadata-as-dicom", "{url}/metadata", DICOM, 406, "offered"),
]


@pytest.mark.parametrize(("name", "path", "accept", "status", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests(live: LiveServer, stored: dict, name: str, path: str, accept: str, status: int,
                      reason: str) -> None:
    url, _path = stored["CT_small.dcm"]
    reply = get(live, path.format(url=url), accept)
    assert reply.status == status, reply.body
    assert reason in reply.body.decode(errors="replace")
    assert live.request("GET", "/healthz").status == 200


def test_zip_of_a_study(live: LiveServer) -> None:
    import zipfile

    study = pydicom.uid.generate_uid()
    sent = [make_dataset(study_uid=study, patient_id="WADO-ZIP") for _ in range(3)]
    post(live, dicom_parts(*(to_bytes(ds) for ds in sent)))
    reply = get(live, f"/dicom-web/studies/{study}", "application/zip")
    assert reply.status == 200 and reply.header("Content-Type") == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(f"{study}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm" for ds in sent)
        for ds in sent:
            assert archive.read(f"{study}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm") == to_bytes(ds)


def test_frames_of_a_deflated_instance_in_any_order(live: LiveServer) -> None:
    ds = make_dataset(rows=4, columns=4, frames=5, transfer_syntax=pydicom.uid.DeflatedExplicitVRLittleEndian)
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    url = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}/frames")
    pixels = ds.pixel_array.astype("<u2")
    got = [body for _headers, body in parts(get(live, f"{url}/4,1,4", OCTETS))]
    assert got == [pixels[3].tobytes(), pixels[0].tobytes(), pixels[3].tobytes()]
    beyond = get(live, f"{url}/2,6", OCTETS)
    assert beyond.status == 404 and b"beyond the last frame" in beyond.body


def with_extended_offsets(lengths: str) -> tuple[Dataset, list[bytes]]:
    """pydicom's 10-frame JPEG 2000 file rewritten as whole-slide images are: an empty Basic Offset
    Table, frames found through Extended Offset Table (7FE0,0001) and its Lengths (7FE0,0002).

    ``lengths`` "exact" gives each codestream's length, without its item's padding byte; "beyond"
    points the last offset past the fragments. Returns the data set and its codestreams.
    """
    ds = pydicom.dcmread(get_testdata_file("emri_small_jpeg_2k_lossless.dcm"))
    count = int(ds.NumberOfFrames)
    # A JPEG 2000 codestream ends at its EOC marker (FFD9); what follows in the item is padding.
    codestreams = [f[: f.rindex(b"\xff\xd9") + 2] for f in generate_frames(ds.PixelData, number_of_frames=count)]
    assert any(len(c) % 2 for c in codestreams)  # so padding is there to be left out
    ds.PixelData, offsets, _padded = encapsulate_extended(codestreams)
    if lengths == "beyond":
        offsets = offsets[:-8] + struct.pack("<Q", len(ds.PixelData))
    ds.ExtendedOffsetTable = offsets
    ds.ExtendedOffsetTableLengths = struct.pack(f"<{count}Q", *map(len, codestreams))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    return ds, codestreams


def test_frames_found_through_an_extended_offset_table_come_back_byte_identical(live: LiveServer) -> None:
    ds, codestreams = with_extended_offsets("exact")
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    order = [10, 2, 3, 1, 9]
    got = parts(get(live, f"{url}/frames/{','.join(map(str, order))}", OCTETS + "; transfer-syntax=*"))
    assert [h["Content-Type"] for h, _b in got] == ["image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"] * len(order)
    assert [body for _h, body in got] == [codestreams[n - 1] for n in order]
    decoded = parts(get(live, f"{url}/frames/3", OCTETS))
    assert decoded[0][1] == ds.pixel_array[2].astype("<u2").tobytes()


def test_an_extended_offset_table_pointing_past_the_fragments_leaves_the_frames_to_the_items(
        live: LiveServer) -> None:
    ds, codestreams = with_extended_offsets("beyond")
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    got = parts(get(live, f"{url}/frames/2,10", OCTETS + "; transfer-syntax=*"))
    # One frame per item, as without the table: a codestream with its padding byte, if it has one.
    assert [body for _h, body in got] == [c + b"\0" * (len(c) % 2) for c in (codestreams[1], codestreams[9])]


def test_frames_of_an_instance_indexed_without_a_frame_table_keep_their_own_sizes(live: LiveServer) -> None:
    """An instance whose row has no frame table (indexed by a version that kept none) has its
    frames found in the file on request; compressed frames differ in size, and each must come
    back whole."""
    from sqlalchemy import update

    from xdsi.repository.models import Instance
    from xdsi.services.archive import Archive

    path = Path(get_testdata_file("color3d_jpeg_baseline.dcm"))
    ds = pydicom.dcmread(path)
    expected = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    assert len({len(frame) for frame in expected[:5]}) > 1, "the frames must differ in size"
    assert post(live, dicom_parts(path.read_bytes())).status in (200, 202)
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session, session.begin():
            session.execute(update(Instance).where(Instance.sop_instance_uid == ds.SOPInstanceUID)
                            .values(frame_table=None))
    finally:
        archive.close()
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    order = [4, 1, 3]
    got = parts(get(live, f"{url}/frames/{','.join(map(str, order))}", OCTETS + "; transfer-syntax=*"))
    assert [body.rstrip(b"\0") for _h, body in got] == [expected[n - 1].rstrip(b"\0") for n in order]
