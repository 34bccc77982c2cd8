"""The colour spaces a rendered image may be asked in (PS3.18 8.3.5.1.5 ``iccprofile``): sRGB,
Adobe RGB (1998) and ROMM RGB, their ICC profiles, and the transform of RGB pixels into them.

sRGB is LittleCMS's own profile. Pillow ships no Adobe RGB or ROMM RGB profile, so both are
written here as ICC.1 version 2.4 matrix/TRC display profiles from their published definitions:
header, tag table, ``desc``, ``cprt``, ``wtpt``, the colorants ``rXYZ``/``gXYZ``/``bXYZ`` adapted
to the D50 profile connection space with the Bradford transform (ICC.1 Annex E), and one tone
curve shared by the three channels. Each is built once per process.
"""

from __future__ import annotations

import io
import struct
from functools import cache, lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageCms

NamedSpace = Literal["srgb", "adobergb", "rommrgb"]
NAMED_SPACES: tuple[NamedSpace, ...] = ("srgb", "adobergb", "rommrgb")

# ICC.1 7.2.16: the PCS illuminant, D50, as the profile header and the wtpt tag carry it.
PCS_WHITE = (0.9642, 1.0, 0.8249)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])

# Adobe RGB (1998) Color Image Encoding (Adobe, 2005) 4.2-4.3: primaries and white D65 (x, y),
# and the decoding gamma 563/256 = 2.19921875.
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_WHITE = (0.3127, 0.3290)
ADOBE_GAMMA_U8F8 = 563
# ISO 22028-2 (ROMM RGB) 5.2, 5.3: primaries and white D50, and the tone curve: linear (slope 16)
# below the encoded value 16 * Et, Et = 1/512; else the power 1.8.
ROMM_PRIMARIES = ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001))
ROMM_WHITE = (0.3457, 0.3585)
ROMM_ET = 1 / 512
ROMM_GAMMA = 1.8
_ROMM_CURVE_POINTS = 4096

_DESCRIPTIONS: dict[NamedSpace, str] = {
    "adobergb": "Adobe RGB (1998) compatible (xdsi)",
    "rommrgb": "ROMM RGB (ISO 22028-2) (xdsi)",
}


def profile(space: NamedSpace) -> bytes:
    """The ICC profile of a named colour space, as embedded in a JPEG or PNG answer."""
    return _profile_bytes(space)


def romm_decode(encoded: np.ndarray) -> np.ndarray:
    """ROMM RGB non-linear values (0..1) to linear ones (ISO 22028-2 5.3)."""
    return np.where(encoded < 16 * ROMM_ET, encoded / 16, np.power(encoded, ROMM_GAMMA))


def colorants(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> np.ndarray:
    """The RGB to XYZ matrix of a colour space (columns: the primaries' XYZ, white at Y = 1),
    adapted from its white to the D50 of the profile connection space (Bradford)."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    white_xyz = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    matrix = xyz * np.linalg.solve(xyz, white_xyz)
    cone_source, cone_pcs = _BRADFORD @ white_xyz, _BRADFORD @ np.array(PCS_WHITE)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_pcs / cone_source) @ _BRADFORD
    return adapt @ matrix


def convert(image: Image.Image, source: bytes | None, space: NamedSpace) -> Image.Image:
    """``image`` (RGB, in the space ``source`` describes; sRGB when None, as PS3.3 C.11.15
    assumes of a colour image without an ICC Profile) transformed into ``space``."""
    return ImageCms.applyTransform(image, _transform(source, space)) or image


@lru_cache(maxsize=32)
def _transform(source: bytes | None, space: NamedSpace) -> ImageCms.ImageCmsTransform:
    """Built once per source profile and space. A stored profile LittleCMS cannot use as an RGB
    input (damaged, or of another colour space) is taken as sRGB, the space assumed without one."""
    target = _cms_profile(space)
    if source is not None:
        try:
            return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(source)), target, "RGB", "RGB",
                                           ImageCms.Intent.RELATIVE_COLORIMETRIC)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return ImageCms.buildTransform(_cms_profile("srgb"), target, "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)


@cache
def _cms_profile(space: NamedSpace) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(_profile_bytes(space)))


@cache
def _profile_bytes(space: NamedSpace) -> bytes:
    if space == "srgb":
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if space == "adobergb":
        curve = _curve([ADOBE_GAMMA_U8F8])
        matrix = colorants(ADOBE_PRIMARIES, ADOBE_WHITE)
    else:
        encoded = np.linspace(0.0, 1.0, _ROMM_CURVE_POINTS)
        curve = _curve(np.round(romm_decode(encoded) * 65535).astype(int).tolist())
        matrix = colorants(ROMM_PRIMARIES, ROMM_WHITE)
    tags = [
        (b"desc", _description(_DESCRIPTIONS[space])),
        (b"cprt", _text("No copyright, use freely")),
        (b"wtpt", _xyz(PCS_WHITE)),
        (b"rXYZ", _xyz(matrix[:, 0])), (b"gXYZ", _xyz(matrix[:, 1])), (b"bXYZ", _xyz(matrix[:, 2])),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ]
    return _assemble(tags)


def _assemble(tags: list[tuple[bytes, bytes]]) -> bytes:
    """ICC.1 7.2-7.3: a 128-byte header, the tag count and table, then the tag data, each element
    starting on a 4-byte boundary; tags with the same data share it."""
    table_end = 128 + 4 + 12 * len(tags)
    offsets: dict[bytes, int] = {}
    data = bytearray()
    entries = []
    for signature, body in tags:
        if body not in offsets:
            offsets[body] = table_end + len(data)
            data += body + b"\0" * (-len(body) % 4)
        entries.append(struct.pack(">4sII", signature, offsets[body], len(body)))
    size = table_end + len(data)
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sI4s4s8sI12s4s16s28s",
        size, b"\0" * 4, 0x02400000, b"mntr", b"RGB ", b"XYZ ",
        2026, 1, 1, 0, 0, 0,  # fixed creation date: the bytes of a profile never change
        # signature, platform, flags, maker, model, attributes, rendering intent (perceptual)
        b"acsp", b"\0" * 4, 0, b"\0" * 4, b"\0" * 4, b"\0" * 8, 0,
        _s15(PCS_WHITE), b"\0" * 4, b"\0" * 16, b"\0" * 28,
    )
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + bytes(data)


def _s15(values: tuple[float, ...] | np.ndarray) -> bytes:
    """ICC.1 5.1.11 s15Fixed16Number: signed, 16 fractional bits."""
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _xyz(values: tuple[float, ...] | np.ndarray) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(values)


def _curve(entries: list[int]) -> bytes:
    """ICC.1 10.5 curveType: one entry is a gamma (u8Fixed8Number), more are a sampled curve."""
    return b"curv" + b"\0" * 4 + struct.pack(f">I{len(entries)}H", len(entries), *entries)


def _text(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def _description(text: str) -> bytes:
    """ICC.1:2001 6.5.17 textDescriptionType: ASCII, then empty Unicode and ScriptCode parts."""
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_text)) + ascii_text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)
