"""Rendering image frames as JPEG, PNG or GIF (PS3.18 8.3.5, 9.1.2): the pixel pipeline.

Per frame, in the order PS3.3 C.11 and PS3.18 8.3.5.1 give: crop to the region asked for,
map stored values to display values (``luts``: Modality LUT, VOI, Presentation LUT; colour is
decoded to RGB by ``imaging``), the presentation steps (a presentation state's spatial
transformation, displayed area and graphics, added by the caller), flips asked for by a
viewport, scaling to the requested size keeping the aspect ratio (and the pixel aspect ratio),
then the annotation steps on the final 8-bit image. Frames are encoded as one image, or as one
animated GIF.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import imagecodecs
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from xdsi.dicom import icc
from xdsi.dicom.imaging import DecodedFrame
from xdsi.dicom.luts import Grayscale, Window, grayscale
from xdsi.errors import InstanceTooLarge, InvalidRequest, NotAcceptable

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
MEDIA_TYPES = (JPEG, PNG, GIF)  # PS3.18 Table 8.7.4-1: JPEG the default, PNG and GIF as well
MULTI_FRAME_TYPES = (GIF,)  # of these, the one that carries several frames
DEFAULT_QUALITY = 90
# PNG is lossless at every level; level 1 deflates a 2k x 2k CR several times faster than 6,
# for a file about 15% larger.
_PNG_LEVEL = 1
_GIF_FRAME_MS = 100  # 10 frames per second when the object states no frame time
# PS3.18 8.3.5.1.5: iccprofile; "default" when the parameter is absent.
IccChoice = Literal["default", "no", "yes", "srgb", "adobergb", "rommrgb"]
ICC_CHOICES: tuple[IccChoice, ...] = ("no", "yes", *icc.NAMED_SPACES)


@dataclass(frozen=True)
class FrameContext:
    """What a step knows of the frame it works on: the object, which frame (1-based), and the
    source pixel area the image shows, in stored pixel coordinates (left, top, right, bottom)."""

    dataset: Dataset
    number: int
    area: tuple[int, int, int, int]


ImageStep = Callable[[Image.Image, FrameContext], Image.Image]


@dataclass(frozen=True)
class Region:
    """A part of the frame in fractions of its width and height (WADO-URI ``region``, PS3.18 9.1.2.2)."""

    left: float
    top: float
    right: float
    bottom: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (self.left, self.top, self.right, self.bottom)):
            raise InvalidRequest("region values must lie between 0.0 and 1.0")
        if self.left >= self.right or self.top >= self.bottom:
            raise InvalidRequest("region must have x1 < x2 and y1 < y2")

    def pixels(self, columns: int, rows: int) -> tuple[int, int, int, int]:
        left, top = math.floor(self.left * columns), math.floor(self.top * rows)
        right, bottom = math.ceil(self.right * columns), math.ceil(self.bottom * rows)
        return left, top, max(right, left + 1), max(bottom, top + 1)


@dataclass(frozen=True)
class SourceRect:
    """A viewport's source rectangle in pixels (PS3.18 8.3.5.1.3 ``sx,sy,sw,sh``); a negative
    width or height takes the pixels left of or above ``x``/``y`` and flips them."""

    x: int
    y: int
    width: int | None = None
    height: int | None = None

    def pixels(self, columns: int, rows: int) -> tuple[tuple[int, int, int, int], bool, bool]:
        """(left, top, right, bottom) and whether to flip horizontally and vertically."""
        if not (0 <= self.x < columns and 0 <= self.y < rows):
            raise InvalidRequest(f"viewport source origin {self.x},{self.y} lies outside the "
                                 f"{columns}x{rows} image")
        width = columns - self.x if self.width is None else self.width
        height = rows - self.y if self.height is None else self.height
        if width == 0 or height == 0:
            raise InvalidRequest("viewport source width and height must not be 0")
        left, right = (self.x, self.x + width) if width > 0 else (self.x + width + 1, self.x + 1)
        top, bottom = (self.y, self.y + height) if height > 0 else (self.y + height + 1, self.y + 1)
        if left < 0 or top < 0 or right > columns or bottom > rows:
            raise InvalidRequest(f"viewport source rectangle {self.x},{self.y},{width},{height} extends "
                                 f"beyond the {columns}x{rows} image")
        return (left, top, right, bottom), width < 0, height < 0


@dataclass(frozen=True)
class Size:
    """The box the output must fit in (WADO-URI rows/columns, a viewport's vw,vh); None: unbounded."""

    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if value is not None and value < 1:
                raise InvalidRequest(f"the output {name} must be at least 1 pixel")


@dataclass(frozen=True)
class RenderParams:
    """How to render; the defaults render the whole frame at its size with the object's window."""

    media_type: str = JPEG
    window: Window | None = None
    inverse: bool | None = None  # a presentation state's Presentation LUT Shape; None: the image's
    region: Region | None = None
    source: SourceRect | None = None
    size: Size | None = None
    quality: int = DEFAULT_QUALITY
    icc_profile: IccChoice = "default"
    # A presentation state's grayscale pipeline, or the image's own read ahead; None: each frame's own.
    grayscale: Grayscale | None = field(default=None, compare=False)
    presentation: tuple[ImageStep, ...] = field(default=(), compare=False)
    annotation: tuple[ImageStep, ...] = field(default=(), compare=False)
    max_output_pixels: int = 64 << 20

    def __post_init__(self) -> None:
        if self.media_type not in MEDIA_TYPES:
            raise NotAcceptable(f"{self.media_type} is not a rendered image type; offered: {', '.join(MEDIA_TYPES)}")
        if not 1 <= self.quality <= 100:
            raise InvalidRequest(f"quality {self.quality} is outside 1..100")
        if self.region is not None and self.source is not None:
            raise InvalidRequest("a region and a viewport source rectangle cannot both be given")


def render_frame(frame: DecodedFrame, ds: Dataset, number: int, params: RenderParams) -> Image.Image:
    """One frame (``number`` is 1-based) through the whole pipeline, as an L or RGB image."""
    arr = frame.array
    rows, columns = arr.shape[:2]
    flip_x = flip_y = False
    area = (0, 0, columns, rows)
    if params.region is not None:
        area = params.region.pixels(columns, rows)
    elif params.source is not None:
        area, flip_x, flip_y = params.source.pixels(columns, rows)
    left, top, right, bottom = area
    whole, arr = arr, arr[top:bottom, left:right]
    if frame.is_gray:
        gray = params.grayscale or grayscale(ds, number - 1, frame.photometric, window=params.window,
                                             inverse=params.inverse)
        arr = gray.to_display(arr, whole)
    image = Image.fromarray(np.ascontiguousarray(arr), "L" if arr.ndim == 2 else "RGB")
    context = FrameContext(ds, number, area)
    for step in params.presentation:
        image = step(image, context)
    if flip_x:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if flip_y:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    width, height = output_size(image.width, image.height * pixel_aspect(ds), params.size)
    if width * height > params.max_output_pixels:
        raise InstanceTooLarge(f"an output image of {width}x{height} pixels exceeds the limit of "
                               f"{params.max_output_pixels} pixels")
    if (width, height) != image.size:
        # BILINEAR with a reducing gap: Pillow first shrinks by whole factors, which keeps
        # thumbnails of large images fast and free of aliasing.
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    for step in params.annotation:
        image = step(image, context)
    return image


def output_size(width: int, height: float, box: Size | None) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image fitted in ``box``, keeping its aspect ratio
    (PS3.18 9.1.2.2.4 rows/columns, 8.3.5.1.3 viewport); smaller or larger as the box asks."""
    scale = 1.0
    if box is not None and (box.width is not None or box.height is not None):
        scales = [side / natural for side, natural in ((box.width, width), (box.height, height)) if side is not None]
        scale = min(scales)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pixel_aspect(ds: Dataset) -> float:
    """Vertical over horizontal size of a pixel: Pixel Aspect Ratio (0028,0034), else the
    ratio of Pixel Spacing (row spacing / column spacing, PS3.3 10.7.1.3); 1 when unknown."""
    try:
        ratio = ds.get("PixelAspectRatio")
        if ratio and len(ratio) == 2 and int(ratio[0]) > 0 and int(ratio[1]) > 0:
            value = int(ratio[0]) / int(ratio[1])
        else:
            spacing = ds.get("PixelSpacing")
            value = float(spacing[0]) / float(spacing[1]) if spacing and len(spacing) == 2 else 1.0
    except (TypeError, ValueError, ZeroDivisionError):
        return 1.0
    # Spacings that differ by under a percent are rounding, not a shape: keep the pixel grid.
    return value if math.isfinite(value) and 0.01 < value < 100 and abs(value - 1.0) > 0.01 else 1.0


def rendered_frames(ds: Dataset, frames: Iterable[tuple[int, DecodedFrame]],
                    params: RenderParams) -> Iterator[Image.Image]:
    """Each of ``frames`` (frame number, decoded frame) through ``render_frame`` as it is reached; all
    of them together bounded by ``max_output_pixels``, whatever they are encoded into."""
    total = 0
    for number, frame in frames:
        image = render_frame(frame, ds, number, params)
        total += image.width * image.height
        if total > params.max_output_pixels:
            raise InstanceTooLarge(f"the rendered frames exceed the limit of {params.max_output_pixels} pixels")
        yield image


def render(ds: Dataset, frames: Iterable[tuple[int, DecodedFrame]], params: RenderParams) -> bytes:
    """The encoded image of ``frames`` (frame number, decoded frame): one frame, or an animated
    GIF of them all; frames are rendered one at a time, and all rendered frames together are
    bounded by ``max_output_pixels``."""
    images = list(rendered_frames(ds, frames, params))
    if not images:
        raise ValueError("render() needs at least one frame")
    if len(images) > 1 and params.media_type not in MULTI_FRAME_TYPES:
        raise NotAcceptable(f"{params.media_type} holds one frame; several frames are rendered as "
                            f"{', '.join(MULTI_FRAME_TYPES)}")
    images, profile = colour_characteristics(images, ds, params.icc_profile)
    return encode(images, params, profile, frame_ms(ds))


def encode(images: list[Image.Image], params: RenderParams, profile: bytes | None, duration_ms: int) -> bytes:
    """Pillow's encoders; ``profile`` goes into JPEG (APP2) and PNG (iCCP) answers, while GIF has
    no place for one (PS3.18 8.3.5.1.5: a profile is present "if the Media Type supports" it).

    A JPEG without a profile is written by imagecodecs' libjpeg-turbo directly: the same library as
    Pillow's, with the same settings, so the same bytes (checked by test_render), but without Pillow's
    Python-level encoder loop, 10 % of the encoding of a 512 x 512 image (0.38 -> 0.34 ms). Other
    JPEG libraries were measured no faster (simplejpeg: 0.35 ms; 2k x 2k: 15.3 against Pillow's 15.0)."""
    first = images[0]
    if params.media_type == JPEG and profile is None and first.mode in ("L", "RGB"):
        return bytes(imagecodecs.jpeg8_encode(np.asarray(first), level=params.quality))
    out = io.BytesIO()
    extra = {"icc_profile": profile} if profile else {}
    if params.media_type == JPEG:
        first.save(out, "JPEG", quality=params.quality, **extra)
    elif params.media_type == PNG:
        first.save(out, "PNG", compress_level=_PNG_LEVEL, **extra)
    else:
        frames = [image if image.mode == "L" else image.quantize(256) for image in images]
        if len(frames) == 1:
            frames[0].save(out, "GIF")
        else:
            frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return out.getvalue()


def colour_characteristics(images: list[Image.Image], ds: Dataset,
                           choice: IccChoice) -> tuple[list[Image.Image], bytes | None]:
    """The rendered frames in the colour space ``choice`` names, and the ICC profile to embed
    (PS3.18 8.3.5.1.5). ``default`` (no parameter; CP 1733 leaves it to the server): the image's own
    profile, pixels as they are. ``yes``: its own profile, else sRGB's, the space PS3.3 C.11.15
    assumes without one. ``srgb``, ``adobergb``, ``rommrgb``: the pixels transformed from the
    image's space into the named one, with that space's profile. Grayscale renderings are
    presentation values for a display calibrated to the Grayscale Standard Display Function
    (PS3.14), not colours of an RGB space: they are neither transformed nor given a profile."""
    if choice == "no" or images[0].mode != "RGB":
        return images, None
    own = icc_profile(ds)
    if choice == "default":
        return images, own
    if choice == "yes":
        return images, own or icc.profile("srgb")
    return [icc.convert(image, own, choice) for image in images], icc.profile(choice)


def icc_profile(ds: Dataset) -> bytes | None:
    """ICC Profile (0028,2000) of the image, or of its first optical path (whole slide images)."""
    profile = ds.get("ICCProfile")
    if not profile:
        paths = ds.get("OpticalPathSequence")
        profile = paths[0].get("ICCProfile") if paths else None
    return bytes(profile) if profile else None


def frame_ms(ds: Dataset) -> int:
    """Display time of one frame of a cine: Frame Time (0018,1063), else Recommended Display
    Frame Rate (0008,2144) or Cine Rate (0018,0040)."""
    try:
        if ds.get("FrameTime"):
            return max(10, round(float(ds.FrameTime)))
        for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
            rate = ds.get(keyword)
            if rate and float(rate) > 0:
                return max(10, round(1000 / float(rate)))
    except (TypeError, ValueError):
        pass
    return _GIF_FRAME_MS
