"""Video through the rendered resources of a running server (PS3.18 8.3.5, 8.3.6, 10.4.1.1.3, Table
8.7.4-1): the frames of stored MPEG-2, H.264 and HEVC streams as still images, thumbnails and
rendered frames, compared with the frames the stream was made from; multi-frame images rendered as
video/mp4 and video/mpeg, read back with PyAV and compared with an independent numpy windowing;
what cannot be produced is 406, a corrupt stream never a 500."""

from __future__ import annotations

import io
from collections.abc import Mapping
from fractions import Fraction

import av
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicomfiles import make_coded_video, make_dataset, make_video, to_bytes
from tests.integration.test_rendered import instance_path
from tests.integration.test_stow_rs import dicom_parts, post
from tests.integration.test_wado_uri import _reason
from tests.live import LiveServer, Reply
from tests.rendering import image_of, psnr, window

MPEG2, H264, HEVC = "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.107"
ROWS, COLUMNS, COUNT = 48, 64, 8
# The multi-frame image: 16-bit ramps, one brighter per frame, shown through a window.
CINE_FRAMES, CINE_CENTER, CINE_WIDTH = 6, 1200.0, 2000.0


def source_frames() -> list[np.ndarray]:
    """Smooth colour ramps, each frame shifted and brightened: every frame differs from the others."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    return [np.stack([x * 2 + 10 * n, y * 2 + 20 * n, np.full_like(x, 40 + 25 * n)], axis=-1).astype(np.uint8)
            for n in range(COUNT)]


def cine_values() -> np.ndarray:
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    return np.stack([(x * 30 + y * 10 + 250 * n) for n in range(CINE_FRAMES)]).astype(np.uint16)


def get(live: LiveServer, path: str, accept: str, **headers: str) -> Reply:
    reply = live.request("GET", path, headers={"Accept": accept, **headers})
    if reply.status >= 400:
        live.assert_nothing_internal(reply)
    return reply


def movie_of(data: bytes) -> tuple[str, str, Fraction, list[np.ndarray]]:
    """Container, codec, frame rate and RGB frames of a video answer, read by PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        return container.format.name, stream.codec_context.name, stream.average_rate, frames


@pytest.fixture(scope="module")
def objects(live: LiveServer) -> Mapping[str, pydicom.Dataset]:
    frames = source_frames()
    made = {
        "h264": make_coded_video(frames, H264, study_uid=generate_uid()),
        "mpeg2": make_coded_video(frames, MPEG2, study_uid=generate_uid(), RepresentativeFrameNumber=3),
        "hevc": make_coded_video(frames, HEVC, study_uid=generate_uid()),
        "corrupt": make_video([b"\x00\x00\x01\xb3" + bytes(range(256)) * 64], H264, study_uid=generate_uid()),
        "cine": make_dataset(rows=ROWS, columns=COLUMNS, frames=CINE_FRAMES, PixelData=cine_values().tobytes(),
                             WindowCenter=CINE_CENTER, WindowWidth=CINE_WIDTH, FrameTime=80.0,
                             modality="XA", study_uid=generate_uid()),
        "single": make_dataset(rows=8, columns=8, study_uid=generate_uid()),
    }
    for ds in made.values():
        assert post(live, dicom_parts(to_bytes(ds))).status == 200
    return made


def test_a_video_still_and_thumbnail_are_its_first_frame(live: LiveServer,
                                                         objects: Mapping[str, pydicom.Dataset]) -> None:
    first = source_frames()[0]
    where = instance_path(objects["h264"])
    reply = get(live, where + "/rendered", "image/png")
    assert reply.status == 200 and reply.header("Content-Type") == "image/png"
    assert psnr(image_of(reply.body), first) > 30
    reply = get(live, where + "/thumbnail?viewport=64,48", "image/png")
    assert reply.status == 200 and psnr(image_of(reply.body), first) > 30
    reply = get(live, where + "/thumbnail", "*/*")  # the default size, as JPEG
    assert reply.status == 200 and reply.header("Content-Type") == "image/jpeg"
    image = Image.open(io.BytesIO(reply.body))
    assert image.format == "JPEG" and max(image.size) == live.settings.thumbnail_size


def test_a_representative_frame_number_chooses_the_still(live: LiveServer,
                                                         objects: Mapping[str, pydicom.Dataset]) -> None:
    frames = source_frames()
    where = instance_path(objects["mpeg2"])
    for suffix in ("/rendered", "/thumbnail?viewport=64,48"):
        shown = image_of(get(live, where + suffix, "image/png").body)
        assert psnr(shown, frames[2]) > 30 and psnr(shown, frames[2]) > psnr(shown, frames[0]) + 10, suffix


@pytest.mark.parametrize("kind", ["h264", "mpeg2", "hevc"])
def test_rendered_frames_of_a_video_are_its_frames(live: LiveServer, objects: Mapping[str, pydicom.Dataset],
                                                   kind: str) -> None:
    frames = source_frames()
    where = instance_path(objects[kind])
    fifth = image_of(get(live, where + "/frames/5/rendered", "image/png").body)
    first = image_of(get(live, where + "/frames/1/rendered", "image/png").body)
    assert psnr(fifth, frames[4]) > 30 and psnr(first, frames[0]) > 30
    # Frame 5 differs from frame 1 as the source's do.
    assert psnr(fifth, frames[0]) < psnr(fifth, frames[4]) - 10
    assert abs(float(fifth.mean()) - float(first.mean())) == pytest.approx(
        abs(float(frames[4].mean()) - float(frames[0].mean())), abs=2)


def test_frames_out_of_order_are_an_animated_gif(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    frames = source_frames()
    reply = get(live, instance_path(objects["h264"]) + "/frames/6,2,6/rendered", "image/gif")
    assert reply.status == 200 and reply.header("Content-Type") == "image/gif"
    gif = Image.open(io.BytesIO(reply.body))
    shown = []
    for index in range(gif.n_frames):
        gif.seek(index)
        shown.append(np.asarray(gif.convert("RGB")))
    assert len(shown) == 3
    for image, number in zip(shown, (6, 2, 6), strict=True):
        assert psnr(image, frames[number - 1]) > 20  # 256 colours
        assert all(psnr(image, frames[number - 1]) > psnr(image, frames[other]) for other in range(COUNT)
                   if other != number - 1)


def test_viewport_and_quality_apply_to_video_frames(live: LiveServer,
                                                    objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["h264"]) + "/frames/2/rendered"
    assert image_of(get(live, where + "?viewport=32,24", "image/png").body).shape == (24, 32, 3)
    flipped = image_of(get(live, where + "?viewport=64,48,63,0,-64,48", "image/png").body)
    assert psnr(flipped, source_frames()[1][:, ::-1]) > 30
    small = get(live, where + "?quality=5", "image/jpeg").body
    large = get(live, where + "?quality=100", "image/jpeg").body
    assert len(small) < len(large) / 2


def test_frame_numbers_beyond_the_last_are_404(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["h264"])
    _reason(get(live, where + "/frames/9/rendered", "image/jpeg"), 404, "beyond the last frame (8)")
    _reason(get(live, where + "/frames/2,9/rendered", "image/gif"), 404, "beyond the last frame")
    _reason(get(live, where + "/frames/0/rendered", "image/jpeg"), 400)


def test_the_stream_stays_the_default_of_a_video(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["h264"]) + "/rendered"
    for accept in ("*/*", "video/*", "video/mp4, image/jpeg"):
        reply = get(live, where, accept)
        assert reply.status == 200 and reply.header("Content-Type") == "video/mp4", accept
    reply = get(live, where, "image/jpeg;q=0.5, video/mp4;q=0.4")
    assert reply.header("Content-Type") == "image/jpeg"
    _reason(get(live, where, "text/html"), 406, "video/mp4; image/jpeg; image/png; image/gif")


def test_study_and_series_thumbnails_of_a_video(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    ds = objects["h264"]
    study = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    for path in (study, f"{study}/series/{ds.SeriesInstanceUID}"):
        reply = get(live, path + "/thumbnail?viewport=64,48", "image/png")
        assert reply.status == 200 and psnr(image_of(reply.body), source_frames()[0]) > 30, path
        reply = get(live, path + "/rendered", "image/png")
        assert reply.status == 200 and psnr(image_of(reply.body), source_frames()[0]) > 30, path


def test_a_corrupt_stream_is_406_never_500(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["corrupt"])
    for suffix, accept in (("/thumbnail", "image/jpeg"), ("/rendered", "image/png"),
                           ("/frames/1/rendered", "image/jpeg")):
        _reason(get(live, where + suffix, accept), 406, "cannot be decoded")
    # Its stream is still sent as stored.
    assert get(live, where + "/rendered", "video/mp4").status == 200


def test_a_multi_frame_image_as_mp4(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    reply = get(live, instance_path(objects["cine"]) + "/rendered", "video/mp4")
    assert reply.status == 200 and reply.header("Content-Type") == "video/mp4"
    container, codec, rate, frames = movie_of(reply.body)
    assert (container.split(",")[0], codec, rate) == ("mov", "h264", Fraction(25, 2))  # Frame Time 80 ms
    assert len(frames) == CINE_FRAMES
    for frame, values in zip(frames, cine_values(), strict=True):
        assert frame.shape == (ROWS, COLUMNS, 3)
        expected = np.rint(window(values.astype(np.float64), CINE_CENTER, CINE_WIDTH)).astype(np.uint8)
        assert psnr(frame[..., 0], expected) > 35


def test_a_multi_frame_image_as_mpeg2_with_window_and_viewport(live: LiveServer,
                                                              objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["cine"]) + "/rendered"
    reply = get(live, where + "?window=1000,1000,linear", "video/mpeg")
    assert reply.status == 200 and reply.header("Content-Type") == "video/mpeg"
    container, codec, _rate, frames = movie_of(reply.body)
    assert (container, codec, len(frames)) == ("mpeg", "mpeg2video", CINE_FRAMES)
    for frame, values in zip(frames, cine_values(), strict=True):
        expected = np.rint(window(values.astype(np.float64), 1000, 1000)).astype(np.uint8)
        assert psnr(frame[..., 0], expected) > 30
    # An odd output size is padded to the even one 4:2:0 needs.
    _c, _k, _r, frames = movie_of(get(live, where + "?viewport=31,", "video/mp4").body)
    assert frames[0].shape == (24, 32, 3)


def test_video_of_a_single_frame_image_is_406(live: LiveServer, objects: Mapping[str, pydicom.Dataset]) -> None:
    where = instance_path(objects["single"]) + "/rendered"
    for accept in ("video/mp4", "video/mpeg", "video/*"):
        _reason(get(live, where, accept), 406, "image/jpeg")
    # The frames of a multi-frame image are images; video is the whole object's rendering.
    _reason(get(live, instance_path(objects["cine"]) + "/frames/1/rendered", "video/mp4"), 406)


def test_wado_uri_renders_a_video_frame_and_a_cine_as_video(live: LiveServer,
                                                             objects: Mapping[str, pydicom.Dataset]) -> None:
    def wado(ds: pydicom.Dataset, query: str) -> Reply:
        reply = live.request("GET", f"/wado?requestType=WADO&studyUID={ds.StudyInstanceUID}&seriesUID="
                                    f"{ds.SeriesInstanceUID}&objectUID={ds.SOPInstanceUID}&{query}")
        if reply.status >= 400:
            live.assert_nothing_internal(reply)
        return reply

    frames = source_frames()
    reply = wado(objects["h264"], "contentType=image/png&frameNumber=4")
    assert reply.status == 200 and psnr(image_of(reply.body), frames[3]) > 30
    reply = wado(objects["h264"], "contentType=image/jpeg&rows=24")
    assert reply.status == 200 and image_of(reply.body).shape == (24, 32, 3)
    _reason(wado(objects["h264"], "contentType=image/png&frameNumber=9"), 400, "frameNumber")
    reply = wado(objects["cine"], "contentType=video/mp4")
    assert reply.status == 200 and reply.header("Content-Type") == "video/mp4"
    assert len(movie_of(reply.body)[3]) == CINE_FRAMES
    _reason(wado(objects["single"], "contentType=video/mpeg"), 406)
