"""The grayscale pipeline of PS3.3 C.11 as one function from stored values to 8-bit display values:
Modality LUT (C.11.1), VOI LUT or window (C.11.2), then the Presentation LUT shape (C.11.6).

For integer pixels the commonest pipelines (a rescale, a LINEAR or LINEAR_EXACT window or none, either
Presentation LUT shape) are one straight line, evaluated in float32 in two passes. Any other, of pixels
of up to 16 bits, is evaluated once per distinct value in the frame's range and applied as a uint8
lookup table: a 2k x 2k CR with a sigmoid or a VOI LUT then costs one ``np.take``, instead of several
float passes over four million pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence

from xdsi.errors import InvalidRequest, MalformedDicom

VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
VOI_FUNCTIONS: tuple[VoiFunction, ...] = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_TABLE_SPAN = 1 << 17  # value ranges up to this wide are rendered through a lookup table
_Y_MAX = 255.0


@dataclass(frozen=True)
class Window:
    """A window (PS3.3 C.11.2.1.2): centre and width in modality output units, and its function."""

    center: float
    width: float
    function: VoiFunction = "LINEAR"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise InvalidRequest("window centre and width must be finite numbers")
        # PS3.3 C.11.2.1.2.1: LINEAR needs a width of at least 1; the others, above 0.
        if self.function == "LINEAR" and self.width < 1:
            raise InvalidRequest(f"window width {self.width:g} is below 1, which LINEAR windows need")
        if self.width <= 0:
            raise InvalidRequest(f"window width {self.width:g} must be above 0")
        if self.function not in VOI_FUNCTIONS:
            raise InvalidRequest(f"VOI LUT function {self.function!r} is not one of {', '.join(VOI_FUNCTIONS)}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Display values 0..255 (float) for modality values ``x``."""
        c, w = self.center, self.width
        if self.function == "LINEAR":
            # PS3.3 C.11.2.1.2.1: the half-sample offsets keep integer inputs centred in their bins.
            y = ((x - (c - 0.5)) / (w - 1) + 0.5) * _Y_MAX if w > 1 else np.where(x > c - 0.5, _Y_MAX, 0.0)
            return np.clip(y, 0.0, _Y_MAX)
        if self.function == "LINEAR_EXACT":
            # PS3.3 C.11.2.1.3.2
            return np.clip(((x - c) / w + 0.5) * _Y_MAX, 0.0, _Y_MAX)
        # PS3.3 C.11.2.1.3.1: SIGMOID
        return _Y_MAX / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700.0, 700.0)))


@dataclass(frozen=True)
class Grayscale:
    """What maps one frame's stored values to display values: its Modality LUT attributes (in
    ``frame``), the VOI chosen, and whether the Presentation LUT inverts."""

    frame: Dataset
    window: Window | None
    voi_lut: Dataset | None
    inverse: bool

    def to_display(self, stored: np.ndarray, whole: np.ndarray | None = None) -> np.ndarray:
        """uint8 display values of ``stored``, a frame as decoded (any integer or float type) or a
        part of it; ``whole`` is the frame ``stored`` was cut from, whose range a frame without
        any VOI is stretched over (so a region shows as it does in the whole image)."""
        whole = stored if whole is None else whole
        if not stored.size:
            return stored.astype(np.uint8)
        low, high = whole.min(), whole.max()
        if stored.dtype.kind in "iu":
            line = self._line(float(low), float(high))
            if line is not None:
                return _on_line(stored, *line)
            if int(high) - int(low) < _TABLE_SPAN:
                # Every value of the frame's range is in the table, so its range is the table's own.
                table = self._display(np.arange(int(low), int(high) + 1, dtype=np.int64))
                index = stored - stored.dtype.type(low)
                if index.dtype.kind == "i":
                    # The differences lie in 0..span: wrapped into a narrow signed type, read unsigned.
                    index = index.view(index.dtype.str.replace("i", "u"))
                return np.take(table, index)
        return self._display(stored, np.array([low, high], dtype=np.float64))

    def _line(self, low: float, high: float) -> tuple[float, float] | None:
        """``(a, b)`` when the whole pipeline is display = a * stored + b before clipping (a Rescale
        Slope/Intercept, a LINEAR or LINEAR_EXACT window or none, either Presentation LUT shape) and
        float32 holds it to well under half a display level over ``low``..``high``; None otherwise.

        The commonest images (CT, MR, CR with a window) then cost two float32 passes instead of a
        table built per frame and a gather, which numpy runs with 64-bit indices.
        """
        if self.voi_lut is not None or self._rescale is None:
            return None
        slope, intercept = self._rescale
        window = self.window
        if window is None:
            ends = sorted((slope * low + intercept, slope * high + intercept))
            if not ends[1] > ends[0]:
                return None
            a, b = _Y_MAX / (ends[1] - ends[0]), -ends[0] * _Y_MAX / (ends[1] - ends[0])
        elif window.function == "LINEAR" and window.width > 1:
            # PS3.3 C.11.2.1.2.1, the function of Window.apply written as a line.
            a = _Y_MAX / (window.width - 1)
            b = (0.5 - (window.center - 0.5) / (window.width - 1)) * _Y_MAX
        elif window.function == "LINEAR_EXACT":
            a, b = _Y_MAX / window.width, (0.5 - window.center / window.width) * _Y_MAX
        else:
            return None
        a, b = a * slope, a * intercept + b
        if self.inverse:
            a, b = -a, _Y_MAX - b
        # float32 keeps 24 bits: values within 2^14 are exact to 2^-10 of a level.
        largest = max(abs(a * low + b), abs(a * high + b), abs(b))
        return (a, b) if math.isfinite(largest) and largest < (1 << 14) else None

    @cached_property
    def _rescale(self) -> tuple[float, float] | None:
        """The Modality LUT as a line, slope and intercept ((1, 0) without one); None for a Modality LUT
        Sequence or unusable values. Read once: a header's own pipeline serves all its renderings."""
        if "ModalityLUTSequence" in self.frame:
            return None
        if not _has_modality(self.frame):
            return 1.0, 0.0
        try:
            return float(self.frame.RescaleSlope), float(self.frame.RescaleIntercept)
        except (TypeError, ValueError):
            return None

    def _display(self, values: np.ndarray, ends: np.ndarray | None = None) -> np.ndarray:
        """Display values; ``ends`` are stored values whose modality values bound the frame's
        range (None: ``values`` hold the whole range)."""
        if _has_modality(self.frame):
            modality = np.asarray(apply_modality_lut(values, self.frame), dtype=np.float64)
            if ends is not None:
                ends = np.asarray(apply_modality_lut(ends, self.frame), dtype=np.float64)
        else:
            modality = np.asarray(values, dtype=np.float64)
        ends = modality if ends is None else ends
        if self.window is not None:
            y = self.window.apply(modality)
        elif self.voi_lut is not None:
            y = _apply_voi_lut(modality, self.voi_lut)
        else:
            y = _full_range(modality, float(ends.min()), float(ends.max()))
        if self.inverse:
            y = _Y_MAX - y
        return np.rint(y).astype(np.uint8)


def grayscale(ds: Dataset, frame_index: int, photometric: str, *, window: Window | None = None,
              inverse: bool | None = None) -> Grayscale:
    """The grayscale pipeline of frame ``frame_index`` (0-based) of ``ds``.

    VOI: ``window`` if given (a request's or a presentation state's), else the object's first
    window with its VOI LUT Function, else its first VOI LUT, else the frame's full range.
    ``inverse``: a presentation state's Presentation LUT Shape; None takes the image's own,
    INVERSE for MONOCHROME1 (PS3.3 C.7.6.3.1.2, C.11.6.1).
    """
    frame = frame_attributes(ds, frame_index)
    voi_lut = None
    if window is None:
        window = object_window(frame)
        if window is None:
            items = frame.get("VOILUTSequence")
            voi_lut = items[0] if items else None
    if inverse is None:
        shape = str(frame.get("PresentationLUTShape") or "").strip().upper()
        inverse = shape == "INVERSE" if shape in ("INVERSE", "IDENTITY") else photometric == "MONOCHROME1"
    return Grayscale(frame, window, voi_lut, inverse)


def object_window(frame: Dataset) -> Window | None:
    """The first Window Center/Width of the object (or frame), with its VOI LUT Function; None if
    there is none or it is unusable (a stored width of 0 is ignored, not an error)."""
    centers, widths = frame.get("WindowCenter"), frame.get("WindowWidth")
    if centers is None or widths is None or centers == "" or widths == "":
        return None
    center = _first(centers)
    width = _first(widths)
    function = str(frame.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in VOI_FUNCTIONS:
        function = "LINEAR"  # PS3.3 C.11.2.1.3: LINEAR when absent; unknown terms are read as it
    try:
        return Window(center, width, function)  # type: ignore[arg-type]
    except InvalidRequest:
        return None


def frame_attributes(ds: Dataset, frame_index: int) -> Dataset:
    """``ds`` with the Pixel Value Transformation and Frame VOI LUT of one frame's functional groups
    (PS3.3 C.7.6.16) lifted to the top level, where the single-frame modules keep them."""
    shared = _item(ds.get("SharedFunctionalGroupsSequence"), 0)
    per_frame = _item(ds.get("PerFrameFunctionalGroupsSequence"), frame_index)
    if shared is None and per_frame is None:
        return ds
    view = Dataset()
    for tag in ds.keys():  # noqa: SIM118 - a top-level copy that leaves deferred values deferred
        view.add(ds.get_item(tag, keep_deferred=True))
    for groups in (shared, per_frame):
        for keyword in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            item = _item(groups.get(keyword) if groups is not None else None, 0)
            if item is not None:
                for element in item:
                    view[element.tag] = element
    return view


def _item(items: Sequence | None, index: int) -> Dataset | None:
    return items[index] if items is not None and 0 <= index < len(items) else None


def _first(value: object) -> float:
    """The first of a DS value (PS3.3 C.11.2.1.2: several values are alternative windows)."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise MalformedDicom(f"window value {str(value)[:32]!r} is not a number") from exc


def _has_modality(ds: Dataset) -> bool:
    return "ModalityLUTSequence" in ds or ("RescaleSlope" in ds and "RescaleIntercept" in ds)


def _apply_voi_lut(x: np.ndarray, item: Dataset) -> np.ndarray:
    """PS3.3 C.11.2.1.1: values below the first mapped one take the first entry, above the last
    the last; the LUT's nominal depth (LUT Descriptor value 3) scales it to 0..255."""
    try:
        entries, first, depth = (int(v) for v in item.LUTDescriptor)
        data = np.asarray(item.LUTData, dtype=np.float64).ravel()
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedDicom("the VOI LUT Sequence item lacks a usable LUT Descriptor or LUT Data") from exc
    entries = entries or 65536  # PS3.3 C.11.2.1.1: 0 means 2^16 entries
    if data.size == 0:
        raise MalformedDicom("the VOI LUT Sequence item has no LUT Data")
    if first > 32767 and x.min() < 0:
        first -= 65536  # a signed first mapped value written as US (PS3.3 C.11.2.1.1 allows SS)
    index = np.clip(np.rint(x) - first, 0, min(entries, data.size) - 1).astype(np.intp)
    top = float((1 << depth) - 1) if 8 <= depth <= 16 else max(float(data.max()), 1.0)
    return np.clip(data[index] * (_Y_MAX / top), 0.0, _Y_MAX)


def _on_line(stored: np.ndarray, a: float, b: float) -> np.ndarray:
    """uint8 of a * stored + b, clipped to 0..255 and rounded half to even as the table is."""
    y = np.multiply(stored, np.float32(a), dtype=np.float32)
    np.add(y, np.float32(b), out=y)
    np.clip(y, 0.0, _Y_MAX, out=y)
    np.rint(y, out=y)
    return y.astype(np.uint8)


def _full_range(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """No VOI at all: the frame's range of modality values, ``low`` to ``high``, over 0..255."""
    if high <= low:
        return np.zeros_like(x)
    return np.clip((x - low) * (_Y_MAX / (high - low)), 0.0, _Y_MAX)
