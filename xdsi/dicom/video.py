"""Video: the frames of a stored MPEG-2, MPEG-4 AVC/H.264 or HEVC/H.265 bitstream decoded one at a
time (PS3.5 8.2.5-8.2.8), and rendered frames encoded as video (PS3.18 Table 8.7.4-1: a multi-frame
image rendered as video/mp4 or video/mpeg).

Both go through PyAV, which bundles FFmpeg: no other maintained Python package decodes these three
codecs and encodes H.264. PyAV is the optional ``video`` extra (``pip install 'xdsi[video]'``): its
wheel is about 36 MB and its FFmpeg is built with libx264, which is GPL-licensed, so an Apache-2.0
install that does not want that can leave it out; ``available()`` says whether it is there, and
without it video is still sent as its stored stream and nothing here is offered.

The stored bitstream is read from a file-like object as the decoder asks for it; the container
(an elementary stream, an MPEG-2 Program or Transport Stream) is found by FFmpeg's probe, as the
transfer syntaxes allow several (PS3.5 8.2.5-8.2.8). Only one decoded frame is held at a time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np

from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable

MP4 = "video/mp4"
MPEG = "video/mpeg"
MEDIA_TYPES = (MP4, MPEG)  # what frames are encoded as, H.264 in MP4 first (PS3.18 Table 8.7.4-1)
MISSING = "decoding and encoding video needs PyAV, the optional 'video' extra of xdsi (pip install 'xdsi[video]')"

# media type -> (container, codec). H.264 is what every browser plays (in MP4); MPEG-2 in a
# Program Stream is the video/mpeg of RFC 2045 and what DICOM's MPEG-2 transfer syntaxes carry.
_ENCODERS = {MP4: ("mp4", "libx264"), MPEG: ("mpeg", "mpeg2video")}
# x264's constant rate factor (0 lossless .. 51): 18 is visually lossless for 8-bit images.
_X264_CRF_BEST = 12
_X264_CRF_WORST = 40
# MPEG-2 has no constant quality mode here: a fixed quantiser scale (1 best .. 31 worst).
_MPEG2_QSCALE_BEST = 2
_MPEG2_QSCALE_WORST = 31


@lru_cache(maxsize=1)
@cache
def available() -> bool:
    """Whether PyAV is installed (found without importing it: the import loads FFmpeg). Looked up
    once: the search walks the import path, and every plan of a video or cine asks."""
    return importlib.util.find_spec("av") is not None


def _av() -> Any:
    if not available():
        raise NotAcceptable(MISSING)
    import av

    return av


def frames(source: IO[bytes], numbers: Sequence[int], *, max_pixel_bytes: int) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``numbers`` (1-based, ascending, no repeats) of the bitstream ``source`` as 8-bit RGB
    (rows x columns x 3), each yielded as soon as it is decoded; decoding stops after the last one
    asked for. MalformedDicom when the stream cannot be decoded or ends before a frame asked for;
    InstanceTooLarge when a frame would decode to more than ``max_pixel_bytes``."""
    if list(numbers) != sorted(set(numbers)) or not numbers or numbers[0] < 1:
        raise ValueError("frame numbers must be ascending, distinct and 1-based")
    av = _av()
    wanted = iter(numbers)
    next_wanted: int | None = next(wanted)
    seen = 0
    try:
        with av.open(source, "r") as container:
            if not container.streams.video:
                raise MalformedDicom("the pixel data holds no video stream")
            stream = container.streams.video[0]
            _check_size(stream.width, stream.height, max_pixel_bytes)  # as the stream declares it
            for frame in container.decode(stream):
                seen += 1
                if seen != next_wanted:
                    continue
                _check_size(frame.width, frame.height, max_pixel_bytes)  # a stream may change size
                yield seen, frame.to_ndarray(format="rgb24")
                next_wanted = next(wanted, None)
                if next_wanted is None:
                    return
    except av.error.FFmpegError as exc:
        # FFmpeg's own message names its internals: the client is told what failed, not how.
        raise MalformedDicom("the video stream of the pixel data cannot be decoded") from exc
    raise MalformedDicom(f"the video stream ends after {seen} frames, before frame {next_wanted}")


def _check_size(width: int, height: int, max_pixel_bytes: int) -> None:
    if width * height * 3 > max_pixel_bytes:
        raise InstanceTooLarge(f"a {width}x{height} video frame decodes to more than {max_pixel_bytes} bytes")


def frame_rate(frame_ms: float) -> Fraction:
    """Frames per second for a display time per frame in milliseconds, as an exact fraction."""
    return Fraction(1000 / frame_ms).limit_denominator(1001)


def encode(images: Iterable[np.ndarray], media_type: str, rate: Fraction, quality: int, out: Path) -> int:
    """Encode ``images`` (8-bit rows x columns grayscale or rows x columns x 3 RGB, all of one size)
    as ``media_type`` (one of MEDIA_TYPES) at ``rate`` frames per second into the file ``out`` (a
    path: FFmpeg reopens an MP4 to move its index to the front), one frame at a time; returns the
    number of frames.

    4:2:0 chroma needs even dimensions: an odd last row or column is repeated. ``quality`` (1-100,
    PS3.18 8.3.5.1.2) sets x264's rate factor or MPEG-2's quantiser scale."""
    if media_type not in _ENCODERS:
        raise NotAcceptable(f"{media_type} is not a video type made here; offered: {', '.join(MEDIA_TYPES)}")
    av = _av()
    container_format, codec = _ENCODERS[media_type]
    count = 0
    # An MP4's index first (faststart), so that a browser starts playing before the whole answer is in.
    options = {"movflags": "+faststart"} if container_format == "mp4" else {}
    with av.open(str(out), "w", format=container_format, options=options) as container:
        stream = None
        for image in images:
            image = _even(image)
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                _set_quality(stream, codec, quality)
            pixels = "gray" if image.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=pixels)
            frame.pts = count
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("encode() needs at least one frame")
        for packet in stream.encode():
            container.mux(packet)
    return count


def _even(image: np.ndarray) -> np.ndarray:
    rows, columns = image.shape[:2]
    pad = ((0, rows % 2), (0, columns % 2)) + ((0, 0),) * (image.ndim - 2)
    return np.pad(image, pad, mode="edge") if rows % 2 or columns % 2 else image


def _set_quality(stream: Any, codec: str, quality: int) -> None:
    """Quality 100 gives the best setting, 1 the worst, linearly between them."""
    if codec == "libx264":
        crf = round(_X264_CRF_WORST - (quality - 1) * (_X264_CRF_WORST - _X264_CRF_BEST) / 99)
        stream.options = {"crf": str(crf), "preset": "veryfast"}
    else:
        # One quantiser scale for every macroblock: the bit rate follows the picture, not a target.
        qscale = round(_MPEG2_QSCALE_WORST - (quality - 1) * (_MPEG2_QSCALE_WORST - _MPEG2_QSCALE_BEST) / 99)
        stream.codec_context.qmin = stream.codec_context.qmax = qscale
