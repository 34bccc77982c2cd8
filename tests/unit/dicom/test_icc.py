"""The named colour spaces' ICC profiles and transforms, checked against the published
definitions: colorants and tone curves from the Adobe RGB (1998) and ROMM RGB (ISO 22028-2)
specifications, pixel values from a numpy computation with their published matrices."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms

from xdsi.dicom import icc

# IEC 61966-2-1: linear sRGB to XYZ (D65).
SRGB_TO_XYZ_D65 = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
# Adobe RGB (1998) Color Image Encoding 4.3.1.1: XYZ (D65) to linear Adobe RGB.
XYZ_D65_TO_ADOBE = np.array([[2.04159, -0.56501, -0.34473], [-0.96924, 1.87597, 0.04156],
                             [0.01344, -0.11836, 1.01517]])
# Bradford D65 to D50 (ICC.1 Annex E, as tabulated by Lindbloom).
D65_TO_D50 = np.array([[1.0478112, 0.0228866, -0.0501270], [0.0295424, 0.9904844, -0.0170491],
                       [-0.0092345, 0.0150436, 0.7521316]])
# ISO 22028-2 5.2: XYZ (D50) to linear ROMM RGB.
XYZ_D50_TO_ROMM = np.array([[1.3460, -0.2556, -0.0511], [-0.5446, 1.5082, 0.0205], [0.0, 0.0, 1.2123]])
# D50-adapted colorants (columns R, G, B) as the specifications publish them.
ADOBE_COLORANTS_D50 = np.array([[0.6097, 0.2053, 0.1492], [0.3111, 0.6257, 0.0632], [0.0195, 0.0609, 0.7446]])
ROMM_COLORANTS_D50 = np.array([[0.7977, 0.1352, 0.0313], [0.2880, 0.7119, 0.0001], [0.0, 0.0, 0.8249]])

# pure sRGB red, green, blue, white, black and 50 % gray
SAMPLES = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128]],
                   dtype=np.uint8)


def srgb_linear(values: np.ndarray) -> np.ndarray:
    c = values / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def adobe_linear(srgb: np.ndarray) -> np.ndarray:
    return np.clip(srgb_linear(srgb) @ SRGB_TO_XYZ_D65.T @ XYZ_D65_TO_ADOBE.T, 0, 1)


def adobe_decode(encoded: np.ndarray) -> np.ndarray:
    return (encoded / 255.0) ** (563 / 256)


def romm_linear(srgb: np.ndarray) -> np.ndarray:
    return np.clip(srgb_linear(srgb) @ SRGB_TO_XYZ_D65.T @ D65_TO_D50.T @ XYZ_D50_TO_ROMM.T, 0, 1)


def romm_decode(encoded: np.ndarray) -> np.ndarray:
    c = encoded / 255.0
    return np.where(c < 16 / 512, c / 16, c ** 1.8)


def expected_adobe(srgb: np.ndarray) -> np.ndarray:
    return adobe_linear(srgb) ** (256 / 563) * 255


def expected_romm(srgb: np.ndarray) -> np.ndarray:
    linear = romm_linear(srgb)
    return np.where(linear < 1 / 512, 16 * linear, linear ** (1 / 1.8)) * 255


def assert_close(encoded: np.ndarray, expected: np.ndarray, decode: Callable[[np.ndarray], np.ndarray],
                 linear: np.ndarray) -> None:
    """Within 2 of 8 bits, or, near black where the tone curve magnifies the published matrices'
    rounding, within 0.1 % of the white in linear light."""
    close = (np.abs(encoded - expected) <= 2.0) | (np.abs(decode(encoded) - linear) <= 1e-3)
    assert close.all(), (encoded, expected)


def parsed(space: icc.NamedSpace) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc.profile(space)))


def xyz(value: tuple[tuple[float, float, float], tuple[float, float, float]] | None) -> tuple[float, float, float]:
    assert value is not None
    return value[0]


def colorant_matrix(profile: ImageCms.ImageCmsProfile) -> np.ndarray:
    core = profile.profile
    return np.array([xyz(core.red_colorant), xyz(core.green_colorant), xyz(core.blue_colorant)]).T


@pytest.mark.parametrize(("space", "description"), [
    ("srgb", "sRGB"), ("adobergb", "Adobe RGB (1998)"), ("rommrgb", "ROMM RGB"),
])
def test_littlecms_reads_each_profile_as_an_rgb_display_profile(space: icc.NamedSpace, description: str) -> None:
    profile = parsed(space)
    assert description in ImageCms.getProfileDescription(profile)
    assert profile.profile.xcolor_space.strip() == "RGB"
    assert profile.profile.connection_space.strip() == "XYZ"
    data = icc.profile(space)
    assert struct.unpack(">I", data[:4])[0] == len(data) and data[36:40] == b"acsp"


@pytest.mark.parametrize(("space", "published"), [("adobergb", ADOBE_COLORANTS_D50), ("rommrgb", ROMM_COLORANTS_D50)])
def test_colorants_are_the_published_d50_primaries(space: icc.NamedSpace, published: np.ndarray) -> None:
    assert np.allclose(colorant_matrix(parsed(space)), published, atol=6e-4)
    assert np.allclose(xyz(parsed(space).profile.media_white_point), icc.PCS_WHITE, atol=1e-4)


def test_adobe_tone_curve_is_gamma_563_over_256() -> None:
    data = icc.profile("adobergb")
    [count] = struct.unpack(">I", data[128:132])
    table = [struct.unpack(">4sII", data[132 + 12 * index:144 + 12 * index]) for index in range(count)]
    offsets = {signature: offset for signature, offset, _ in table}
    assert offsets[b"rTRC"] == offsets[b"gTRC"] == offsets[b"bTRC"]
    offset = offsets[b"rTRC"]
    assert data[offset:offset + 4] == b"curv"
    assert struct.unpack(">IH", data[offset + 8:offset + 14]) == (1, 563)


def test_profiles_are_built_once_and_never_change() -> None:
    assert icc.profile("rommrgb") is icc.profile("rommrgb")
    assert icc.profile("adobergb") == icc._profile_bytes.__wrapped__("adobergb")


SPACES = {"adobergb": (expected_adobe, adobe_decode, adobe_linear), "rommrgb": (expected_romm, romm_decode, romm_linear)}


@pytest.mark.parametrize("space", sorted(SPACES))
def test_srgb_pixels_become_the_published_values(space: icc.NamedSpace) -> None:
    expected, decode, linear = SPACES[space]
    image = Image.fromarray(SAMPLES.reshape(1, -1, 3), "RGB")
    converted = np.asarray(icc.convert(image, None, space)).reshape(-1, 3).astype(float)
    assert_close(converted, expected(SAMPLES.astype(float)), decode, linear(SAMPLES.astype(float)))


def test_srgb_to_srgb_keeps_the_pixels() -> None:
    image = Image.fromarray(SAMPLES.reshape(1, -1, 3), "RGB")
    assert np.abs(np.asarray(icc.convert(image, None, "srgb")).astype(int) - SAMPLES.reshape(1, -1, 3)).max() <= 1


def test_the_source_profile_is_the_images_own() -> None:
    """Pixels tagged Adobe RGB go to sRGB by inverting the Adobe RGB encoding."""
    adobe = np.clip(np.round(expected_adobe(SAMPLES.astype(float))), 0, 255).astype(np.uint8)
    image = Image.fromarray(adobe.reshape(1, -1, 3), "RGB")
    back = np.asarray(icc.convert(image, icc.profile("adobergb"), "srgb")).reshape(-1, 3).astype(int)
    assert np.abs(back - SAMPLES).max() <= 2, back


def test_a_damaged_stored_profile_is_taken_as_srgb() -> None:
    image = Image.fromarray(SAMPLES.reshape(1, -1, 3), "RGB")
    damaged = icc.convert(image, b"not an ICC profile" * 10, "adobergb")
    assert np.array_equal(np.asarray(damaged), np.asarray(icc.convert(image, None, "adobergb")))
