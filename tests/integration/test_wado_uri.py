"""WADO-URI (PS3.18 chapter 9) at /wado against a running server: DICOM answers, defaults, bad input."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.dicomfiles import make_report, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer, Reply

EVRLE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
HTJ2K = "1.2.840.10008.1.2.4.203"  # decodable here, but no encoder: a valid syntax it cannot produce
FILES = {"ct": "CT_small.dcm", "jpeg": "SC_rgb_jpeg_dcmtk.dcm", "multi": "SC_rgb_rle_2frame.dcm",
         "bigendian": "MR_small_bigendian.dcm"}


class Stored:
    """An object stored on the server, with its file and the query that names it."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data = path, data
        self.ds = pydicom.dcmread(io.BytesIO(data))
        self.uids = {"studyUID": self.ds.StudyInstanceUID, "seriesUID": self.ds.SeriesInstanceUID,
                     "objectUID": self.ds.SOPInstanceUID}

    def url(self, **params: str) -> str:
        return "/wado?" + urlencode({"requestType": "WADO", **self.uids, **params})


@pytest.fixture(scope="module")
def stored(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stored]:
    found = {}
    for key, name in FILES.items():
        path = Path(get_testdata_file(name))
        found[key] = Stored(path, path.read_bytes())
    report = tmp_path_factory.mktemp("sr") / "report.dcm"
    report.write_bytes(to_bytes(make_report(study_uid=generate_uid())))
    found["sr"] = Stored(report, report.read_bytes())
    for item in found.values():
        assert post(live, dicom_parts(item.data)).status == 200
    return found


def _reason(reply: Reply, status: int, *words: str) -> None:
    assert reply.status == status, reply.body[:300]
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    text = reply.body.decode()
    for word in words:
        assert word in text, text


def test_application_dicom_of_an_explicit_little_endian_file_is_the_stored_file(
        live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    assert str(ct.ds.file_meta.TransferSyntaxUID) == EVRLE
    reply = live.request("GET", ct.url(contentType="application/dicom"))
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/dicom"
    assert int(reply.header("Content-Length")) == len(ct.data)
    assert reply.body == ct.data


def test_percent_encoded_values_are_decoded(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in ct.uids.items())
    reply = live.request("GET", f"/wado?requestType=WADO&{query}&contentType=application%2Fdicom")
    assert reply.status == 200 and reply.body == ct.data


def test_default_transfer_syntax_is_explicit_little_endian_with_the_same_pixels(
        live: LiveServer, stored: dict[str, Stored]) -> None:
    jpeg = stored["jpeg"]
    reply = live.request("GET", jpeg.url(contentType="application/dicom"))
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(reply.body))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(got.pixel_array, jpeg.ds.pixel_array)
    big = stored["bigendian"]
    got = pydicom.dcmread(io.BytesIO(live.request("GET", big.url(contentType="application/dicom")).body))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(got.pixel_array, big.ds.pixel_array)


def test_transfer_syntax_transcodes_through_the_plan(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    reply = live.request("GET", ct.url(contentType="application/dicom", transferSyntax=RLE))
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(reply.body))
    assert got.file_meta.TransferSyntaxUID == RLE
    assert got.SOPInstanceUID == ct.ds.SOPInstanceUID
    assert np.array_equal(got.pixel_array, ct.ds.pixel_array)


@pytest.mark.parametrize("syntax", ["stored", "*"])
def test_the_stored_syntax_or_star_sends_the_file_unchanged(
        live: LiveServer, stored: dict[str, Stored], syntax: str) -> None:
    jpeg = stored["jpeg"]
    asked = str(jpeg.ds.file_meta.TransferSyntaxUID) if syntax == "stored" else "*"
    reply = live.request("GET", jpeg.url(contentType="application/dicom", transferSyntax=asked))
    assert reply.status == 200 and reply.body == jpeg.data
    assert int(reply.header("Content-Length")) == len(jpeg.data)


def test_head_answers_the_headers_alone(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    reply = live.request("HEAD", ct.url(contentType="application/dicom"))
    assert reply.status == 200 and reply.body == b""
    assert int(reply.header("Content-Length")) == len(ct.data)


def test_content_type_list_is_taken_in_q_order(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    reply = live.request("GET", ct.url(contentType="application/pdf;q=0.9, application/dicom"))
    assert reply.status == 200 and reply.body == ct.data
    reply = live.request("GET", ct.url(contentType="application/pdf, application/dicom;q=0.5"))
    assert reply.status == 200 and reply.body == ct.data  # a PDF cannot be made of an image


def test_without_content_type_a_multi_frame_image_is_sent_as_dicom(
        live: LiveServer, stored: dict[str, Stored]) -> None:
    multi = stored["multi"]
    assert int(multi.ds.NumberOfFrames) == 2
    reply = live.request("GET", multi.url())
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(reply.body))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(got.pixel_array, multi.ds.pixel_array)
    reply = live.request("GET", multi.url(contentType="*/*"))
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"


@pytest.mark.parametrize(("query", "status", "words"), [
    ({"requestType": None}, 400, ["requestType is missing"]),
    ({"requestType": "WADO-RS"}, 400, ["requestType", "WADO"]),
    ({"requestType": "wado"}, 400, ["requestType"]),
    ({"studyUID": None}, 400, ["studyUID is missing"]),
    ({"seriesUID": None}, 400, ["seriesUID is missing"]),
    ({"objectUID": None}, 400, ["objectUID is missing"]),
    ({"objectUID": "1.2.abc"}, 400, ["objectUID", "not a valid UID"]),
    ({"studyUID": "1..2"}, 400, ["studyUID", "not a valid UID"]),
    ({"contentType": "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"}, 400, ["contentType", "transferSyntax"]),
    ({"contentType": "text/html; charset=utf-8"}, 400, ["contentType", "charset"]),
    ({"contentType": "jpeg"}, 400, ["media type"]),
    ({"contentType": ""}, 400, ["contentType is empty"]),
    ({"contentType": 'multipart/related; type="application/dicom"'}, 400, ["contentType"]),
    ({"contentType": "image/jpeg;q=2"}, 400, ["q="]),
    ({"charset": "no such set"}, 400, ["charset"]),
    ({"charset": "utf-8;q=7"}, 400, ["charset", "q-value"]),
    ({"anonymize": "no"}, 400, ["anonymize", "yes"]),
    ({"transferSyntax": "explicit"}, 400, ["transferSyntax", "not a valid UID"]),
    ({"annotation": "patient,weather"}, 400, ["annotation", "weather"]),
    ({"rows": "0"}, 400, ["rows='0'", "1 to"]),
    ({"rows": "-5"}, 400, ["rows"]),
    ({"columns": "12.5"}, 400, ["columns"]),
    ({"columns": "99999"}, 400, ["columns"]),
    ({"region": "0,0,1"}, 400, ["region", "four numbers"]),
    ({"region": "0,0,1.5,1"}, 400, ["region", "between 0.0 and 1.0"]),
    ({"region": "0.5,0,0.5,1"}, 400, ["region", "x1 must be below x2"]),
    ({"region": "0,0.8,1,0.2"}, 400, ["region", "y1 below y2"]),
    ({"region": "0,0,nan,1"}, 400, ["region", "not a decimal"]),
    ({"windowCenter": "40"}, 400, ["windowCenter needs windowWidth"]),
    ({"windowWidth": "400"}, 400, ["windowWidth needs windowCenter"]),
    ({"windowCenter": "40", "windowWidth": "0"}, 400, ["windowWidth=0 is below 1"]),
    ({"windowCenter": "forty", "windowWidth": "400"}, 400, ["windowCenter", "not a decimal"]),
    ({"frameNumber": "0"}, 400, ["frameNumber"]),
    ({"imageQuality": "101"}, 400, ["imageQuality", "1 to 100"]),
    ({"imageQuality": "0"}, 400, ["imageQuality"]),
    ({"presentationUID": "1.2.3"}, 400, ["presentationUID needs presentationSeriesUID"]),
    ({"presentationSeriesUID": "1.2.3"}, 400, ["presentationSeriesUID needs presentationUID"]),
    ({"presentationUID": "1.2.x", "presentationSeriesUID": "1.2.3"}, 400, ["presentationUID", "not a valid UID"]),
    ({"presentationUID": "1.2.3", "presentationSeriesUID": "1.2.4", "windowCenter": "1", "windowWidth": "2"},
     400, ["presentation state sets the window"]),
    ({"annotation": "patient", "imageAnnotation": "patient"}, 400, ["imageAnnotation and annotation"]),
])
def test_malformed_or_conflicting_parameters_are_400_naming_them(
        live: LiveServer, stored: dict[str, Stored], query: dict[str, str | None], status: int,
        words: list[str]) -> None:
    params = {"requestType": "WADO", **stored["ct"].uids, **query}
    url = "/wado?" + urlencode({name: value for name, value in params.items() if value is not None})
    _reason(live.request("GET", url), status, *words)


@pytest.mark.parametrize("name", ["requestType", "studyUID", "contentType", "rows", "transferSyntax"])
def test_a_repeated_single_valued_parameter_is_400(live: LiveServer, stored: dict[str, Stored], name: str) -> None:
    params = {"requestType": "WADO", **stored["ct"].uids, "contentType": "application/dicom", "rows": "64",
              "transferSyntax": EVRLE}
    value = params.pop(name)
    url = "/wado?" + urlencode(params) + f"&{name}={quote(value)}&{name}={quote(value)}"
    _reason(live.request("GET", url), 400, f"{name} is given 2 times")


@pytest.mark.parametrize("extra", [{"rows": "64"}, {"columns": "64"}, {"region": "0,0,0.5,0.5"},
                                   {"windowCenter": "40", "windowWidth": "400"}, {"imageQuality": "50"},
                                   {"annotation": "patient"}, {"frameNumber": "1"},
                                   {"presentationUID": "1.2.3", "presentationSeriesUID": "1.2.4"}])
def test_image_parameters_with_application_dicom_are_400(
        live: LiveServer, stored: dict[str, Stored], extra: dict[str, str]) -> None:
    reply = live.request("GET", stored["ct"].url(contentType="application/dicom", **extra))
    _reason(reply, 400, next(iter(extra)), "only to rendered images")


@pytest.mark.parametrize("extra", [{"transferSyntax": EVRLE}, {"anonymize": "yes"}])
def test_dicom_parameters_with_a_rendered_type_are_400(
        live: LiveServer, stored: dict[str, Stored], extra: dict[str, str]) -> None:
    reply = live.request("GET", stored["ct"].url(contentType="image/jpeg", **extra))
    _reason(reply, 400, next(iter(extra)), "only to contentType=application/dicom")


def test_a_frame_beyond_the_last_is_400(live: LiveServer, stored: dict[str, Stored]) -> None:
    reply = live.request("GET", stored["multi"].url(contentType="image/gif", frameNumber="3"))
    _reason(reply, 400, "frameNumber=3 is beyond the last frame (2)")
    reply = live.request("GET", stored["ct"].url(contentType="image/jpeg", frameNumber="2"))
    _reason(reply, 400, "frameNumber=2 is beyond the last frame (1)")
    reply = live.request("GET", stored["sr"].url(contentType="text/html", frameNumber="1"))
    _reason(reply, 400, "frameNumber", "has no frames")


def test_unknown_objects_are_404(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct = stored["ct"]
    _reason(live.request("GET", ct.url(objectUID=generate_uid())), 404, "not in the archive")
    # The right instance under another series is not that object.
    _reason(live.request("GET", ct.url(seriesUID=generate_uid())), 404, "not in the archive")


@pytest.mark.parametrize(("key", "content_type"), [
    ("ct", "application/pdf"), ("ct", "video/mpeg"), ("ct", "text/html"), ("sr", "image/jpeg"),
    ("ct", "application/dicom;q=0, image/tiff"),
])
def test_a_content_type_the_object_cannot_be_sent_as_is_406(
        live: LiveServer, stored: dict[str, Stored], key: str, content_type: str) -> None:
    _reason(live.request("GET", stored[key].url(contentType=content_type)), 406, "contentType", "can be sent as")


def test_a_valid_transfer_syntax_that_cannot_be_produced_is_406(
        live: LiveServer, stored: dict[str, Stored]) -> None:
    reply = live.request("GET", stored["ct"].url(contentType="application/dicom", transferSyntax=HTJ2K))
    _reason(reply, 406, "transferSyntax", HTJ2K)
    reply = live.request("GET", stored["ct"].url(contentType="application/dicom", transferSyntax="1.2.3.4"))
    _reason(reply, 406, "transferSyntax", "1.2.3.4")



def test_without_content_type_the_accept_header_chooses(live: LiveServer, stored: dict[str, Stored]) -> None:
    ct, report = stored["ct"], stored["sr"]
    reply = live.request("GET", ct.url(), headers={"Accept": "application/dicom"})
    assert reply.status == 200 and reply.body == ct.data  # not the image/jpeg default of a single frame
    reply = live.request("GET", report.url(), headers={"Accept": "text/plain, text/html;q=0.5"})
    assert reply.status == 200 and reply.header("Content-Type").startswith("text/plain")
    # An Accept nothing matches leaves the default; contentType, when given, wins over Accept.
    reply = live.request("GET", report.url(), headers={"Accept": "application/json"})
    assert reply.status == 200 and reply.header("Content-Type").startswith("text/html")
    reply = live.request("GET", report.url(contentType="application/dicom"), headers={"Accept": "text/plain"})
    assert reply.status == 200 and reply.header("Content-Type") == "application/dicom"
