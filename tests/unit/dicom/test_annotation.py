"""Burned-in annotation: the text chosen, names in any character set drawn as glyphs, legible on any background."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.data import get_charset_files, get_testdata_file

from xdsi.dicom import annotation
from xdsi.dicom.annotation import Annotation, annotation_for, burn, font_at, parse_kinds
from xdsi.errors import InvalidRequest


def _charset_file(name: str) -> pydicom.Dataset:
    [path] = [f for f in get_charset_files() if f.endswith(f"/{name}")]
    return pydicom.dcmread(path)


def _mask(text: str, size: int = 32) -> np.ndarray:
    font = font_at(size)
    image = Image.new("L", (size * 2, size * 2))
    ImageDraw.Draw(image).text((size // 2, size // 4), text, font=font, fill=255)
    return np.asarray(image) > 127


def test_parse_kinds_keeps_the_standard_order_and_refuses_others() -> None:
    assert parse_kinds("technique, patient") == ("patient", "technique")
    assert parse_kinds("PATIENT") == ("patient",)
    with pytest.raises(InvalidRequest, match="'banner' is not one of patient, technique"):
        parse_kinds("patient,banner")


def test_patient_and_technique_lines() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    text = annotation_for(ds, ("patient", "technique"), window=(40, 400))
    assert text.top == ("CompressedSamples CT1", "ID 1CT1", "O")
    assert text.bottom == ("CT 2004-01-19", "Se 1 Im 1", "W 400 L 40")
    assert annotation_for(ds, ("technique",)).top == ()


@pytest.mark.parametrize(("name", "expected"), [
    ("chrH31.dcm", "Yamada Tarou = 山田 太郎 = やまだ たろう"),  # ISO 2022 IR 87
    ("chrI2.dcm", "Hong Gildong = 洪 吉洞 = 홍 길동"),  # ISO 2022 IR 149
    ("chrX2.dcm", "Wang XiaoDong = 王 小东"),  # GB18030
    ("chrX1.dcm", "Wang XiaoDong = 王 小東"),  # ISO_IR 192
    ("chrGreek.dcm", "Διονυσιος"),  # ISO_IR 126
    ("chrRuss.dcm", "Люкceмбypг"),  # ISO_IR 144
])
def test_names_in_any_character_set_are_drawn_as_glyphs_not_boxes(name: str, expected: str) -> None:
    ds = _charset_file(name)
    [line, *_] = annotation_for(ds, ("patient",)).top
    assert line == expected
    notdef = _mask("\U0010fffd")  # a private-use code point no font has: the font's .notdef box
    assert notdef.any()
    for char in set(line) - set(" ="):
        glyph = _mask(char)
        assert glyph.any() and not np.array_equal(glyph, notdef), f"{char!r} is drawn as the missing-glyph box"


def test_a_japanese_name_differs_from_its_tofu_rendering() -> None:
    """The kanji of the name, drawn, against as many missing-glyph boxes in the same places."""
    ideographic = annotation_for(_charset_file("chrH31.dcm"), ("patient",)).top[0].split(" = ")[1]
    assert ideographic == "山田 太郎"
    tofu = "".join(" " if char == " " else "\U0010fffd" for char in ideographic)
    drawn, boxes = Image.new("L", (200, 40)), Image.new("L", (200, 40))
    ImageDraw.Draw(drawn).text((2, 2), ideographic, font=font_at(24), fill=255)
    ImageDraw.Draw(boxes).text((2, 2), tofu, font=font_at(24), fill=255)
    difference = np.asarray(drawn).astype(int) - np.asarray(boxes).astype(int)
    assert np.abs(difference).sum() > 255 * 50


@pytest.mark.parametrize("background", [0, 255, 128])
def test_burned_text_is_legible_on_any_background(background: int) -> None:
    image = Image.new("L", (256, 256), background)
    burn(image, Annotation(("山田 太郎",), ("CT",)))
    pixels = np.asarray(image)
    top = pixels[:40, :140]
    # White glyphs with a black outline: both extremes are present whatever lies beneath.
    assert (top > 200).sum() > 20 and (top < 40).sum() > 20
    bottom = pixels[-40:, :60]
    assert (bottom > 200).sum() > 5 and (bottom < 40).sum() > 5
    assert (pixels[100:150, 100:150] == background).all()  # nothing drawn in the middle


def test_rgb_images_are_annotated_too() -> None:
    image = Image.new("RGB", (128, 128), (10, 200, 30))
    burn(image, Annotation(("Doe John",)))
    pixels = np.asarray(image)[:30, :100]
    assert (pixels > 200).all(axis=2).any() and (pixels < 40).all(axis=2).any()


def test_a_charset_limits_the_text_to_what_it_can_write() -> None:
    ds = _charset_file("chrH31.dcm")
    assert annotation_for(ds, ("patient",), charset="iso-8859-1").top[0] == "Yamada Tarou = ?? ?? = ??? ???"
    assert annotation_for(ds, ("patient",), charset="iso2022_jp").top[0] == "Yamada Tarou = 山田 太郎 = やまだ たろう"


def test_font_sizes_follow_the_image() -> None:
    assert annotation.font_pixels(64, 64) == 11
    assert annotation.font_pixels(512, 1024) == 25
    assert annotation.font_pixels(4096, 4096) == 48
