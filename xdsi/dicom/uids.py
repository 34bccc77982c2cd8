"""UID syntax (PS3.5 9.1), transfer syntaxes and storage SOP classes."""

from __future__ import annotations

import enum
import re
from functools import lru_cache

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID, AllTransferSyntaxes

from xdsi import __version__
from xdsi.errors import InvalidUID

# xdsi's Implementation Class UID (PS3.7 D.3.3.2): a 2.25 UUID-derived UID, fixed for the project;
# written into the File Meta Information of every file xdsi builds.
IMPLEMENTATION_CLASS_UID = "2.25.67657838929004865207478107408405471018"
IMPLEMENTATION_VERSION_NAME = f"XDSI_{__version__}"[:16]

MAX_UID_LENGTH = 64
# One rule, two levels. Usable: 1-64 ASCII digits in non-empty dot-separated components, so a
# UID can never carry a path separator, a space, a control or non-ASCII character ([0-9], not
# \d, which would accept fullwidth and other Unicode digits). Conformant (PS3.5 9.1) adds
# that no component but "0" starts with a zero; old equipment broke that rule (e.g.
# 999.999.2.19940822.083000), and peer archives store and serve such UIDs, so xdsi accepts them
# with a warning. Blob paths are hashes of the UIDs, so no level is ever used to build a path.
_USABLE = re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII)
_ZERO_LED = re.compile(r"(?:^|\.)(0[0-9]+)", re.ASCII)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# PS3.6 Annex A: the transfer syntaxes xdsi names in code.
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"  # Process 1
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"  # Processes 2 and 4
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"  # Process 14, any predictor
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"  # Process 14, first-order prediction (selection value 1)
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
JPEG_2000_MC_LOSSLESS = "1.2.840.10008.1.2.4.92"
JPEG_2000_MC = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
MPEG2_MAIN_LEVEL = "1.2.840.10008.1.2.4.100"
MPEG2_HIGH_LEVEL = "1.2.840.10008.1.2.4.101"
MPEG4_AVC_HIGH_PROFILE = "1.2.840.10008.1.2.4.102"
MPEG4_AVC_BD = "1.2.840.10008.1.2.4.103"
MPEG4_AVC_2D = "1.2.840.10008.1.2.4.104"
MPEG4_AVC_3D = "1.2.840.10008.1.2.4.105"
MPEG4_AVC_STEREO = "1.2.840.10008.1.2.4.106"
HEVC_MAIN_PROFILE = "1.2.840.10008.1.2.4.107"
HEVC_MAIN_10_PROFILE = "1.2.840.10008.1.2.4.108"

# PS3.18 Table 8.7.3-4 (uncompressed) and 8.7.3-5 (compressed): the media type of a frame or
# bulk data part and the transfer syntaxes it carries, default first.
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "application/octet-stream": (EXPLICIT_VR_LITTLE_ENDIAN,),
    "image/jpeg": (JPEG_LOSSLESS_SV1, JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS),
    "image/dicom-rle": (RLE_LOSSLESS,),
    "image/jls": (JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS),
    "image/jp2": (JPEG_2000_LOSSLESS, JPEG_2000),
    "image/jpx": (JPEG_2000_MC_LOSSLESS, JPEG_2000_MC),
    "image/jphc": (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K),
}
# Every compressed type a bulk data part may carry: the frame types, the older x- names of two
# of them, and the video types (whose frames WADO-RS does not offer one by one).
COMPRESSED_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    **{kind: syntaxes for kind, syntaxes in FRAME_MEDIA_TYPES.items() if kind != "application/octet-stream"},
    "image/x-jls": FRAME_MEDIA_TYPES["image/jls"],
    "image/x-dicom-rle": FRAME_MEDIA_TYPES["image/dicom-rle"],
    "video/mpeg": (MPEG2_MAIN_LEVEL, MPEG2_HIGH_LEVEL),
    "video/mp4": (MPEG4_AVC_HIGH_PROFILE, MPEG4_AVC_BD, MPEG4_AVC_2D, MPEG4_AVC_3D, MPEG4_AVC_STEREO),
    "video/h265": (HEVC_MAIN_PROFILE, HEVC_MAIN_10_PROFILE),
}
# ISO/IEC 10918-1, 14495-1 and 15444-1 codestreams all end in the FFD9 marker (EOI, EOC).
FFD9_TERMINATED_SYNTAXES = frozenset(
    uid
    for kind in ("image/jpeg", "image/jls", "image/jp2", "image/jpx", "image/jphc")
    for uid in FRAME_MEDIA_TYPES[kind]
)


class UIDLevel(enum.Enum):
    """How well a usable UID keeps PS3.5 9.1."""

    CONFORMANT = "conformant"
    LEGACY = "legacy"  # a zero-led component: accepted, kept and served as written, with a warning


def uid_level(value: object) -> UIDLevel | None:
    """The level of ``value`` as a UID, or None when it is no usable UID at all."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_UID_LENGTH or _USABLE.fullmatch(value) is None:
        return None
    return UIDLevel.LEGACY if _ZERO_LED.search(value) else UIDLevel.CONFORMANT


def is_valid_uid(value: object) -> bool:
    """True for a UID xdsi accepts: conformant, or legacy (a zero-led component)."""
    return uid_level(value) is not None


def validate_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` if xdsi accepts it as a UID (legacy ones too), else raise InvalidUID naming ``what``."""
    if is_valid_uid(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80]) + "…"
    raise InvalidUID(f"{what} {shown} is not a valid UID (1-64 ASCII digits and dots, no empty component)")


def legacy_uid_reason(value: str) -> str | None:
    """Why an accepted UID is not PS3.5 9.1 conformant, in words; None when it is conformant."""
    found = _ZERO_LED.search(value) if is_valid_uid(value) else None
    if found is None:
        return None
    return f"component {found.group(1)!r} starts with a zero, which PS3.5 9.1 forbids; accepted as a legacy UID"


def is_known_transfer_syntax(uid: str) -> bool:
    """True for a transfer syntax defined in PS3.6 that pydicom can read."""
    return uid in _transfer_syntaxes()


@lru_cache(maxsize=1)
def _transfer_syntaxes() -> frozenset[str]:
    return frozenset(str(t) for t in AllTransferSyntaxes)


@lru_cache(maxsize=128)
def is_deflated(uid: str) -> bool:
    return UID(uid).is_deflated


def is_big_endian(uid: str) -> bool:
    return uid == EXPLICIT_VR_BIG_ENDIAN


@lru_cache(maxsize=128)
def is_encapsulated(uid: str) -> bool:
    return UID(uid).is_encapsulated


def transfer_syntax_name(uid: str) -> str:
    return UID(uid).name


@lru_cache(maxsize=1)
def storage_sop_classes() -> frozenset[str]:
    """Every storage SOP class in PS3.6, retired ones included (archives keep old data)."""
    excluded = ("Media Storage Directory", "Storage Commitment", "Stored Print")
    return frozenset(
        uid
        for uid, (name, kind, *_rest) in UID_dictionary.items()
        if kind == "SOP Class" and "Storage" in name and not name.startswith(excluded)
    )


def is_storage_sop_class(uid: str) -> bool:
    return uid in storage_sop_classes()
