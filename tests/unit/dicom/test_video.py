"""xdsi.dicom.video: bitstreams made by PyAV's own encoders decoded frame by frame, and frames
encoded as MP4 (H.264) and MPEG-2 read back by PyAV's demuxers, compared with the source pixels."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.dicomfiles import VIDEO_CODERS, video_stream
from tests.rendering import psnr
from xdsi.dicom import video
from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable

ROWS, COLUMNS, COUNT = 48, 64, 8
H264_IN_TS = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1


def source_frames() -> list[np.ndarray]:
    """Smooth colour ramps, each frame shifted and brightened: every frame differs from the others."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    return [np.stack([x * 2 + 10 * n, y * 2 + 20 * n, np.full_like(x, 40 + 25 * n)],
                     axis=-1).astype(np.uint8) for n in range(COUNT)]


@pytest.mark.parametrize("syntax", sorted(VIDEO_CODERS))
def test_frames_decode_to_the_source(syntax: str) -> None:
    frames = source_frames()
    stream = video_stream(frames, syntax)
    got = list(video.frames(io.BytesIO(stream), [1, 4, 8], max_pixel_bytes=1 << 20))
    assert [number for number, _ in got] == [1, 4, 8]
    for number, rgb in got:
        assert rgb.shape == (ROWS, COLUMNS, 3) and rgb.dtype == np.uint8
        assert psnr(rgb, frames[number - 1]) > 30, (syntax, number)
        # Frame n is frame n, not its neighbour.
        others = [psnr(rgb, frame) for index, frame in enumerate(frames) if index != number - 1]
        assert max(others) < psnr(rgb, frames[number - 1]) - 5


def test_a_stream_read_in_small_pieces_through_a_pipe_like_reader() -> None:
    """Not seekable, short reads: the decoder takes the stream as the store hands it out."""
    frames = source_frames()
    stream = video_stream(frames, "1.2.840.10008.1.2.4.102")

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.at = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            piece = stream[self.at:self.at + min(len(buffer), 333)]
            buffer[:len(piece)] = piece
            self.at += len(piece)
            return len(piece)

    [(number, rgb)] = video.frames(Trickle(), [2], max_pixel_bytes=1 << 20)
    assert number == 2 and psnr(rgb, frames[1]) > 30


def test_h264_in_an_mpeg2_transport_stream_is_found_by_probing() -> None:
    """PS3.5 8.2.7 allows the H.264 stream in an MPEG-2 Transport Stream as well as bare."""
    frames = source_frames()
    stream = video_stream(frames, H264_IN_TS, container_format="mpegts")
    [(number, rgb)] = video.frames(io.BytesIO(stream), [7], max_pixel_bytes=1 << 20)
    assert number == 7 and psnr(rgb, frames[6]) > 30


def test_a_frame_beyond_the_stream_and_a_corrupt_stream_are_malformed() -> None:
    stream = video_stream(source_frames(), "1.2.840.10008.1.2.4.102")
    with pytest.raises(MalformedDicom, match="ends after 8 frames, before frame 9"):
        list(video.frames(io.BytesIO(stream), [9], max_pixel_bytes=1 << 20))
    corrupt = b"\x00\x00\x01\xb3" + bytes(range(256)) * 64
    with pytest.raises(MalformedDicom, match="cannot be decoded") as caught:
        list(video.frames(io.BytesIO(corrupt), [1], max_pixel_bytes=1 << 20))
    assert "Invalid data" not in str(caught.value)  # FFmpeg's text stays out of the answer


def test_a_frame_over_the_pixel_limit_is_too_large() -> None:
    stream = video_stream(source_frames(), "1.2.840.10008.1.2.4.100")
    with pytest.raises(InstanceTooLarge):
        list(video.frames(io.BytesIO(stream), [1], max_pixel_bytes=ROWS * COLUMNS * 3 - 1))


def test_frame_numbers_must_ascend() -> None:
    with pytest.raises(ValueError):
        list(video.frames(io.BytesIO(b""), [3, 1], max_pixel_bytes=1 << 20))


@pytest.mark.parametrize(("media_type", "format_name", "codec"), [
    (video.MP4, "mov,mp4,m4a,3gp,3g2,mj2", "h264"),
    (video.MPEG, "mpeg", "mpeg2video"),
])
def test_encoded_frames_read_back(media_type: str, format_name: str, codec: str, tmp_path: Path) -> None:
    # Odd sizes: 4:2:0 needs even ones, so the last row and column are repeated.
    grey = [np.tile(np.linspace(16 * n, 16 * n + 100, 63).astype(np.uint8), (47, 1)) for n in range(6)]
    out = tmp_path / "movie"
    assert video.encode(iter(grey), media_type, Fraction(25, 2), 95, out) == 6
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert container.format.name == format_name and stream.codec_context.name == codec
        assert (stream.width, stream.height) == (64, 48) and stream.average_rate == Fraction(25, 2)
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 6
    if media_type == video.MP4:  # faststart: the index (moov) precedes the media data (mdat)
        assert 0 < out.read_bytes().find(b"moov") < out.read_bytes().find(b"mdat")
    for source, frame in zip(grey, decoded, strict=True):
        assert psnr(frame[:47, :63, 0], source) > 35
        assert psnr(frame[:47, :63, 1], frame[:47, :63, 2]) > 40  # still grey


def test_quality_changes_the_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    noise = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    sizes = {}
    for quality in (1, 100):
        out = tmp_path / f"q{quality}"
        video.encode(noise, video.MP4, Fraction(10), quality, out)
        sizes[quality] = out.stat().st_size
    assert sizes[100] > 2 * sizes[1]


def test_frame_rate_is_exact_for_ntsc_frame_times() -> None:
    assert video.frame_rate(40) == 25
    assert video.frame_rate(1001 / 30) == Fraction(30000, 1001)


def test_only_video_types_are_encoded() -> None:
    with pytest.raises(NotAcceptable):
        video.encode([np.zeros((2, 2), np.uint8)], "image/gif", Fraction(10), 90, Path("unused"))
