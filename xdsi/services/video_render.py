"""The video side of rendering (PS3.18 8.3.5, 8.3.6, Table 8.7.4-1), for ``render.Renderer``:

- the frames of a stored video, decoded from its bitstream as it is read from the store, so that a
  video has rendered frames, a thumbnail and a still image like any multi-frame image;
- a multi-frame image's rendered frames encoded as video/mp4 (H.264) or video/mpeg (MPEG-2), one
  frame at a time, into a temporary file.

A video's still image and thumbnail show its Representative Frame Number (0028,6010) when it names
one of its frames, else its first frame: the first frame is decoded without reading past it, where
the middle one a multi-frame image shows would mean decoding half the stream.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from xdsi.dicom import video
from xdsi.dicom.imaging import DecodedFrame
from xdsi.dicom.parsing import Limits
from xdsi.dicom.render import RenderParams, colour_characteristics, frame_ms, rendered_frames
from xdsi.errors import NotFound
from xdsi.repository.blobs import BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services import documents, plans

MEDIA_TYPES = video.MEDIA_TYPES
MISSING = video.MISSING


def available() -> bool:
    """Whether video can be decoded and encoded here (PyAV is installed)."""
    return video.available()


def still_frame(ds: Dataset, count: int) -> int:
    """The frame that stands for a video (1-based): its Representative Frame Number (0028,6010)
    when that is one of its ``count`` frames, else the first."""
    try:
        number = int(ds.get("RepresentativeFrameNumber") or 1)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= count else 1


def decoded(blobs: BlobStore, instance: StoredInstance, limits: Limits, numbers: Sequence[int],
            max_pixel_bytes: int) -> Iterator[tuple[int, DecodedFrame]]:
    """Frames ``numbers`` (1-based, in the order asked) of a stored video as RGB frames for the
    renderer. A frame beyond the last the object declares is NotFound, as for any multi-frame
    object; an ascending run is decoded in one pass, a frame before the previous one asked for
    starts the stream again, so no decoded frame is kept waiting."""
    count = plans.ObjectPlan.of(instance).number_of_frames
    for number in numbers:
        if number > count:
            raise NotFound(f"frame {number} is beyond the last frame ({count}) of {instance.sop_instance_uid}")
    stream = documents.bitstream(blobs, instance, "video/*", limits)
    for run in _ascending_runs(numbers):
        with closing(stream.chunks(blobs)) as chunks:
            reader = io.BufferedReader(_ChunkReader(chunks))
            for decoded_number, rgb in video.frames(reader, run, max_pixel_bytes=max_pixel_bytes):
                yield decoded_number, DecodedFrame(rgb, "RGB")


def _ascending_runs(numbers: Sequence[int]) -> Iterator[list[int]]:
    """``numbers`` cut where one is not above the one before: [3, 5, 2, 4] gives [3, 5] and [2, 4]."""
    run: list[int] = []
    for number in numbers:
        if run and number <= run[-1]:
            yield run
            run = []
        run.append(number)
    if run:
        yield run


def encoded(ds: Dataset, frames: Iterable[tuple[int, DecodedFrame]], params: RenderParams, media_type: str) -> bytes:
    """``frames`` through the image pipeline (``render_frame``: window, viewport, annotation) and
    encoded as ``media_type`` at the object's frame rate (Frame Time, else Recommended Display Frame
    Rate or Cine Rate, else 10 per second), one frame at a time. The rendered frames together are
    bounded by ``params.max_output_pixels`` as an animated GIF's are."""
    def rendered() -> Iterator[np.ndarray]:
        for image in rendered_frames(ds, frames, params):
            # iccprofile naming a space converts the pixels into it; a video stream carries no profile.
            [image], _profile = colour_characteristics([image], ds, params.icc_profile)
            yield np.asarray(image)

    with tempfile.TemporaryDirectory(prefix="xdsi-video-") as folder:
        spool = Path(folder) / "rendered"
        video.encode(rendered(), media_type, video.frame_rate(frame_ms(ds)), params.quality, spool)
        return spool.read_bytes()


class _ChunkReader(io.RawIOBase):
    """A readable stream over the pieces of a bitstream, for the decoder to read as it needs."""

    def __init__(self, chunks: Generator[bytes, None, None]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
