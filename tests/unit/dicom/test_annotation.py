"""Burned-in annotation: the text chosen, names in any character set drawn as glyphs, legible on any background."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont, features
from pydicom.data import get_charset_files, get_testdata_file

from xdsi.dicom import annotation
from xdsi.dicom.annotation import Annotation, annotation_for, burn, font_at, font_for, parse_kinds, rtl_font_at
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


ARABIC = "قباني لنزار"  # chrArab.dcm, ISO_IR 127
HEBREW = "שרון דבורה"  # chrHbrw.dcm, ISO_IR 138


def _drawn(text: str, font: ImageFont.FreeTypeFont, width: int = 240) -> np.ndarray:
    image = Image.new("L", (width, 48))
    ImageDraw.Draw(image).text((4, 4), text, font=font, fill=255)
    return np.asarray(image).astype(int)


def _rtl(size: int = 32) -> ImageFont.FreeTypeFont:
    font = rtl_font_at(size)
    assert font is not None, "DejaVu Sans (fonts-dejavu-core) and libraqm are needed for right-to-left names"
    return font


def test_this_pillow_lays_out_with_raqm() -> None:
    assert features.check("raqm")


@pytest.mark.parametrize(("name", "expected"), [("chrArab.dcm", ARABIC), ("chrHbrw.dcm", HEBREW)])
def test_arabic_and_hebrew_names_are_drawn_as_glyphs_not_boxes(name: str, expected: str) -> None:
    [line, *_] = annotation_for(_charset_file(name), ("patient",)).top
    assert line == expected
    font = font_for(line, 32)
    assert font.path == _rtl().path
    notdef = _drawn("\U0010fffd", font)
    for char in set(line) - {" "}:
        glyph = _drawn(char, font)
        assert glyph.any() and not np.array_equal(glyph, notdef), f"{char!r} is drawn as the missing-glyph box"
    # the same line in the CJK font, which lacks these scripts: boxes, and a different picture
    boxes = _drawn(line, font_at(32))
    assert np.abs(_drawn(line, font) - boxes).sum() > 255 * 200


def test_arabic_letters_are_joined() -> None:
    """Shaped, the letters of a word take their joining forms: the word is narrower than its
    letters set apart, and its picture is not theirs side by side."""
    font = _rtl()
    for word in ARABIC.split():
        assert font.getlength(word) < 0.9 * sum(font.getlength(char) for char in word), word
    isolated = "\u200c".join(ARABIC.split()[0])  # zero-width non-joiners keep each letter alone
    assert np.abs(_drawn(ARABIC.split()[0], font) - _drawn(isolated, font)).sum() > 255 * 50


def test_hebrew_is_drawn_right_to_left() -> None:
    """Laid out by the bidirectional algorithm, the first letter is at the right: the picture is
    that of the letters reversed in left-to-right order, not that of their stored order."""
    word = HEBREW.split()[0]
    font = _rtl()
    basic = ImageFont.truetype(font.path, 32, layout_engine=ImageFont.Layout.BASIC)
    bidi = _drawn(word, font)
    assert np.abs(bidi - _drawn(word[::-1], basic)).mean() < 1.0
    assert np.abs(bidi - _drawn(word, basic)).sum() > 255 * 50


def test_other_lines_keep_the_cjk_font() -> None:
    assert font_for("Yamada Tarou = 山田 太郎", 24) is font_at(24)
    assert font_for("ID 1CT1", 24) is font_at(24)


def test_burned_arabic_name_differs_from_its_boxes() -> None:
    ds = _charset_file("chrArab.dcm")
    text = annotation_for(ds, ("patient",))
    drawn = burn(Image.new("L", (256, 256)), text)
    with_boxes = Image.new("L", (256, 256))
    ImageDraw.Draw(with_boxes).text((4, 4), text.top[0], font=font_at(annotation.font_pixels(256, 256)), fill=255)
    top = np.asarray(drawn)[:20, :200].astype(int)
    assert (top > 200).sum() > 40
    assert np.abs(top - np.asarray(with_boxes)[:20, :200].astype(int)).sum() > 255 * 40


def test_without_the_rtl_font_arabic_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(annotation, "RTL_FONT_FILE", "NoSuchFont-xdsi.ttf")
    rtl_font_at.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="xdsi.dicom.annotation"):
            assert font_for(ARABIC, 17) is font_at(17)
        assert "fonts-dejavu-core" in caplog.text
    finally:
        rtl_font_at.cache_clear()
