"""WADO-RS rendered and thumbnail resources against a running server: golden images for every
photometric interpretation and stored transfer syntax, each query parameter, each error."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.data import get_testdata_file

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer, Reply
from tests.rendering import decoded, expected, image_of, psnr

# name -> what it covers; every one rendered as PNG and compared with tests/rendering.py.
GOLDEN = {
    "CT_small.dcm": "MONOCHROME2, signed 16-bit, rescale, no window (full range)",
    "MR_small.dcm": "MONOCHROME2, signed 16-bit, window",
    "RG3_UNCR.dcm": "MONOCHROME1, 10 bits, window",
    "RG1_J2KR.dcm": "MONOCHROME1, JPEG 2000 lossless",
    "MR2_UNCR.dcm": "MONOCHROME2, 12 bits, fractional rescale",
    "SC_rgb.dcm": "RGB",
    "SC_rgb_16bit.dcm": "RGB, 16 bits",
    "SC_ybr_full_422_uncompressed.dcm": "YBR_FULL_422 native (subsampled)",
    "SC_rgb_dcmtk_+eb+cy+s2.dcm": "YBR_FULL_422, JPEG baseline",
    "SC_rgb_jpeg_dcmtk.dcm": "YBR_FULL, JPEG baseline",
    "OBXXXX1A.dcm": "PALETTE COLOR",
    "examples_palette.dcm": "PALETTE COLOR",
    "vlut_04.dcm": "VOI LUT Sequence",
    "mlut_18.dcm": "Modality LUT Sequence (signed first mapped value)",
    "JPGExtended.dcm": "JPEG extended (12-bit)",
    "JPEG-LL.dcm": "JPEG lossless, signed 16-bit",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "JPEG lossless SV1",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless",
    "JPEGLSNearLossless_08.dcm": "JPEG-LS near-lossless",
    "MR_small_jp2klossless.dcm": "JPEG 2000 lossless",
    "US1_J2KI.dcm": "JPEG 2000 (YBR_ICT)",
    "emri_small_RLE.dcm": "RLE, multi-frame",
    "SC_rgb_rle_2frame.dcm": "RLE RGB, multi-frame",
    "image_dfl.dcm": "Deflated Explicit VR Little Endian",
    "MR_small_bigendian.dcm": "Explicit VR Big Endian",
    "liver.dcm": "1-bit, multi-frame",
    "693_UNCR.dcm": "MONOCHROME2, 14 bits, window and rescale",
}
PNG = "image/png"


def get(live: LiveServer, path: str, accept: str = PNG, **headers: str) -> Reply:
    reply = live.request("GET", path, headers={"Accept": accept, **headers})
    if reply.status >= 400:
        live.assert_nothing_internal(reply)
    return reply


def instance_path(ds: pydicom.Dataset) -> str:
    return (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


@pytest.fixture(scope="module")
def stored(live: LiveServer) -> dict[str, tuple[str, str]]:
    """The golden files stored on the server: name -> (instance path, file path)."""
    found = {}
    for name in GOLDEN:
        path = get_testdata_file(name)
        assert path is not None, name
        ds = renamed(path)
        data = to_bytes(ds)
        # Stored in the syntax of the original: that is what each case covers.
        assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        reply = post(live, dicom_parts(data))
        assert reply.status == 200, (name, reply.body[:300])
        found[name] = (instance_path(ds), path)
    return found


def renamed(path: str) -> pydicom.Dataset:
    """The file with UIDs of its own: pydicom's files share some, and other modules store them too."""
    ds = pydicom.dcmread(path)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, keyword, pydicom.uid.generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_rendered_png_matches_an_independent_rendering(live: LiveServer, stored: dict[str, tuple[str, str]],
                                                        name: str) -> None:
    where, path = stored[name]
    ds = pydicom.dcmread(path)
    reply = get(live, f"{where}/frames/1/rendered")
    assert reply.status == 200, reply.body[:300]
    assert reply.header("Content-Type") == PNG
    got = image_of(reply.body)
    want = expected(ds, decoded(path, 0))
    assert got.shape == want.shape
    assert psnr(got, want) >= 40, f"{name} ({GOLDEN[name]}): {psnr(got, want):.1f} dB"


def test_a_later_frame_is_rendered_alone(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, path = stored["emri_small_RLE.dcm"]
    ds = pydicom.dcmread(path)
    got = image_of(get(live, f"{where}/frames/7/rendered").body)
    assert psnr(got, expected(ds, decoded(path, 6))) >= 40
    assert psnr(got, expected(ds, decoded(path, 0))) < 40  # another frame indeed


def test_multi_frame_default_is_an_animated_gif_of_every_frame(live: LiveServer,
                                                               stored: dict[str, tuple[str, str]]) -> None:
    where, path = stored["emri_small_RLE.dcm"]
    ds = pydicom.dcmread(path)
    reply = get(live, f"{where}/rendered", accept="*/*")
    assert reply.header("Content-Type") == "image/gif"
    image = Image.open(io.BytesIO(reply.body))
    assert image.n_frames == int(ds.NumberOfFrames) == 10
    for index in (0, 4, 9):
        image.seek(index)
        assert psnr(np.asarray(image.convert("L")), expected(ds, decoded(path, index))) >= 40


def test_jpeg_of_a_multi_frame_instance_is_its_first_frame(live: LiveServer,
                                                           stored: dict[str, tuple[str, str]]) -> None:
    where, path = stored["emri_small_RLE.dcm"]
    ds = pydicom.dcmread(path)
    reply = get(live, f"{where}/rendered", accept="image/jpeg")
    assert reply.header("Content-Type") == "image/jpeg"
    assert psnr(image_of(reply.body), expected(ds, decoded(path, 0))) >= 30  # lossy


def test_several_frames_make_an_animated_gif(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, path = stored["emri_small_RLE.dcm"]
    ds = pydicom.dcmread(path)
    image = Image.open(io.BytesIO(get(live, f"{where}/frames/2,5/rendered", accept="image/*").body))
    assert image.n_frames == 2
    image.seek(1)
    assert psnr(np.asarray(image.convert("L")), expected(ds, decoded(path, 4))) >= 40


@pytest.mark.parametrize(("query", "function"), [("40,400,linear", "LINEAR"), ("40,400,linear-exact", "LINEAR_EXACT"),
                                                  ("40,400,sigmoid", "SIGMOID"), ("-100.5,1,LINEAR", "LINEAR")])
def test_window_parameter(live: LiveServer, stored: dict[str, tuple[str, str]], query: str, function: str) -> None:
    where, path = stored["CT_small.dcm"]
    ds = pydicom.dcmread(path)
    center, width, _ = query.split(",")
    got = image_of(get(live, f"{where}/rendered?window={query}").body)
    want = expected(ds, decoded(path), frame_window=(float(center), float(width), function))
    assert psnr(got, want) >= 40
    assert psnr(got, expected(ds, decoded(path))) < 40  # the object's own rendering differs


def test_viewport_fits_keeping_the_aspect_ratio(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["JPEG-LL.dcm"]  # 256 columns x 1024 rows
    for viewport, size in (("64,64", (16, 64)), ("512,512", (128, 512)), ("100,", (100, 400)), (",256", (64, 256))):
        image = Image.open(io.BytesIO(get(live, f"{where}/rendered?viewport={viewport}").body))
        assert image.size == size, viewport


def test_viewport_source_rectangle_crops_and_flips(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, path = stored["CT_small.dcm"]
    want = expected(pydicom.dcmread(path), decoded(path))
    crop = image_of(get(live, f"{where}/rendered?viewport=64,32,10,20,64,32").body)
    assert psnr(crop, want[20:52, 10:74]) >= 40
    # PS3.18 8.3.5.1.3: negative sw and sh take the pixels left of and above sx,sy, flipped.
    flipped = image_of(get(live, f"{where}/rendered?viewport=64,32,73,51,-64,-32").body)
    assert psnr(flipped, want[20:52, 10:74][::-1, ::-1]) >= 40
    # Defaults: sw and sh run to the far edges.
    rest = image_of(get(live, f"{where}/rendered?viewport=28,28,100,100,,").body)
    assert psnr(rest, want[100:, 100:]) >= 40


def test_quality_changes_the_jpeg(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["MR2_UNCR.dcm"]
    low = get(live, f"{where}/rendered?quality=10", accept="image/jpeg").body
    high = get(live, f"{where}/rendered?quality=95", accept="image/jpeg").body
    assert len(low) < len(high) / 2


def test_gif_and_png_and_jpeg_are_labelled_as_what_they_are(live: LiveServer,
                                                             stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["SC_rgb.dcm"]
    for media_type, pillow in (("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/gif", "GIF")):
        reply = get(live, f"{where}/rendered", accept=media_type)
        assert reply.header("Content-Type") == media_type
        assert Image.open(io.BytesIO(reply.body)).format == pillow
    # The accept query parameter wins over the header (PS3.18 8.3.3.1).
    reply = get(live, f"{where}/rendered?accept=image/gif", accept="image/png")
    assert reply.header("Content-Type") == "image/gif"


def test_browser_accept_gets_a_jpeg(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["MR_small.dcm"]
    reply = get(live, f"{where}/rendered", accept="image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8")
    assert reply.header("Content-Type") == "image/jpeg"


def test_study_and_series_render_a_representative_image(live: LiveServer) -> None:
    study = pydicom.uid.generate_uid()
    series = [pydicom.uid.generate_uid(), pydicom.uid.generate_uid()]
    made = []
    for number in range(1, 4):
        pixels = np.full((8, 8), number * 60, dtype=np.uint16)
        ds = make_dataset(study_uid=study, series_uid=series[1], rows=8, columns=8, InstanceNumber=number,
                          SeriesNumber=2, PixelData=pixels.tobytes(), WindowCenter=128, WindowWidth=256)
        made.append(ds)
    sr = make_dataset(study_uid=study, series_uid=series[0], SeriesNumber=1,
                      sop_class_uid="1.2.840.10008.5.1.4.1.1.88.11", modality="SR")
    for attribute in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                      "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        if attribute in sr:
            delattr(sr, attribute)
    assert post(live, dicom_parts(*(to_bytes(ds) for ds in [sr, *made]))).status == 200
    # The SR series comes first but has no image: the middle image of the next series stands for the study.
    for path in (f"/dicom-web/studies/{study}/rendered", f"/dicom-web/studies/{study}/series/{series[1]}/rendered"):
        got = image_of(get(live, path).body)
        assert got.shape == (8, 8) and int(got[0, 0]) == round(((120 - 127.5) / 255 + 0.5) * 255)
    reply = get(live, f"/dicom-web/studies/{study}/series/{series[0]}/rendered")
    assert reply.status == 406
    reply = get(live, instance_path(sr) + "/rendered")
    # The report itself is rendered as text (tests/integration/test_rendered_documents.py), not as an image.
    assert reply.status == 406 and b"[image/png] is available; offered: text/html; text/plain" in reply.body


def test_thumbnail(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["RG3_UNCR.dcm"]  # 1760 x 1760
    reply = get(live, f"{where}/thumbnail", accept="*/*")
    assert reply.status == 200 and reply.header("Content-Type") == "image/jpeg"
    assert Image.open(io.BytesIO(reply.body)).size == (128, 128)
    assert Image.open(io.BytesIO(get(live, f"{where}/thumbnail?viewport=64,32").body)).size == (32, 32)
    where, path = stored["emri_small_RLE.dcm"]
    ds = pydicom.dcmread(path)
    # A thumbnail of a cine shows its middle frame, as one image whatever the Accept.
    got = Image.open(io.BytesIO(get(live, f"{where}/thumbnail", accept="image/gif").body))
    assert got.n_frames == 1 and got.size == (128, 128)
    small = image_of(get(live, f"{where}/frames/3/thumbnail?viewport=64,64").body)
    assert psnr(small, expected(ds, decoded(path, 2))) >= 40
    series = where.rsplit("/instances/", 1)[0]
    assert get(live, series + "/thumbnail").status == 200
    assert get(live, series.rsplit("/series/", 1)[0] + "/thumbnail").status == 200


def test_etag_revalidation(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["MR_small.dcm"]
    first = get(live, f"{where}/rendered")
    etag = first.header("ETag")
    assert etag
    # Revalidated on every use (an overwrite changes the image), and chosen by the Accept header.
    assert first.header("Cache-Control") == "no-cache" and first.header("Vary") == "Accept"
    again = get(live, f"{where}/rendered", **{"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert again.header("ETag") == etag and again.header("Cache-Control") == "no-cache"
    other = get(live, f"{where}/rendered?quality=50", **{"If-None-Match": etag})
    assert other.status == 200 and other.header("ETag") != etag


@pytest.mark.parametrize(("query", "named"), [
    ("window=40,400", "window"), ("window=a,400,linear", "window center"), ("window=40,0,linear", "width"),
    ("window=40,400,cubic", "window function"), ("window=40,0.5,linear", "LINEAR"), ("window=nan,1,linear", "center"),
    ("viewport=64", "viewport"), ("viewport=0,64", "vw"), ("viewport=64,x", "vh"), ("viewport=,", "vw or vh"),
    ("viewport=64,64,-1,0,10,10", "sx"), ("viewport=64,64,0,0,0,10", "sw"), ("viewport=64,64,500,0,10,10", "outside"),
    ("viewport=64,64,100,100,64,64", "beyond"),
    ("quality=0", "quality"), ("quality=101", "quality"), ("quality=high", "quality"),
    ("annotation=colour", "annotation"), ("charset=utf-8;q=x", "charset"),
    ("iccprofile=cmyk", "iccprofile"), ("rows=64", "'rows'"), ("quality=50&quality=60", "more than once"),
])
def test_bad_parameters_are_400_naming_them(live: LiveServer, stored: dict[str, tuple[str, str]], query: str,
                                            named: str) -> None:
    where, _ = stored["CT_small.dcm"]
    reply = get(live, f"{where}/rendered?{query}")
    assert reply.status == 400, (query, reply.body)
    assert named.encode() in reply.body, (query, reply.body)


def test_thumbnail_takes_only_viewport(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["CT_small.dcm"]
    for query, named in (("window=40,400,linear", "'window'"), ("viewport=64,64,0,0,10,10", "vw,vh"),
                         ("quality=50", "'quality'")):
        reply = get(live, f"{where}/thumbnail?{query}")
        assert reply.status == 400 and named.encode() in reply.body, (query, reply.body)
    reply = get(live, f"{where}/frames/1,2/thumbnail")
    assert reply.status == 400 and b"single frame" in reply.body


def test_charset_and_iccprofile_are_accepted(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["SC_rgb.dcm"]
    assert get(live, f"{where}/rendered?charset=utf-8,iso-8859-1;q=0.5&iccprofile=no").status == 200


def test_icc_profile_is_embedded_when_the_image_has_one(live: LiveServer) -> None:
    profile = Image.new("RGB", (1, 1)).info.get("icc_profile") or _srgb_profile()
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    ds = make_dataset(rows=4, columns=4, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                      BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=pixels.tobytes(), ICCProfile=profile)
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    for media_type in ("image/jpeg", "image/png"):
        with_profile = Image.open(io.BytesIO(get(live, instance_path(ds) + "/rendered", accept=media_type).body))
        assert with_profile.info.get("icc_profile") == profile
        without = Image.open(io.BytesIO(get(live, instance_path(ds) + "/rendered?iccprofile=no",
                                            accept=media_type).body))
        assert not without.info.get("icc_profile")


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_what_cannot_be_produced_is_406(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["emri_small_RLE.dcm"]
    for path, accept in ((f"{where}/rendered", "application/dicom"), (f"{where}/rendered", "image/jp2"),
                         (f"{where}/frames/1,2/rendered", "image/jpeg"), (f"{where}/rendered", "text/html")):
        reply = get(live, path, accept=accept)
        assert reply.status == 406, (path, accept, reply.body)


def test_missing_and_malformed_targets(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["CT_small.dcm"]
    assert get(live, "/dicom-web/studies/1.2.3.999/rendered").status == 404
    assert get(live, where.rsplit("/", 1)[0] + "/1.2.3.999/rendered").status == 404
    assert get(live, f"{where}/frames/2/rendered").status == 404  # one frame only
    for path in ("/dicom-web/studies/1.2.x/rendered", f"{where}/frames/0/rendered", f"{where}/frames/a/rendered"):
        reply = get(live, path)
        assert reply.status in (400, 404) and reply.status != 500, (path, reply.status)
    assert get(live, "/dicom-web/studies/1.2.x/rendered").status == 400


def test_output_beyond_the_limit_is_413(live: LiveServer, stored: dict[str, tuple[str, str]]) -> None:
    where, _ = stored["CT_small.dcm"]
    reply = get(live, f"{where}/rendered?viewport=60000,60000")
    assert reply.status == 413 and b"limit" in reply.body


@pytest.mark.parametrize(("charset", "name"), [("ISO_IR 127", "قباني^لنزار"), ("ISO_IR 138", "שרון^דבורה"),
                                               ("ISO_IR 192", "قباني^لنزار")])
def test_right_to_left_names_are_burned_in_as_shaped_glyphs(live: LiveServer, charset: str, name: str) -> None:
    """The burned-in name is the one DejaVu Sans draws through libraqm (Arabic joined, Hebrew and
    Arabic right to left) over the plain rendering, not the CJK font's missing-glyph boxes."""
    from xdsi.dicom.annotation import annotation_for, burn, font_at, font_pixels

    ds = make_dataset(rows=256, columns=256, SpecificCharacterSet=charset, PatientName=name,
                      PixelData=np.tile(np.arange(256, dtype=np.uint16) * 8, (256, 1)).tobytes())
    data = to_bytes(ds)
    assert post(live, dicom_parts(data)).status == 200
    stored = pydicom.dcmread(io.BytesIO(data))
    assert str(stored.PatientName) == name  # written in the character set named
    plain = Image.open(io.BytesIO(get(live, instance_path(ds) + "/rendered").body))
    marked = image_of(get(live, instance_path(ds) + "/rendered?annotation=patient").body)
    text = annotation_for(stored, ("patient",))
    expected = np.asarray(burn(plain.copy(), text))
    assert np.abs(marked.astype(int) - expected.astype(int)).max() == 0
    boxes = plain.copy()
    size = font_pixels(256, 256)
    ImageDraw.Draw(boxes).text((size // 3, size // 3), text.top[0], font=font_at(size), fill=255,
                               stroke_width=max(1, size // 10), stroke_fill=0)
    line = (slice(0, size + size // 3), slice(0, 200))
    assert np.abs(marked[line].astype(int) - np.asarray(boxes)[line].astype(int)).sum() > 255 * 40
