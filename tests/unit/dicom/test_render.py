"""The pixel pipeline and its encoders: regions, source rectangles, sizes, pixel aspect, steps, limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from xdsi.dicom.imaging import DecodedFrame
from xdsi.dicom.render import (
    GIF,
    JPEG,
    PNG,
    FrameContext,
    Region,
    RenderParams,
    Size,
    SourceRect,
    encode,
    output_size,
    pixel_aspect,
    render,
)
from xdsi.errors import InstanceTooLarge, InvalidRequest, NotAcceptable

RAMP = np.arange(200 * 100, dtype=np.uint16).reshape(100, 200) % 256  # 200 columns, 100 rows


def _png(frame: DecodedFrame, ds: Dataset | None = None, **params: object) -> np.ndarray:
    data = render(ds or Dataset(), [(1, frame)], RenderParams(media_type=PNG, **params))  # type: ignore[arg-type]
    return np.asarray(Image.open(io.BytesIO(data)))


def _gray(arr: np.ndarray = RAMP) -> DecodedFrame:
    return DecodedFrame(arr, "MONOCHROME2")


def test_region_is_in_fractions_of_the_frame() -> None:
    got = _png(_gray(), region=Region(0.25, 0.5, 0.75, 1.0))
    assert got.shape == (50, 100)
    assert np.array_equal(got, RAMP[50:100, 50:150].astype(np.uint8))


@pytest.mark.parametrize("values", [(0.5, 0, 0.5, 1), (0, 0, 1.5, 1), (-0.1, 0, 1, 1), (0.6, 0, 0.5, 1)])
def test_bad_regions(values: tuple[float, float, float, float]) -> None:
    with pytest.raises(InvalidRequest, match="region"):
        Region(*values)


def test_source_rectangle_and_flips() -> None:
    assert SourceRect(10, 20, 30, 40).pixels(200, 100) == ((10, 20, 40, 60), False, False)
    assert SourceRect(39, 59, -30, -40).pixels(200, 100) == ((10, 20, 40, 60), True, True)
    assert SourceRect(150, 50).pixels(200, 100) == ((150, 50, 200, 100), False, False)
    got = _png(_gray(), source=SourceRect(39, 59, -30, -40))
    assert np.array_equal(got, RAMP[20:60, 10:40][::-1, ::-1].astype(np.uint8))
    for rect in (SourceRect(200, 0), SourceRect(0, 0, 201, 10), SourceRect(5, 5, -10, 2)):
        with pytest.raises(InvalidRequest, match="viewport source"):
            rect.pixels(200, 100)


def test_output_size_keeps_the_aspect_ratio() -> None:
    assert output_size(200, 100, None) == (200, 100)
    assert output_size(200, 100, Size(100, 100)) == (100, 50)
    assert output_size(200, 100, Size(None, 400)) == (800, 400)  # WADO-URI rows alone: larger too
    assert output_size(200, 100, Size(1000, 10)) == (20, 10)
    assert output_size(3000, 1, Size(10, 10)) == (10, 1)  # never below a pixel


def test_pixel_aspect_ratio_stretches_rows() -> None:
    ds = Dataset()
    ds.PixelSpacing = [0.5, 0.25]  # rows twice as far apart as columns: pixels twice as tall
    assert pixel_aspect(ds) == 2.0
    assert _png(_gray(), ds).shape == (200, 200)
    ds.PixelAspectRatio = [1, 1]
    assert pixel_aspect(ds) == 1.0
    ds.PixelAspectRatio = [0, 0]
    ds.PixelSpacing = [0, 0]
    assert pixel_aspect(ds) == 1.0  # meaningless values are ignored, not a failure


def test_steps_run_in_order_on_what_they_expect() -> None:
    seen: list[tuple[str, tuple[int, int], FrameContext]] = []

    def presentation(image: Image.Image, context: FrameContext) -> Image.Image:
        seen.append(("presentation", image.size, context))
        return image.transpose(Image.Transpose.ROTATE_90)

    def annotation(image: Image.Image, context: FrameContext) -> Image.Image:
        seen.append(("annotation", image.size, context))
        return image

    got = _png(_gray(), region=Region(0, 0, 0.5, 1), presentation=(presentation,), annotation=(annotation,),
               size=Size(25, 25))
    assert [(name, size) for name, size, _ in seen] == [("presentation", (100, 100)), ("annotation", (25, 25))]
    assert seen[0][2].area == (0, 0, 100, 100) and seen[0][2].number == 1
    assert got.shape == (25, 25)


def test_animated_gif_and_its_frame_time() -> None:
    ds = Dataset()
    ds.FrameTime = 40
    ramp = np.arange(16, dtype=np.uint8).reshape(4, 4)
    frames = [(n, _gray(np.roll(ramp, n))) for n in (1, 2, 3)]
    data = render(ds, frames, RenderParams(media_type=GIF))
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 3 and image.info["duration"] == 40
    image.seek(2)
    assert np.array_equal(np.asarray(image.convert("L")), np.rint(np.roll(ramp, 3) * 17.0))
    with pytest.raises(NotAcceptable, match="image/gif"):
        render(ds, frames, RenderParams(media_type=JPEG))


def test_rgb_gif_is_quantized_not_refused() -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    data = render(Dataset(), [(1, DecodedFrame(rgb, "RGB"))], RenderParams(media_type=GIF))
    assert np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[0, 0].tolist() == [255, 0, 0]


def test_output_limits() -> None:
    with pytest.raises(InstanceTooLarge, match="limit"):
        render(Dataset(), [(1, _gray())], RenderParams(size=Size(1000, 1000), max_output_pixels=100_000))
    frames = [(n, _gray()) for n in range(1, 10)]
    with pytest.raises(InstanceTooLarge, match="frames"):
        render(Dataset(), frames, RenderParams(media_type=GIF, max_output_pixels=100_000))


def test_parameters_checked_when_built() -> None:
    with pytest.raises(NotAcceptable):
        RenderParams(media_type="image/webp")
    for quality in (0, 101):
        with pytest.raises(InvalidRequest, match="quality"):
            RenderParams(quality=quality)
    with pytest.raises(InvalidRequest):
        RenderParams(region=Region(0, 0, 1, 1), source=SourceRect(0, 0))
    with pytest.raises(InvalidRequest):
        Size(0, 10)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("quality", [1, 50, 90, 100])
def test_jpeg_without_a_profile_is_pillows_jpeg_byte_for_byte(mode: str, quality: int) -> None:
    """The direct libjpeg-turbo path writes what Pillow's JPEG encoder writes: same settings, same bytes."""
    rng = np.random.default_rng(quality)
    y, x = np.mgrid[0:97, 0:130]
    gray = (x * 1.5 + y + rng.normal(0, 12, x.shape)).clip(0, 255).astype(np.uint8)
    pixels = gray if mode == "L" else np.stack([gray, gray[::-1], 255 - gray], axis=-1)
    image = Image.fromarray(pixels, mode)
    params = RenderParams(media_type=JPEG, quality=quality)
    pillow = io.BytesIO()
    image.save(pillow, "JPEG", quality=quality)
    assert encode([image], params, None, 0) == pillow.getvalue()
    with_profile = encode([image], params, b"profile", 0) if mode == "RGB" else None
    assert with_profile is None or Image.open(io.BytesIO(with_profile)).info.get("icc_profile") == b"profile"
