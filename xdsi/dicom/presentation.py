"""Grayscale Softcopy Presentation State (PS3.3 A.33.1) applied to one image frame, as rendering steps.

A state is read once into a ``PresentationState`` for the image (and frame) it is applied to; the
rendering pipeline then calls its steps in the order of PS3.4 N.2 (the grayscale transformation
model): ``grayscale`` (Modality LUT C.11.1, Softcopy VOI LUT C.11.8, Presentation LUT C.11.6) on the
stored values, ``shuttered`` (Display Shutter C.7.6.11, Bitmap Display Shutter C.7.6.15) on the
P-values, ``spatial`` (Displayed Area C.10.4, then Spatial Transformation C.10.6) on the 8-bit
image, ``output_size`` (Presentation Size Mode) for the raster, and ``draw`` (overlays the state
activates, C.11.7, and Graphic Annotation C.10.5, by Graphic Layer C.10.7) on the final image.
Everything here is pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from xdsi.dicom import annotation
from xdsi.dicom.luts import VOI_FUNCTIONS, Grayscale, Window
from xdsi.errors import InvalidRequest, MalformedDicom

GRAYSCALE_SOFTCOPY_PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11.1"
_ROTATIONS = (0, 90, 180, 270)
_SIZE_MODES = ("SCALE TO FIT", "TRUE SIZE", "MAGNIFY")
# PS3.3 C.10.5.1.2: the graphic types and their points (CIRCLE: centre and a point on it;
# ELLIPSE: the ends of the major axis, then of the minor axis).
_MIN_POINTS = {"POINT": 1, "POLYLINE": 2, "INTERPOLATED": 2, "CIRCLE": 2, "ELLIPSE": 4}
_GRAPHIC_TYPES = tuple(_MIN_POINTS)
_MAX_OUTPUT_SIDE = 4096  # a raster side beyond this is shrunk, aspect kept (MAGNIFY, TRUE SIZE)
_CURVE_STEPS = 12  # points per segment of an INTERPOLATED curve
_CONIC_STEPS = 72  # points around a CIRCLE or ELLIPSE
# PS3.3 C.7.6.11.1.1 and C.7.6.15: the shutter shapes (BITMAP alone names an overlay plane).
_SHUTTER_SHAPES = ("RECTANGULAR", "CIRCULAR", "POLYGONAL", "BITMAP")
_MAX_SHUTTER_VERTICES = 1024  # each vertex costs a pass over the frame
_OVERLAY_GROUPS = range(0x6000, 0x6020, 2)  # PS3.3 C.9.2: the repeating groups 6000-601E
_MAX_OVERLAY_BITS = 1 << 26  # an overlay plane beyond 8192 x 8192 bits is refused, not unpacked


@dataclass(frozen=True)
class DisplayedArea:
    """PS3.3 C.10.4: the corners (column, row; 1-based, in the pixels before the spatial
    transformation), the size mode, the presentation pixel aspect (vertical / horizontal) and the
    magnification (MAGNIFY only)."""

    tlhc: tuple[int, int]
    brhc: tuple[int, int]
    size_mode: str = "SCALE TO FIT"
    aspect: float = 1.0
    magnification: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        """First column, first row, last column, last row (1-based, inclusive)."""
        return (min(self.tlhc[0], self.brhc[0]), min(self.tlhc[1], self.brhc[1]),
                max(self.tlhc[0], self.brhc[0]), max(self.tlhc[1], self.brhc[1]))


@dataclass(frozen=True)
class Graphic:
    """A graphic object (PS3.3 C.10.5.1.2): type, units (PIXEL or DISPLAY), (x, y) points, filled."""

    kind: str
    units: str
    points: tuple[tuple[float, float], ...]
    filled: bool = False


@dataclass(frozen=True)
class Text:
    """A text object (PS3.3 C.10.5.1.1): the text, its bounding box and/or anchor point, each in units."""

    text: str
    box: tuple[tuple[float, float], tuple[float, float]] | None = None
    box_units: str = "PIXEL"
    justification: str = "LEFT"
    anchor: tuple[float, float] | None = None
    anchor_units: str = "PIXEL"
    anchor_visible: bool = False


@dataclass(frozen=True)
class Overlay:
    """An overlay plane (PS3.3 C.9.2) shown in a graphic layer (C.11.7): its bits (1 = shown) and
    the image row and column (1-based) its first bit lies on."""

    layer: str
    bits: np.ndarray = field(compare=False)
    origin: tuple[int, int] = (1, 1)

    def placed(self, rows: int, columns: int) -> np.ndarray:
        """The plane on a ``rows`` x ``columns`` frame (bool); bits off the frame are dropped."""
        return _placed(self.bits, self.origin, rows, columns)


def _placed(bits: np.ndarray, origin: tuple[int, int], rows: int, columns: int) -> np.ndarray:
    out = np.zeros((rows, columns), dtype=bool)
    top, left = origin[0] - 1, origin[1] - 1
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + bits.shape[0], rows), min(left + bits.shape[1], columns)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = bits[y0 - top:y1 - top, x0 - left:x1 - left] != 0
    return out


@dataclass(frozen=True)
class Layer:
    """A graphic layer (PS3.3 C.10.7): drawn in ascending ``order``, in its recommended gray."""

    name: str
    order: int
    gray: int = 255
    graphics: tuple[Graphic, ...] = ()
    texts: tuple[Text, ...] = ()


@dataclass(frozen=True)
class Shutter:
    """PS3.3 C.7.6.11 and C.7.6.15: the openings of a display shutter, in the image's pixel
    positions (row, column; 1-based), and the P-value (0-65535) shown where they do not reach.

    A pixel is shown when it lies inside every shape present (the shapes are combined, PS3.3
    C.7.6.11.1.1), a pixel on an edge counting as inside, and is not set in the bitmap.
    """

    rectangle: tuple[int, int, int, int] | None = None  # left and right columns, upper and lower rows
    circle: tuple[int, int, int] | None = None  # centre row and column, radius
    polygon: tuple[tuple[int, int], ...] = ()  # vertices (row, column), closed back to the first
    bitmap: np.ndarray | None = field(default=None, compare=False)  # overlay bits, 1 = occluded
    bitmap_origin: tuple[int, int] = (1, 1)  # the image row and column of the bitmap's first bit
    value: int = 0

    def shown(self, rows: int, columns: int) -> np.ndarray:
        """Which pixels of a ``rows`` x ``columns`` frame the shutter leaves visible (bool)."""
        row = np.arange(1, rows + 1, dtype=np.float64)[:, None]
        column = np.arange(1, columns + 1, dtype=np.float64)[None, :]
        visible = np.ones((rows, columns), dtype=bool)
        if self.rectangle is not None:
            left, right, upper, lower = self.rectangle
            visible &= (column >= left) & (column <= right) & (row >= upper) & (row <= lower)
        if self.circle is not None:
            centre_row, centre_column, radius = self.circle
            visible &= (row - centre_row) ** 2 + (column - centre_column) ** 2 <= radius * radius
        if self.polygon:
            visible &= _inside_polygon(row, column, self.polygon)
        if self.bitmap is not None:
            visible &= ~_placed(self.bitmap, self.bitmap_origin, rows, columns)
        return visible


def _inside_polygon(row: np.ndarray, column: np.ndarray, vertices: Sequence[tuple[int, int]]) -> np.ndarray:
    """Pixel centres inside the closed polygon (even-odd rule: shutters do not self-intersect,
    PS3.3 C.7.6.11.1.3) or on one of its edges."""
    inside = np.zeros((row.shape[0], column.shape[1]), dtype=bool)
    on_edge = np.zeros_like(inside)
    for index, (r1, c1) in enumerate(vertices):
        r2, c2 = vertices[(index + 1) % len(vertices)]
        straddles = (row >= r1) != (row >= r2)  # rows (rows, 1) whose centre line the edge crosses
        if r1 != r2:
            crossing = c1 + (row - r1) * (c2 - c1) / (r2 - r1)
            inside ^= straddles & (column < crossing)
        collinear = (c2 - c1) * (row - r1) - (r2 - r1) * (column - c1) == 0
        on_edge |= collinear & (row >= min(r1, r2)) & (row <= max(r1, r2)) & \
            (column >= min(c1, c2)) & (column <= max(c1, c2))
    return inside | on_edge


@dataclass(frozen=True)
class PresentationState:
    """What one GSPS says about one image frame.

    ``modality`` holds the state's Modality LUT module (Rescale Slope/Intercept or Modality LUT
    Sequence; empty: the identity, PS3.4 N.2.1.1), ``window`` or ``voi_lut`` its Softcopy VOI LUT
    for this image (neither: the identity), ``inverse`` its Presentation LUT Shape.
    """

    sop_instance_uid: str
    modality: Dataset = field(default_factory=Dataset, compare=False)
    window: Window | None = None
    voi_lut: Dataset | None = field(default=None, compare=False)
    inverse: bool = False
    rotation: int = 0
    flip: bool = False
    area: DisplayedArea | None = None
    layers: tuple[Layer, ...] = field(default=())
    shutter: Shutter | None = None
    overlays: tuple[Overlay, ...] = ()  # the state's own planes it activates
    image_overlays: tuple[tuple[int, str], ...] = ()  # (group, layer): the image's planes it activates

    def deidentified(self) -> PresentationState:
        """The state as a de-identified rendering may draw it: without its text objects (free text may
        name the patient; the Basic Profile replaces the Graphic Annotation Sequence that holds it,
        PS3.15 Table E.1-1 (0070,0001) D) and without overlays (the profile removes Overlay Data,
        60xx,3000, of the state and of the image). Graphic objects (lines, shapes) stay."""
        return replace(self, layers=tuple(replace(layer, texts=()) for layer in self.layers), overlays=(),
                       image_overlays=())

    # --- PS3.4 N.2: the grayscale pipeline -------------------------------------------------------

    @property
    def grayscale(self) -> Grayscale:
        """Stored values to 8-bit P-values: the state's Modality LUT, its VOI, then its Presentation
        LUT, through the rendering pipeline's own transformation (``luts``)."""
        return Grayscale(self.modality, self.window, self.voi_lut, self.inverse)

    # --- PS3.3 C.7.6.11 and C.7.6.15: display shutters ----------------------------------------

    def shuttered(self, image: np.ndarray) -> np.ndarray:
        """``image`` (the frame's 8-bit P-values, rows x columns[, samples]) with what the shutter
        covers in its presentation value. PS3.4 N.2: the shutter applies to P-values, in the
        image's own pixel positions, before the spatial transformation moves them."""
        if self.shutter is None:
            return image
        hidden = ~self.shutter.shown(image.shape[0], image.shape[1])
        out = image.copy()
        out[hidden] = self.shutter.value >> 8  # a 16-bit P-value, shown in 8 bits
        return out

    # --- PS3.3 C.10.4 and C.10.6: displayed area, flip, rotation ---------------------------------

    def area_box(self, rows: int, columns: int) -> tuple[int, int, int, int]:
        """The displayed area of a ``rows`` x ``columns`` image (1-based, inclusive corners)."""
        return self.area.box if self.area else (1, 1, columns, rows)

    def showing(self, box: tuple[int, int, int, int]) -> PresentationState:
        """This state with ``box`` (left, top, right, bottom of the image in pixels; 0-based, right
        and bottom exclusive) as its displayed area, its size mode, aspect and magnification kept:
        a client's region (WADO-URI ``region``) is its choice of what to see, as a viewer's zoom
        replaces the displayed area."""
        left, top, right, bottom = box
        area = self.area or DisplayedArea((1, 1), (1, 1))
        return replace(self, area=replace(area, tlhc=(left + 1, top + 1), brhc=(right, bottom)))

    def spatial(self, image: np.ndarray) -> np.ndarray:
        """The displayed area of ``image`` (rows, columns[, samples]), flipped, then rotated.

        Corners outside the image show black (PS3.3 C.10.4: the area may exceed the image).
        PS3.3 C.10.6.1.1: the horizontal flip is applied before the rotation.
        """
        x0, y0, x1, y1 = self.area_box(image.shape[0], image.shape[1])
        out = np.zeros((y1 - y0 + 1, x1 - x0 + 1, *image.shape[2:]), dtype=image.dtype)
        src_y0, src_x0 = max(y0, 1), max(x0, 1)
        src_y1, src_x1 = min(y1, image.shape[0]), min(x1, image.shape[1])
        if src_y0 <= src_y1 and src_x0 <= src_x1:
            out[src_y0 - y0:src_y1 - y0 + 1, src_x0 - x0:src_x1 - x0 + 1] = \
                image[src_y0 - 1:src_y1, src_x0 - 1:src_x1]
        if self.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(np.rot90(out, k=-(self.rotation // 90)))

    def output_size(self, rows: int, columns: int, fit: tuple[int | None, int | None] | None = None) -> tuple[int, int]:
        """The raster size (width, height) of the displayed area of a ``rows`` x ``columns`` image.

        The area's presentation pixels may be non-square (aspect); SCALE TO FIT fills ``fit`` (the
        client's rows/columns or viewport) keeping the aspect; TRUE SIZE has no physical size on a
        raster, so it is one image pixel per output pixel; MAGNIFY multiplies that by the ratio.
        Any of them is shrunk to fit ``fit`` when given, and to 4096 pixels a side.
        """
        x0, y0, x1, y1 = self.area_box(rows, columns)
        width, height = float(x1 - x0 + 1), float(y1 - y0 + 1)
        aspect = self.area.aspect if self.area else 1.0
        height *= aspect
        if self.rotation in (90, 270):
            width, height = height, width
        scale = self.area.magnification if self.area and self.area.size_mode == "MAGNIFY" else 1.0
        wanted_w, wanted_h = fit if fit else (None, None)
        if self.area and self.area.size_mode == "SCALE TO FIT" and (wanted_w or wanted_h):
            scale = min(wanted_w / width if wanted_w else math.inf, wanted_h / height if wanted_h else math.inf)
        else:
            scale = min(scale, wanted_w / width if wanted_w else math.inf, wanted_h / height if wanted_h else math.inf)
        scale = min(scale, _MAX_OUTPUT_SIDE / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    # --- PS3.3 C.10.5: graphic and text annotation ---------------------------------------------

    def draw(self, image: Image.Image, rows: int, columns: int, source: Dataset | None = None,
             frame: int = 1) -> Image.Image:
        """``image`` (the displayed area of a ``rows`` x ``columns`` frame at its output size) with
        the annotation layers drawn on it, lowest Graphic Layer Order first: in each, its overlay
        planes (the state's, and those of ``source``, the image's header, that the state
        activates), then its graphics and text.

        MalformedDicom when an overlay plane of the image that the state activates is unreadable.
        """
        if not self.layers:
            return image
        overlays = [*self.overlays, *(_image_overlays(source, self.image_overlays, frame) if source else ())]
        mapping = _Mapping(self, rows, columns, image.width, image.height)
        pen = ImageDraw.Draw(image)
        line = max(1, round(min(image.width, image.height) / 256))
        for layer in sorted(self.layers, key=lambda item: item.order):
            colour: int | tuple[int, int, int] = layer.gray if image.mode == "L" else (layer.gray,) * 3
            for overlay in overlays:
                if overlay.layer == layer.name:
                    # Image-relative (PS3.4 N.2): the plane follows the area, flip, rotation and scale.
                    shown = self.spatial(overlay.placed(rows, columns)).astype(np.uint8) * 255
                    image.paste(colour, mask=Image.fromarray(shown).resize(image.size, Image.Resampling.NEAREST))
            for graphic in layer.graphics:
                _draw_graphic(pen, graphic, mapping, colour, line)
            for text in layer.texts:
                _draw_text(pen, text, mapping, colour, image)
        return image


# --- reading a state ---------------------------------------------------------------------------

def is_presentation_state(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == GRAYSCALE_SOFTCOPY_PRESENTATION_STATE


def presentation_for(gsps: Dataset, image_uid: str, frame: int = 1) -> PresentationState:
    """What ``gsps`` says about frame ``frame`` of image ``image_uid``.

    InvalidRequest when ``gsps`` is not a GSPS, does not reference the image, or holds a value the
    standard does not allow (the client named the state; it does not fit the request).
    """
    if not is_presentation_state(gsps):
        raise InvalidRequest(f"presentation state {gsps.get('SOPInstanceUID', '')} is not a Grayscale Softcopy "
                             f"Presentation State (its SOP Class is {gsps.get('SOPClassUID', 'absent')})")
    referenced = [image for series in gsps.get("ReferencedSeriesSequence", ())
                  for image in series.get("ReferencedImageSequence", ())]
    if not any(_applies(image, image_uid, frame) for image in referenced):
        named = any(str(image.get("ReferencedSOPInstanceUID", "")) == image_uid for image in referenced)
        raise InvalidRequest(f"presentation state {gsps.get('SOPInstanceUID', '')} does not reference "
                             f"image {image_uid}" + (f" frame {frame}" if named else ""))
    try:
        voi = _voi(gsps, image_uid, frame)
        shutter = _shutter(gsps)
        activated = _activated(gsps, shutter)
        return PresentationState(
            sop_instance_uid=str(gsps.get("SOPInstanceUID", "")),
            modality=_modality(gsps),
            window=voi if isinstance(voi, Window) else None,
            voi_lut=voi if isinstance(voi, Dataset) else None,
            inverse=_inverse(gsps),
            rotation=_rotation(gsps),
            flip=str(gsps.get("ImageHorizontalFlip", "N")).upper() == "Y",
            area=_displayed_area(gsps, image_uid, frame),
            layers=_layers(gsps, image_uid, frame, activated),
            shutter=shutter,
            overlays=tuple(Overlay(layer, *_overlay_plane(gsps, group, frame)) for group, layer in activated
                           if _has_plane(gsps, group)),
            image_overlays=tuple((group, layer) for group, layer in activated if not _has_plane(gsps, group)),
        )
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidRequest(f"presentation state {gsps.get('SOPInstanceUID', '')} cannot be applied: "
                             f"{_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) else "a required attribute is missing or malformed"


def _applies(item: Dataset, image_uid: str, frame: int) -> bool:
    """PS3.3 C.10.1 / C.11.8: an item applies to the image it names, to all its frames unless it lists some."""
    if str(item.get("ReferencedSOPInstanceUID", "")) != image_uid:
        return False
    frames = item.get("ReferencedFrameNumber")
    if frames is None or frames == "":
        return True
    return frame in ([int(n) for n in frames] if isinstance(frames, Sequence) and not isinstance(frames, str)
                     else [int(frames)])


def _for_image(items: Sequence[Dataset], image_uid: str, frame: int) -> Dataset | None:
    """The first item that applies to the image: one with no Referenced Image Sequence applies to all."""
    for item in items:
        references = item.get("ReferencedImageSequence")
        if not references or any(_applies(ref, image_uid, frame) for ref in references):
            return item
    return None


def _modality(gsps: Dataset) -> Dataset:
    """The state's Modality LUT module alone (PS3.3 C.11.1), as the pipeline reads it."""
    module = Dataset()
    for keyword in ("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept", "RescaleType"):
        if keyword in gsps:
            module[keyword] = gsps[keyword]
    return module


def _voi(gsps: Dataset, image_uid: str, frame: int) -> Window | Dataset | None:
    """PS3.3 C.11.8: the Softcopy VOI LUT item for the image: a window, or a VOI LUT item."""
    item = _for_image(gsps.get("SoftcopyVOILUTSequence", ()), image_uid, frame)
    if item is None:
        return None
    if item.get("VOILUTSequence"):
        return item.VOILUTSequence[0]
    if "WindowCenter" not in item or "WindowWidth" not in item:
        return None
    function = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in VOI_FUNCTIONS:
        raise ValueError(f"VOI LUT Function {function!r} is not LINEAR, LINEAR_EXACT or SIGMOID")
    return Window(_first(item.WindowCenter), _first(item.WindowWidth), function)


def _first(value: object) -> float:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return float(value[0])
    return float(value)  # type: ignore[arg-type]


def _inverse(gsps: Dataset) -> bool:
    """PS3.3 C.11.6: Presentation LUT Shape INVERSE (the state's own LUT data is taken as a shape:
    a falling LUT inverts)."""
    shape = str(gsps.get("PresentationLUTShape", "") or "").upper()
    if shape:
        if shape not in ("IDENTITY", "INVERSE"):
            raise ValueError(f"Presentation LUT Shape {shape!r} is not IDENTITY or INVERSE")
        return shape == "INVERSE"
    sequence = gsps.get("PresentationLUTSequence")
    if sequence:
        data = sequence[0].LUTData
        values = list(data) if isinstance(data, Sequence) else [data]
        return len(values) > 1 and values[0] > values[-1]
    return False


def _rotation(gsps: Dataset) -> int:
    rotation = int(gsps.get("ImageRotation", 0) or 0)
    if rotation not in _ROTATIONS:
        raise ValueError(f"Image Rotation {rotation} is not 0, 90, 180 or 270")
    return rotation


def _displayed_area(gsps: Dataset, image_uid: str, frame: int) -> DisplayedArea | None:
    item = _for_image(gsps.get("DisplayedAreaSelectionSequence", ()), image_uid, frame)
    if item is None:
        return None
    tlhc = tuple(int(v) for v in item.DisplayedAreaTopLeftHandCorner)
    brhc = tuple(int(v) for v in item.DisplayedAreaBottomRightHandCorner)
    if len(tlhc) != 2 or len(brhc) != 2:
        raise ValueError("a displayed area corner does not have two values")
    mode = str(item.get("PresentationSizeMode", "SCALE TO FIT") or "SCALE TO FIT").upper()
    if mode not in _SIZE_MODES:
        raise ValueError(f"Presentation Size Mode {mode!r} is not one of {', '.join(_SIZE_MODES)}")
    aspect = 1.0
    if item.get("PresentationPixelSpacing"):
        row_spacing, column_spacing = (float(v) for v in item.PresentationPixelSpacing)
        aspect = row_spacing / column_spacing
    elif item.get("PresentationPixelAspectRatio"):
        vertical, horizontal = (float(v) for v in item.PresentationPixelAspectRatio)
        aspect = vertical / horizontal
    magnification = float(item.get("PresentationPixelMagnificationRatio", 1.0) or 1.0)
    if not (0.01 <= aspect <= 100 and 0 < magnification <= 64):
        raise ValueError("the presentation pixel aspect or magnification is out of range")
    return DisplayedArea((tlhc[0], tlhc[1]), (brhc[0], brhc[1]), mode, aspect, magnification)


def _shutter(gsps: Dataset) -> Shutter | None:
    """PS3.3 C.7.6.11 (Display Shutter) and C.7.6.15 (Bitmap Display Shutter) of the state."""
    shapes = gsps.get("ShutterShape")
    if not shapes:
        return None
    names = [str(v).upper() for v in (shapes if isinstance(shapes, Sequence) and not isinstance(shapes, str)
                                      else [shapes])]
    for name in names:
        if name not in _SHUTTER_SHAPES:
            raise ValueError(f"Shutter Shape {name!r} is not one of {', '.join(_SHUTTER_SHAPES)}")
    if "BITMAP" in names and len(names) > 1:
        raise ValueError("Shutter Shape BITMAP cannot be combined with other shapes")
    shutter = Shutter(value=_shutter_value(gsps))
    if "RECTANGULAR" in names:
        left, right = int(gsps.ShutterLeftVerticalEdge), int(gsps.ShutterRightVerticalEdge)
        upper, lower = int(gsps.ShutterUpperHorizontalEdge), int(gsps.ShutterLowerHorizontalEdge)
        if left > right or upper > lower:
            raise ValueError("the rectangular shutter's edges are crossed")
        shutter = replace(shutter, rectangle=(left, right, upper, lower))
    if "CIRCULAR" in names:
        centre = _integers(gsps.CenterOfCircularShutter)
        radius = int(gsps.RadiusOfCircularShutter)
        if len(centre) != 2 or radius < 0:
            raise ValueError("the circular shutter needs a centre (row, column) and a radius of 0 or more")
        shutter = replace(shutter, circle=(centre[0], centre[1], radius))
    if "POLYGONAL" in names:
        values = _integers(gsps.VerticesOfThePolygonalShutter)
        if len(values) % 2 or not 3 <= len(values) // 2 <= _MAX_SHUTTER_VERTICES:
            raise ValueError(f"the polygonal shutter needs 3 to {_MAX_SHUTTER_VERTICES} vertices (row, column)")
        shutter = replace(shutter, polygon=tuple(zip(values[0::2], values[1::2], strict=True)))
    if "BITMAP" in names:
        bits, origin = _bitmap(gsps)
        shutter = replace(shutter, bitmap=bits, bitmap_origin=origin)
    return shutter


def _shutter_value(gsps: Dataset) -> int:
    """The shutter's P-value: Shutter Presentation Value, else the L* of Shutter Presentation Color
    CIELab Value (a grayscale display shows lightness; PS3.3 C.10.7.1.1 scales L* 0-100 to 0-FFFFH),
    else black."""
    if gsps.get("ShutterPresentationValue") is not None:
        return int(gsps.ShutterPresentationValue) & 0xFFFF
    if gsps.get("ShutterPresentationColorCIELabValue") is not None:
        return int(gsps.ShutterPresentationColorCIELabValue[0]) & 0xFFFF
    return 0


def _bitmap(gsps: Dataset) -> tuple[np.ndarray, tuple[int, int]]:
    """PS3.3 C.7.6.15: the overlay plane of the state that Shutter Overlay Group names (C.9.2)."""
    group = int(gsps.ShutterOverlayGroup)
    if group not in _OVERLAY_GROUPS:
        raise ValueError(f"Shutter Overlay Group {group:04X} is not an overlay group (6000-601E, even)")
    if not _has_plane(gsps, group):
        raise ValueError(f"the state holds no Overlay Data in group {group:04X} for its bitmap shutter")
    return _overlay_plane(gsps, group, 1)


def _integers(value: object) -> list[int]:
    """A multi-valued integer attribute as a list (pydicom gives a single value bare)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [int(v) for v in value]
    return [] if value is None or value == "" else [int(value)]  # type: ignore[call-overload]


def _has_plane(ds: Dataset, group: int) -> bool:
    return (group << 16 | 0x3000) in ds


def _overlay_plane(ds: Dataset, group: int, frame: int) -> tuple[np.ndarray, tuple[int, int]]:
    """PS3.3 C.9.2: the bits of overlay group ``group`` for frame ``frame`` (a multi-frame plane
    starts at Image Frame Origin), and its Overlay Origin. ValueError when they are malformed."""
    rows, columns = int(ds[group << 16 | 0x0010].value), int(ds[group << 16 | 0x0011].value)
    if rows * columns > _MAX_OVERLAY_BITS:
        raise ValueError(f"overlay group {group:04X} of {rows} x {columns} bits is larger than this server draws")
    origin = _integers(ds[group << 16 | 0x0050].value)
    if len(origin) != 2:
        raise ValueError(f"Overlay Origin of group {group:04X} needs a row and a column")
    bits = np.asarray(ds.overlay_array(group))
    if bits.ndim == 3:
        first = ds.get(group << 16 | 0x0051)
        index = frame - (int(first.value) if first is not None and first.value not in (None, "") else 1)
        bits = bits[index] if 0 <= index < bits.shape[0] else np.zeros(bits.shape[1:], dtype=bits.dtype)
    return bits, (origin[0], origin[1])


def _activated(gsps: Dataset, shutter: Shutter | None) -> tuple[tuple[int, str], ...]:
    """PS3.3 C.11.7: the overlay groups the state shows, each with its Overlay Activation Layer (an
    empty one shows nothing); the plane a bitmap shutter uses is a shutter, not an overlay."""
    shutter_group = int(gsps.ShutterOverlayGroup) if shutter is not None and shutter.bitmap is not None else None
    activated = []
    for group in _OVERLAY_GROUPS:
        element = gsps.get(group << 16 | 0x1001)
        layer = str(element.value or "").strip() if element is not None else ""
        if layer and group != shutter_group:
            activated.append((group, layer))
    return tuple(activated)


def _image_overlays(image: Dataset, activated: Sequence[tuple[int, str]], frame: int) -> list[Overlay]:
    """The image's own overlay planes the state activates (absent ones are skipped: the state may
    name groups other images of its set hold)."""
    planes = []
    for group, layer in activated:
        if _has_plane(image, group):
            try:
                planes.append(Overlay(layer, *_overlay_plane(image, group, frame)))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise MalformedDicom(f"overlay group {group:04X} of the image cannot be drawn") from exc
    return planes


def _points(values: Sequence[float]) -> tuple[tuple[float, float], ...]:
    numbers = [float(v) for v in values]
    if len(numbers) % 2:
        raise ValueError("Graphic Data holds an odd number of values")
    return tuple(zip(numbers[0::2], numbers[1::2], strict=True))


def _point(values: object) -> tuple[float, float]:
    points = _points(values if isinstance(values, Sequence) else [values])  # type: ignore[list-item]
    if len(points) != 1:
        raise ValueError("a point does not have two values")
    return points[0]


def _layers(gsps: Dataset, image_uid: str, frame: int, activated: Sequence[tuple[int, str]]) -> tuple[Layer, ...]:
    """The graphic layers with the annotations that apply to the image (PS3.3 C.10.5, C.10.7), and
    those the activated overlays are shown in (C.11.7)."""
    declared = {str(item.GraphicLayer): item for item in gsps.get("GraphicLayerSequence", ())}
    graphics: dict[str, list[Graphic]] = {}
    texts: dict[str, list[Text]] = {}
    for item in gsps.get("GraphicAnnotationSequence", ()):
        references = item.get("ReferencedImageSequence")
        if references and not any(_applies(ref, image_uid, frame) for ref in references):
            continue
        name = str(item.GraphicLayer)
        for obj in item.get("GraphicObjectSequence", ()):
            kind = str(obj.GraphicType).upper()
            if kind not in _GRAPHIC_TYPES:
                raise ValueError(f"Graphic Type {kind!r} is not one of {', '.join(_GRAPHIC_TYPES)}")
            points = _points(obj.GraphicData)
            if len(points) < _MIN_POINTS[kind] or (kind in ("CIRCLE", "ELLIPSE") and len(points) != _MIN_POINTS[kind]):
                raise ValueError(f"a {kind} graphic has {len(points)} points")
            graphics.setdefault(name, []).append(Graphic(
                kind, str(obj.GraphicAnnotationUnits).upper(), points,
                str(obj.get("GraphicFilled", "N")).upper() == "Y"))
        for obj in item.get("TextObjectSequence", ()):
            box = None
            if obj.get("BoundingBoxTopLeftHandCorner") is not None:
                box = (_point(obj.BoundingBoxTopLeftHandCorner), _point(obj.BoundingBoxBottomRightHandCorner))
            anchor = _point(obj.AnchorPoint) if obj.get("AnchorPoint") is not None else None
            if box is None and anchor is None:
                raise ValueError("a text object has neither a bounding box nor an anchor point")
            texts.setdefault(name, []).append(Text(
                str(obj.get("UnformattedTextValue", "")), box,
                str(obj.get("BoundingBoxAnnotationUnits", "PIXEL")).upper(),
                str(obj.get("BoundingBoxTextHorizontalJustification", "LEFT") or "LEFT").upper(),
                anchor, str(obj.get("AnchorPointAnnotationUnits", "PIXEL")).upper(),
                str(obj.get("AnchorPointVisibility", "N")).upper() == "Y"))
    layers = []
    for name in dict.fromkeys([*graphics, *texts, *(layer for _group, layer in activated)]):
        item = declared.get(name)
        order = int(item.GraphicLayerOrder) if item is not None and "GraphicLayerOrder" in item else len(declared)
        layers.append(Layer(name, order, _layer_gray(item), tuple(graphics.get(name, ())), tuple(texts.get(name, ()))))
    return tuple(layers)


def _layer_gray(item: Dataset | None) -> int:
    """PS3.3 C.10.7.1.1: the recommended grayscale P-value (16 bits), else the CIELab L* of the
    recommended colour; white when the layer recommends nothing."""
    if item is None:
        return 255
    if item.get("GraphicLayerRecommendedDisplayGrayscaleValue") is not None:
        return int(item.GraphicLayerRecommendedDisplayGrayscaleValue) >> 8
    if item.get("GraphicLayerRecommendedDisplayCIELabValue") is not None:
        return int(item.GraphicLayerRecommendedDisplayCIELabValue[0]) >> 8
    return 255


# --- drawing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Mapping:
    """From annotation coordinates to output pixels: PIXEL units are image coordinates (0,0 the
    top left corner of the first pixel; PS3.3 C.10.5.1.2) and follow the displayed area, flip,
    rotation and scale; DISPLAY units are fractions of the displayed area as shown."""

    state: PresentationState
    rows: int
    columns: int
    width: int
    height: int

    def __call__(self, point: tuple[float, float], units: str) -> tuple[float, float]:
        if units == "DISPLAY":
            return point[0] * self.width, point[1] * self.height
        x0, y0, x1, y1 = self.state.area_box(self.rows, self.columns)
        area_w, area_h = x1 - x0 + 1, y1 - y0 + 1
        x, y = point[0] - (x0 - 1), point[1] - (y0 - 1)
        if self.state.flip:
            x = area_w - x
        if self.state.rotation == 90:
            x, y, area_w, area_h = area_h - y, x, area_h, area_w
        elif self.state.rotation == 180:
            x, y = area_w - x, area_h - y
        elif self.state.rotation == 270:
            x, y, area_w, area_h = y, area_w - x, area_h, area_w
        return x * self.width / area_w, y * self.height / area_h


def _draw_graphic(pen: ImageDraw.ImageDraw, graphic: Graphic, mapping: _Mapping,
                  colour: int | tuple[int, int, int], line: int) -> None:
    points: Sequence[tuple[float, float]] = graphic.points
    if graphic.kind == "POINT":
        dot = line + 1
        for point in points:
            x, y = mapping(point, graphic.units)
            pen.ellipse((x - dot, y - dot, x + dot, y + dot), fill=colour)
        return
    if graphic.kind == "INTERPOLATED":
        points = _curve(points)
    elif graphic.kind == "CIRCLE":
        (cx, cy), (px, py) = points
        radius = math.hypot(px - cx, py - cy)
        points = _conic((cx, cy), (radius, 0.0), (0.0, radius))
    elif graphic.kind == "ELLIPSE":
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = points
        centre = ((ax + bx) / 2, (ay + by) / 2)
        points = _conic(centre, ((bx - ax) / 2, (by - ay) / 2), ((dx - cx) / 2, (dy - cy) / 2))
    mapped = [mapping(point, graphic.units) for point in points]
    if graphic.filled and len(mapped) >= 3:
        pen.polygon(mapped, fill=colour, outline=colour)
    elif len(mapped) >= 2:
        pen.line(mapped, fill=colour, width=line, joint="curve")


def _curve(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A Catmull-Rom curve through ``points`` (INTERPOLATED: a curve through the vertices)."""
    if len(points) < 3:
        return list(points)
    closed = points[0] == points[-1]
    padded = [points[-2] if closed else points[0], *points, points[1] if closed else points[-1]]
    out = [points[0]]
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        for step in range(1, _CURVE_STEPS + 1):
            t = step / _CURVE_STEPS
            t2, t3 = t * t, t * t * t
            out.append(tuple(  # type: ignore[arg-type]
                0.5 * (2 * p1[k] + (p2[k] - p0[k]) * t + (2 * p0[k] - 5 * p1[k] + 4 * p2[k] - p3[k]) * t2
                       + (3 * p1[k] - p0[k] - 3 * p2[k] + p3[k]) * t3) for k in (0, 1)))
    return out


def _conic(centre: tuple[float, float], major: tuple[float, float], minor: tuple[float, float]
           ) -> list[tuple[float, float]]:
    """Points around the ellipse of half-axes ``major`` and ``minor`` (vectors), closed."""
    out = []
    for step in range(_CONIC_STEPS + 1):
        angle = 2 * math.pi * step / _CONIC_STEPS
        c, s = math.cos(angle), math.sin(angle)
        out.append((centre[0] + major[0] * c + minor[0] * s, centre[1] + major[1] * c + minor[1] * s))
    return out


def _draw_text(pen: ImageDraw.ImageDraw, text: Text, mapping: _Mapping,
               colour: int | tuple[int, int, int], image: Image.Image) -> None:
    """The text in its bounding box (justified as asked), else beside its anchor; a visible anchor
    is joined to the box by a line (PS3.3 C.10.5.1.1)."""
    size = annotation.font_pixels(image.width, image.height)
    anchor = mapping(text.anchor, text.anchor_units) if text.anchor else None
    if text.box:
        (ax, ay), (bx, by) = (mapping(corner, text.box_units) for corner in text.box)
        left, top, right, bottom = min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)
    elif anchor:
        left, top = anchor[0] + size / 2, anchor[1] + size / 2
        right, bottom = image.width, image.height
    body = text.text.replace("\r\n", "\n").replace("\r", "\n")
    if text.box:  # the largest size at which the text fits its box, within the annotation font's bounds
        size = max(6, min(48, int((bottom - top) / (1.25 * (body.count("\n") + 1)))))
    font = annotation.font_for(body, size)
    width = pen.multiline_textbbox((0, 0), body, font=font)[2]
    while text.box and size > 6 and width > right - left:
        size -= max(1, size // 8)
        font = annotation.font_for(body, size)
        width = pen.multiline_textbbox((0, 0), body, font=font)[2]
    black = 0 if image.mode == "L" else (0, 0, 0)
    x = left
    if text.box and text.justification == "RIGHT":
        x = right - width
    elif text.box and text.justification == "CENTER":
        x = (left + right - width) / 2
    pen.multiline_text((x, top), body, font=font, fill=colour, stroke_width=max(1, size // 10), stroke_fill=black)
    if text.anchor_visible and anchor and text.box:
        corner = (min(max(anchor[0], left), right), min(max(anchor[1], top), bottom))
        pen.line([corner, anchor], fill=colour, width=1)
