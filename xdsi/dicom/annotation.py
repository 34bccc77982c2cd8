"""Burned-in annotation (PS3.18 8.3.5.1.x / 9.1.2.1 ``annotation``): patient and technique text drawn
onto the 8-bit rendered image, in a font that covers every script a DICOM name may be written in.

Pillow's bundled font covers Latin only: a Japanese, Chinese or Korean name would come out as
boxes. Noto Sans CJK (shipped by the ``noto-cjk-sans-jp-regular`` package, SIL OFL) covers Latin,
Greek, Cyrillic, kana, the CJK ideographs and Hangul, so every name pydicom decodes from any
Specific Character Set (ISO 2022 IR 87/159/149, GB18030, GBK, ISO_IR 192, the ISO 8859 family)
is drawn as glyphs. Text is white with a black outline, legible on any background.

Arabic and Hebrew (ISO_IR 127, ISO_IR 138, or UTF-8) are not in Noto Sans CJK. A line holding
them is drawn in DejaVu Sans (Debian ``fonts-dejavu-core``; Pillow finds it among the system's
fonts), which has Latin, Hebrew and Arabic with its joining forms, laid out by libraqm (bundled
in Pillow's wheels): the Unicode bidirectional algorithm puts right-to-left text in reading order
and HarfBuzz joins the Arabic letters. Without that font such a line falls back to Noto Sans CJK,
and its Arabic or Hebrew letters come out as missing-glyph boxes (a warning says so, once).
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from io import BytesIO

from PIL import Image, ImageDraw, ImageFont, features
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from xdsi.errors import InvalidRequest

PATIENT = "patient"
TECHNIQUE = "technique"
# PS3.18 Table 8.3.5-1 (annotation): the two values the standard names.
KINDS = (PATIENT, TECHNIQUE)

_FONT_PACKAGE = "noto_cjk_sans_jp_regular"
_FONT_FILE = "NotoSansCJKjp-Regular.otf"
# A system font with Latin, Hebrew and Arabic: Debian fonts-dejavu-core.
RTL_FONT_FILE = "DejaVuSans.ttf"
# The Hebrew and Arabic blocks and their presentation forms (Unicode 15, chapters 9.1-9.2).
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_log = logging.getLogger(__name__)
_MIN_FONT_PIXELS = 11
_MAX_FONT_PIXELS = 48


def parse_kinds(text: str) -> tuple[str, ...]:
    """``annotation=patient,technique`` as the kinds asked for, in the standard's order.

    An unknown value is a client error naming it (PS3.18 8.3.5.1.1 lists only these two).
    """
    asked = []
    for part in text.split(","):
        kind = part.strip().lower()
        if kind not in KINDS:
            raise InvalidRequest(f"annotation value {part.strip()[:40]!r} is not one of {', '.join(KINDS)}")
        asked.append(kind)
    return tuple(kind for kind in KINDS if kind in asked)


@dataclass(frozen=True)
class Annotation:
    """The lines to burn in: patient lines at the top left, technique lines at the bottom left."""

    top: tuple[str, ...] = ()
    bottom: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.top or self.bottom)


def annotation_for(ds: Dataset, kinds: Iterable[str], *, window: tuple[float, float] | None = None,
                   frame: int | None = None, charset: str | None = None) -> Annotation:
    """The text of ``kinds`` for ``ds``; ``window`` is the centre and width the image was rendered with.

    ``charset`` (a Python codec name) limits the text to what that character set can write:
    characters outside it become '?', as they would in a text answer in that charset.
    """
    kinds = set(kinds)
    top: list[str] = []
    bottom: list[str] = []
    if PATIENT in kinds:
        top += [
            _name(ds.get("PatientName")),
            _joined("ID", ds.get("PatientID")),
            " ".join(part for part in (_date(ds.get("PatientBirthDate")), _text(ds.get("PatientSex"))) if part),
        ]
    if TECHNIQUE in kinds:
        numbers = [_joined("Se", ds.get("SeriesNumber")), _joined("Im", ds.get("InstanceNumber"))]
        if frame is not None and int(ds.get("NumberOfFrames") or 1) > 1:
            numbers.append(f"Fr {frame}")
        bottom += [
            " ".join(part for part in (_text(ds.get("Modality")), _date(ds.get("StudyDate"))) if part),
            " ".join(part for part in numbers if part),
        ]
        if window is not None:
            bottom.append(f"W {_number(window[1])} L {_number(window[0])}")
    lines_top = tuple(_in_charset(line, charset) for line in top if line)
    lines_bottom = tuple(_in_charset(line, charset) for line in bottom if line)
    return Annotation(lines_top, lines_bottom)


def burn(image: Image.Image, annotation: Annotation) -> Image.Image:
    """``image`` (mode L or RGB, 8 bits) with the annotation drawn on it, in place."""
    if not annotation:
        return image
    size = font_pixels(image.width, image.height)
    draw = ImageDraw.Draw(image)
    white, black = (255, 0) if image.mode == "L" else ((255, 255, 255), (0, 0, 0))
    stroke = max(1, size // 10)
    margin = max(2, size // 3)
    step = size + size // 4 + stroke
    y = margin
    for line in annotation.top:
        draw.text((margin, y), line, font=font_for(line, size), fill=white, stroke_width=stroke, stroke_fill=black)
        y += step
    y = image.height - margin - step * len(annotation.bottom)
    for line in annotation.bottom:
        draw.text((margin, y), line, font=font_for(line, size), fill=white, stroke_width=stroke, stroke_fill=black)
        y += step
    return image


def font_for(line: str, pixels: int) -> ImageFont.FreeTypeFont:
    """The font that has the glyphs of ``line``: the right-to-left one for Hebrew or Arabic text
    (when it and libraqm are there), else Noto Sans CJK."""
    if _RTL.search(line):
        rtl = rtl_font_at(pixels)
        if rtl is not None:
            return rtl
    return font_at(pixels)


@lru_cache(maxsize=16)
def rtl_font_at(pixels: int) -> ImageFont.FreeTypeFont | None:
    """DejaVu Sans at ``pixels`` size with libraqm layout; None (and a warning) without either:
    Pillow's basic layout would draw Arabic unjoined and both scripts left to right."""
    if not features.check("raqm"):
        _log.warning("Pillow has no libraqm here: Arabic and Hebrew names are burned in with Noto Sans CJK, "
                     "as missing-glyph boxes")
        return None
    try:
        return ImageFont.truetype(RTL_FONT_FILE, pixels, layout_engine=ImageFont.Layout.RAQM)
    except OSError:
        _log.warning("font %s not found (Debian: fonts-dejavu-core): Arabic and Hebrew names are burned in "
                     "with Noto Sans CJK, as missing-glyph boxes", RTL_FONT_FILE)
        return None


def font_pixels(width: int, height: int) -> int:
    """A text size readable on the image and small beside it: 1/20 of its shorter side, bounded
    (below 11 pixels an ideograph's strokes merge)."""
    return max(_MIN_FONT_PIXELS, min(_MAX_FONT_PIXELS, min(width, height) // 20))


@lru_cache(maxsize=16)
def font_at(pixels: int) -> ImageFont.FreeTypeFont:
    """The annotation font at ``pixels`` size, loaded from its package (once per size)."""
    source = resources.files(_FONT_PACKAGE).joinpath(_FONT_FILE)
    try:
        with resources.as_file(source) as path:
            if path.is_file():  # an installed wheel: FreeType reads the file where it lies
                return ImageFont.truetype(str(path), pixels)
    except FileNotFoundError:
        pass
    return ImageFont.truetype(BytesIO(source.read_bytes()), pixels)


def _name(value: object) -> str:
    """A Person Name as people write it: components in order, groups (alphabetic, ideographic,
    phonetic; PS3.5 6.2.1.1) side by side."""
    if not value:
        return ""
    name = value if isinstance(value, PersonName) else PersonName(str(value))
    groups = [name.alphabetic, name.ideographic, name.phonetic]
    shown = [" ".join(part for part in group.split("^") if part) for group in groups if group]
    return " = ".join(part for part in shown if part)


def _date(value: object) -> str:
    text = _text(value)
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _joined(label: str, value: object) -> str:
    text = _text(value)
    return f"{label} {text}" if text else ""


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _number(value: float) -> str:
    return f"{value:g}"


def _in_charset(line: str, charset: str | None) -> str:
    if charset is None:
        return line
    codec = codecs.lookup(charset).name
    return line.encode(codec, errors="replace").decode(codec, errors="replace")

