"""UID syntax (PS3.5 9.1), transfer syntaxes and storage SOP classes."""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID, AllTransferSyntaxes

from xdsi.errors import InvalidUID

MAX_UID_LENGTH = 64
# re.ASCII: without it [0-9] is fine but \d would accept fullwidth and other Unicode digits.
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*", re.ASCII)

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def is_valid_uid(value: object) -> bool:
    """True for a PS3.5 9.1 UID: ASCII digits and dots, no empty or zero-led component, ≤ 64 chars."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _UID_RE.fullmatch(value) is not None
    )


def validate_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` if it is a valid UID, else raise InvalidUID naming ``what``."""
    if is_valid_uid(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80]) + "…"
    raise InvalidUID(
        f"{what} {shown} is not a valid UID (1-64 ASCII digits and dots, no empty or zero-led component)"
    )


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
