"""WADO-RS rendered resources of non-images against a running server (PS3.18 10.4.1.1.3, Table 8.7.4-1):
reports as text/html and text/plain in the negotiated charset, PDF and CDA documents as stored, video
streams with Range; Accept negotiation with q-values and wildcards; study and series representatives;
what cannot be produced is 406 naming what can, image parameters on a document are 400."""

from __future__ import annotations

from collections.abc import Mapping

import lxml.html
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.dicomfiles import SMALL_PDF, make_dataset, make_document, to_bytes
from tests.integration.test_rendered import image_of, instance_path
from tests.integration.test_stow_rs import dicom_parts, post
from tests.integration.test_wado_uri import _reason
from tests.integration.test_wado_uri_documents import CDA, VIDEO, _report, documents_of_each_kind
from tests.live import LiveServer, Reply

STREAM = b"".join(VIDEO)


def get(live: LiveServer, path: str, accept: str | None, **headers: str) -> Reply:
    sent = dict(headers) if accept is None else {"Accept": accept, **headers}
    reply = live.request("GET", path, headers=sent)
    if reply.status >= 400:
        live.assert_nothing_internal(reply)
    return reply


@pytest.fixture(scope="module")
def objects(live: LiveServer) -> Mapping[str, pydicom.Dataset]:
    """One of each kind, in a study of its own; and a study whose report series precedes its image series."""
    study = generate_uid()
    sr_series, image_series = generate_uid(), generate_uid()
    made = {
        **documents_of_each_kind(),
        "mixed-sr": _report(),
        "mixed-pdf": make_document(SMALL_PDF),
        "mixed-image": make_dataset(rows=8, columns=8, PixelData=np.full((8, 8), 200, np.uint16).tobytes(),
                                    WindowCenter=128, WindowWidth=256),
    }
    for key, series, number in (("mixed-sr", sr_series, 1), ("mixed-pdf", sr_series, 2),
                                ("mixed-image", image_series, 1)):
        ds = made[key]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
        ds.SeriesNumber = 1 if series == sr_series else 2
    for ds in made.values():
        assert post(live, dicom_parts(to_bytes(ds))).status == 200
    return made


def series_path(ds: pydicom.Dataset) -> str:
    return f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"


def test_a_report_is_text_html_by_default(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    for accept in ("*/*", "text/*", "text/html", None):
        reply = get(live, instance_path(objects["sr"]) + "/rendered", accept)
        assert reply.status == 200, (accept, reply.body[:300])
        assert reply.header("Content-Type") == "text/html; charset=UTF-8", accept
        tree = lxml.html.fromstring(reply.body)
        assert tree.xpath("//li/span[@class='concept']/text()") == ["Finding (121071, DCM)"]
        assert "所見 &lt;none&gt;" in reply.body.decode()  # the text value, escaped
        assert "Accept" in (reply.header("Vary") or "")
        # Stored text shown in a browser runs nothing and loads nothing, and is never sniffed as another type.
        assert reply.header("Content-Security-Policy") == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        assert reply.header("X-Content-Type-Options") == "nosniff"


def test_report_media_type_follows_q_values(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["sr"]) + "/rendered"
    reply = get(live, where, "text/html;q=0.4, text/plain;q=0.9, image/*")
    assert reply.status == 200 and reply.header("Content-Type") == "text/plain; charset=UTF-8"
    assert "所見 <none>" in reply.body.decode()
    # A q=0 refusal of the default leaves the other text type (RFC 9110 12.5.1).
    reply = get(live, where, "text/*, text/html;q=0")
    assert reply.header("Content-Type") == "text/plain; charset=UTF-8"
    # The accept query parameter wins over the header (PS3.18 8.3.3.1).
    reply = get(live, where + "?accept=text/plain", "text/html")
    assert reply.header("Content-Type") == "text/plain; charset=UTF-8"


def test_report_charset_from_the_media_type_the_query_or_accept_charset(
        live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["sr"]) + "/rendered"
    reply = get(live, where, "text/plain; charset=ISO-2022-JP")
    assert reply.status == 200 and reply.header("Content-Type") == "text/plain; charset=ISO-2022-JP"
    assert "山田 太郎" in reply.body.decode("iso2022_jp")
    reply = get(live, where + "?charset=ISO-8859-1,ISO-2022-JP;q=0.5", "text/plain")
    assert reply.header("Content-Type") == "text/plain; charset=ISO-2022-JP"
    reply = get(live, where, "text/plain", **{"Accept-Charset": "Shift_JIS, *;q=0.1"})
    assert reply.header("Content-Type") == "text/plain; charset=Shift_JIS"
    assert "山田 太郎" in reply.body.decode("shift_jis")
    # PS3.18 8.8.5: the media type's charset comes before the query parameter.
    reply = get(live, where + "?charset=UTF-8", "text/plain; charset=EUC-JP")
    assert reply.header("Content-Type") == "text/plain; charset=EUC-JP"
    # HTML carries any character as a reference; plain text in Latin-1 cannot: 406.
    reply = get(live, where + "?charset=ISO-8859-1", "text/html")
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=ISO-8859-1"
    assert b"&#25152;&#35211;" in reply.body
    _reason(get(live, where + "?charset=ISO-8859-1", "text/plain"), 406, "charset", "ISO-8859-1")
    _reason(get(live, where + "?charset=utf-8;q=2", "text/plain"), 400, "charset")
    _reason(get(live, where, "text/plain", **{"Accept-Charset": "utf 8"}), 400, "charset")


def test_pdf_and_cda_are_the_documents_as_stored(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    for accept in ("application/pdf", "application/*", "*/*"):
        reply = get(live, instance_path(objects["pdf"]) + "/rendered", accept)
        assert reply.status == 200 and reply.header("Content-Type") == "application/pdf", accept
        assert reply.body == SMALL_PDF
    reply = get(live, instance_path(objects["pdf"]) + "/rendered", "application/pdf", Range="bytes=0-7")
    assert reply.status == 206 and reply.body == SMALL_PDF[:8]
    assert reply.header("Content-Range") == f"bytes 0-7/{len(SMALL_PDF)}"
    reply = get(live, instance_path(objects["cda"]) + "/rendered", "text/xml")
    assert reply.status == 200 and reply.header("Content-Type") == "text/xml" and reply.body == CDA
    assert "default-src 'none'" in reply.header("Content-Security-Policy")


def test_video_is_its_stream_with_ranges(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["video"]) + "/rendered"
    reply = get(live, where, "video/mp4")
    assert reply.status == 200 and reply.header("Content-Type") == "video/mp4" and reply.body == STREAM
    assert reply.header("Accept-Ranges") == "bytes"
    reply = get(live, where, "video/*", Range="bytes=16380-16399")
    assert reply.status == 206 and reply.body == STREAM[16380:16400]
    assert reply.header("Content-Range") == f"bytes 16380-16399/{len(STREAM)}"
    reply = get(live, where, "*/*", Range=f"bytes=-{len(STREAM) + 10}")
    assert reply.status == 206 and reply.body == STREAM
    reply = get(live, where, "video/mp4", Range=f"bytes={len(STREAM)}-")
    assert reply.status == 416 and reply.header("Content-Range") == f"bytes */{len(STREAM)}"


@pytest.mark.parametrize(("kind", "accept", "offered"), [
    ("sr", "image/png", "text/html; text/plain"),
    ("sr", "application/pdf", "text/html; text/plain"),
    ("pdf", "text/html", "application/pdf"),
    ("cda", "application/pdf, text/html", "text/xml"),
    ("video", "video/mpeg", "video/mp4"),
    ("video", "video/H265, text/html", "video/mp4; image/jpeg"),
    ("sr", 'multipart/related; type="application/dicom"', "text/html"),
])
def test_what_cannot_be_produced_is_406_naming_what_can(live: LiveServer, objects: Mapping[str, pydicom.Dataset],
                                                         kind: str, accept: str, offered: str) -> None:
    _reason(get(live, instance_path(objects[kind]) + "/rendered", accept), 406, f"offered: {offered}")


@pytest.mark.parametrize(("kind", "query", "named"), [
    ("sr", "window=40,400,linear", "window"), ("sr", "viewport=64,64", "viewport"), ("pdf", "quality=50", "quality"),
    ("cda", "annotation=patient", "annotation"), ("video", "viewport=64,64", "viewport"),
    ("video", "iccprofile=no&quality=20", "quality, iccprofile"),
])
def test_image_parameters_on_a_document_are_400(live: LiveServer, objects: Mapping[str, pydicom.Dataset],
                                                kind: str, query: str, named: str) -> None:
    _reason(get(live, instance_path(objects[kind]) + f"/rendered?{query}", "*/*"), 400, named,
            "only to rendered images")


def test_malformed_parameters_are_400_before_the_object_is_looked_up(
        live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["sr"])
    _reason(get(live, where + "/rendered?window=1", "text/html"), 400, "window")
    _reason(get(live, where + "/rendered?rows=2", "text/html"), 400, "'rows'")
    _reason(get(live, where.rsplit("/", 1)[0] + "/1.2.3.999/rendered", "text/html"), 404)


def test_frames_and_thumbnails_of_documents_are_406(live: LiveServer,
                                                     objects: Mapping[str, pydicom.Dataset]) -> None:
    # A video's frames are decoded (tests/integration/test_rendered_video.py); these have none.
    for kind in ("sr", "pdf", "cda"):
        for suffix in ("/thumbnail", "/frames/1/rendered"):
            reply = get(live, instance_path(objects[kind]) + suffix, "*/*")
            assert reply.status == 406, (kind, suffix, reply.body[:200])


def test_study_and_series_of_documents(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    sr, image = objects["mixed-sr"], objects["mixed-image"]
    study = f"/dicom-web/studies/{sr.StudyInstanceUID}"
    # An image the client accepts stands for the study, as before.
    reply = get(live, study + "/rendered", "*/*")
    assert reply.status == 200 and reply.header("Content-Type") == "image/jpeg"
    assert image_of(get(live, study + "/rendered", "image/png").body).shape == (8, 8)
    # Asked for text, the study and the report series answer with their report.
    for path in (study, series_path(sr)):
        reply = get(live, path + "/rendered", "text/html")
        assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=UTF-8"
        assert b"Finding (121071, DCM)" in reply.body
    reply = get(live, study + "/rendered", "application/pdf, text/html;q=0.5")
    assert reply.header("Content-Type") == "text/html; charset=UTF-8"  # the report comes first in its series
    reply = get(live, study + "/rendered", "application/pdf")
    assert reply.status == 200 and reply.body == SMALL_PDF
    # The report series holds no image: */* selects its first object's default.
    reply = get(live, series_path(sr) + "/rendered", "*/*")
    assert reply.header("Content-Type") == "text/html; charset=UTF-8"
    # What no object offers is 406: the study's images name theirs.
    _reason(get(live, study + "/rendered", "video/mp4"), 406, "image/jpeg")
    _reason(get(live, series_path(sr) + "/rendered", "image/png"), 406, "text/html")
    # The image series stays an image whatever text is asked for.
    _reason(get(live, series_path(image) + "/rendered", "text/html"), 406, "image/jpeg")
    # Thumbnails remain images: the study's comes from its image series.
    reply = get(live, study + "/thumbnail", "*/*")
    assert reply.status == 200 and reply.header("Content-Type") == "image/jpeg"
