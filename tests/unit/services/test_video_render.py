"""The video side of the rendering service over a real archive: the output bound on a multi-frame
image rendered as video, the cache of a video rendering, the still frame a video stands for, and
what is offered, and said, without PyAV."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from pydicom.dataset import Dataset

from tests.conftest import make_settings, store_all
from tests.dicomfiles import make_coded_video, make_dataset, to_bytes
from xdsi.dicom import video
from xdsi.errors import InstanceTooLarge, NotAcceptable
from xdsi.services import plans
from xdsi.services.archive import Archive
from xdsi.services.render import PNG, RenderRequest
from xdsi.services.retrieve import Target
from xdsi.services.video_render import still_frame

H264 = "1.2.840.10008.1.2.4.102"


@pytest.fixture
def small_output(database_url: str, tmp_path: Path) -> Iterator[Archive]:
    """An archive whose renderings may hold 3 frames of 16 x 16 pixels, not 4."""
    archive = Archive.open(make_settings(database_url, tmp_path / "store", render_max_output_pixels=3 * 256))
    archive.prepare()
    yield archive
    archive.close()


def _stored(archive: Archive, ds: Dataset) -> Target:
    store_all(archive, to_bytes(ds))
    return Target(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def _render(archive: Archive, target: Target, media_type: str) -> bytes:
    with archive.sessions() as session:
        prepared = archive.renderer.prepare(session, target)
    return archive.renderer.render(prepared, RenderRequest(media_type=media_type)).data


def test_video_of_more_frames_than_the_output_bound_is_too_large(small_output: Archive) -> None:
    cine = np.arange(16 * 16 * 4, dtype=np.uint16).reshape(4, 16, 16)
    target = _stored(small_output, make_dataset(rows=16, columns=16, frames=4, PixelData=cine.tobytes()))
    with pytest.raises(InstanceTooLarge, match="exceed the limit of 768 pixels"):
        _render(small_output, target, video.MP4)
    three = _stored(small_output, make_dataset(rows=16, columns=16, frames=3, PixelData=cine[:3].tobytes()))
    with av.open(io.BytesIO(_render(small_output, three, video.MP4))) as container:
        assert len(list(container.decode(video=0))) == 3


def test_a_video_rendering_is_cached(archive: Archive) -> None:
    cine = np.arange(8 * 8 * 2, dtype=np.uint16).reshape(2, 8, 8)
    target = _stored(archive, make_dataset(rows=8, columns=8, frames=2, PixelData=cine.tobytes()))
    first = _render(archive, target, video.MPEG)
    assert _render(archive, target, video.MPEG) is first


@pytest.mark.parametrize(("value", "count", "frame"), [(None, 8, 1), (3, 8, 3), (8, 8, 8), (9, 8, 1), (0, 8, 1),
                                                        ("x", 8, 1)])
def test_the_still_frame_is_the_representative_one_when_it_exists(value: object, count: int, frame: int) -> None:
    ds = Dataset()
    if value is not None:
        ds.RepresentativeFrameNumber = value if isinstance(value, int) else 1
        if isinstance(value, str):
            ds["RepresentativeFrameNumber"].value = value  # unreadable as a number
    assert still_frame(ds, count) == frame


def test_without_pyav_video_is_its_stream_only_and_406_says_what_is_missing(
        archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    y, x = np.mgrid[0:16, 0:16]
    frames = [np.stack([x * 8, y * 8, x * 0 + 9 * n], axis=-1).astype(np.uint8) for n in range(2)]
    movie = _stored(archive, make_coded_video(frames, H264))
    cine = _stored(archive, make_dataset(rows=4, columns=4, frames=2))
    assert len(_render(archive, movie, PNG)) > 0
    monkeypatch.setattr(video, "available", lambda: False)
    with archive.sessions() as session:
        [movie_plan] = plans.plan(session, movie).objects
        [cine_plan] = plans.plan(session, cine).objects
        assert movie_plan.rendered == ("video/mp4",)
        assert cine_plan.rendered == ("image/gif", "image/jpeg", "image/png")
        with pytest.raises(NotAcceptable, match=r"PyAV.*pip install 'xdsi\[video\]'"):
            archive.renderer.prepare(session, movie)
