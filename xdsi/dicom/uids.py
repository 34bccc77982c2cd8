"""UID syntax (PS3.5 9.1), transfer syntaxes and storage SOP classes."""

from __future__ import annotations

import enum
import re
from functools import lru_cache

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID, AllTransferSyntaxes

from xdsi.errors import InvalidUID

MAX_UID_LENGTH = 64
# One rule, two levels. Usable: 1-64 ASCII digits in non-empty dot-separated components, so a
# UID can never carry a path separator, a space, a control or non-ASCII character ([0-9], not
# \d, which would accept fullwidth and other Unicode digits). Conformant (PS3.5 9.1) adds
# that no component but "0" starts with a zero; old equipment broke that rule (e.g.
# 999.999.2.19940822.083000), and peer archives store and serve such UIDs, so xdsi accepts them
# with a warning. Blob paths are hashes of the UIDs, so no level is ever used to build a path.
_USABLE = re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII)
_ZERO_LED = re.compile(r"(?:^|\.)(0[0-9]+)", re.ASCII)

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


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
