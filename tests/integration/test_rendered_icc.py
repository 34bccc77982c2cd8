"""WADO-RS rendered ``iccprofile`` against a running server (PS3.18 8.3.5.1.5): the answer carries
the named space's profile (read back from the JPEG and PNG) and its pixels are the object's
colours in that space, computed here with numpy from the published matrices."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageCms
from pydicom.data import get_testdata_file

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_rendered import get, instance_path, renamed
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer
from tests.unit.dicom.test_icc import (
    ADOBE_COLORANTS_D50,
    ROMM_COLORANTS_D50,
    SPACES,
    adobe_decode,
    assert_close,
    colorant_matrix,
)
from xdsi.dicom import icc

# sRGB red, green, blue, white, black, 50 % gray: one 8x8 patch each, side by side.
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128]],
                   dtype=np.uint8)
PATCH = 8
NAMED = {"srgb": ("sRGB", None), "adobergb": ("Adobe RGB (1998)", ADOBE_COLORANTS_D50),
         "rommrgb": ("ROMM RGB", ROMM_COLORANTS_D50)}


def patches(colours: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(colours[np.newaxis], PATCH, axis=0), PATCH, axis=1)


def rgb_instance(colours: np.ndarray) -> pydicom.Dataset:
    pixels = patches(colours)
    return make_dataset(rows=pixels.shape[0], columns=pixels.shape[1], SamplesPerPixel=3,
                        PhotometricInterpretation="RGB", PlanarConfiguration=0, BitsAllocated=8, BitsStored=8,
                        HighBit=7, PixelRepresentation=0, PixelData=pixels.tobytes())


def patch_centres(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB")).astype(float)
    return pixels[PATCH // 2, PATCH // 2::PATCH]


def input_class(profile: bytes) -> bytes:
    """PS3.3 C.11.15.1.1: a stored ICC Profile is of the Input Device class ("scnr")."""
    return profile[:12] + b"scnr" + profile[16:]


@pytest.fixture(scope="module")
def plain(live: LiveServer) -> str:
    """A colour image without an ICC Profile: its pixels are sRGB (PS3.3 C.11.15)."""
    ds = rgb_instance(COLOURS)
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    return instance_path(ds)


@pytest.fixture(scope="module")
def adobe_tagged(live: LiveServer) -> tuple[str, np.ndarray]:
    """pydicom's RGB secondary capture, with an Adobe RGB (1998) ICC Profile of the Input Device class."""
    path = get_testdata_file("SC_rgb.dcm")
    assert path is not None
    ds = renamed(path)
    ds.ICCProfile = input_class(icc.profile("adobergb"))
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    return instance_path(ds), ds.pixel_array


@pytest.mark.parametrize("space", sorted(NAMED))
@pytest.mark.parametrize("media_type", ["image/png", "image/jpeg"])
def test_named_space_profile_is_embedded(live: LiveServer, plain: str, space: str, media_type: str) -> None:
    reply = get(live, f"{plain}/rendered?iccprofile={space}", accept=media_type)
    assert reply.status == 200 and reply.header("Content-Type") == media_type
    image = Image.open(io.BytesIO(reply.body))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    description, colorants = NAMED[space]
    assert description in ImageCms.getProfileDescription(profile)
    if colorants is not None:
        assert np.allclose(colorant_matrix(profile), colorants, atol=6e-4)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_srgb_colours_are_converted_to_the_named_space(live: LiveServer, plain: str, space: str) -> None:
    reply = get(live, f"{plain}/rendered?iccprofile={space}")
    expected, decode, linear = SPACES[space]
    got = patch_centres(Image.open(io.BytesIO(reply.body)))
    assert_close(got, expected(COLOURS.astype(float)), decode, linear(COLOURS.astype(float)))
    # and not what the object stores: red, green and gray all move
    assert np.abs(got - COLOURS).max() > 10


def test_srgb_of_an_srgb_image_keeps_its_pixels(live: LiveServer, plain: str) -> None:
    got = patch_centres(Image.open(io.BytesIO(get(live, f"{plain}/rendered?iccprofile=srgb").body)))
    assert np.abs(got - COLOURS).max() <= 1


def test_the_images_own_profile_is_the_source(live: LiveServer, adobe_tagged: tuple[str, np.ndarray]) -> None:
    """Stored pixels in Adobe RGB, asked in sRGB: decoded with the Adobe RGB curve and matrix,
    encoded with sRGB's (IEC 61966-2-1)."""
    where, stored = adobe_tagged
    image = Image.open(io.BytesIO(get(live, f"{where}/rendered?iccprofile=srgb").body))
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"])))
    adobe_to_xyz = np.linalg.inv(np.array([[2.04159, -0.56501, -0.34473], [-0.96924, 1.87597, 0.04156],
                                           [0.01344, -0.11836, 1.01517]]))
    xyz_to_srgb = np.linalg.inv(np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                                          [0.0193, 0.1192, 0.9505]]))
    linear = np.clip(adobe_decode(stored.astype(float)) @ adobe_to_xyz.T @ xyz_to_srgb.T, 0, 1)
    expected = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
    got = np.asarray(image).astype(float)
    assert np.abs(got - expected).max() <= 2.5
    assert np.abs(got - stored).max() > 10


def test_yes_embeds_the_own_profile_else_srgb(live: LiveServer, plain: str,
                                              adobe_tagged: tuple[str, np.ndarray]) -> None:
    where, stored = adobe_tagged
    own = Image.open(io.BytesIO(get(live, f"{where}/rendered?iccprofile=yes").body))
    assert "Adobe RGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(own.info["icc_profile"])))
    assert np.array_equal(np.asarray(own), stored)  # no transform
    assumed = Image.open(io.BytesIO(get(live, f"{plain}/rendered?iccprofile=yes").body))
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(assumed.info["icc_profile"])))
    assert not Image.open(io.BytesIO(get(live, f"{plain}/rendered").body)).info.get("icc_profile")


def test_gif_has_the_named_colours_and_no_profile(live: LiveServer, plain: str) -> None:
    reply = get(live, f"{plain}/rendered?iccprofile=adobergb", accept="image/gif")
    assert reply.status == 200
    image = Image.open(io.BytesIO(reply.body))
    assert not image.info.get("icc_profile")
    expected, decode, linear = SPACES["adobergb"]
    assert_close(patch_centres(image), expected(COLOURS.astype(float)), decode, linear(COLOURS.astype(float)))


def test_grayscale_is_neither_converted_nor_profiled(live: LiveServer) -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = renamed(path)
    assert post(live, dicom_parts(to_bytes(ds))).status == 200
    where = instance_path(ds)
    plain = Image.open(io.BytesIO(get(live, f"{where}/rendered").body))
    for space in ("yes", *NAMED):
        image = Image.open(io.BytesIO(get(live, f"{where}/rendered?iccprofile={space}").body))
        assert image.mode == "L" and not image.info.get("icc_profile"), space
        assert np.array_equal(np.asarray(image), np.asarray(plain)), space


@pytest.mark.parametrize("value", ["cmyk", "", "srgb,yes", "displayp3"])
def test_unknown_value_is_400_naming_iccprofile(live: LiveServer, plain: str, value: str) -> None:
    reply = get(live, f"{plain}/rendered?iccprofile={value}")
    assert reply.status == 400 and b"iccprofile" in reply.body, reply.body
