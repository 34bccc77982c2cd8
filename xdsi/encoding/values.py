"""Value codecs shared by both encodings: Value Field bytes and pydicom values to the model's
values, and the character form of values back (numbers, tags, person names, base64)."""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Sequence
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import AMBIGUOUS_VR, PersonName

from xdsi.dicom.byteorder import WORD_WIDTH, swap_bytes
from xdsi.dicom.tags import SEQUENCE_DELIMITATION_ITEM
from xdsi.dicom.vrs import ALL_VRS
from xdsi.encoding.model import (
    BINARY_VRS,
    FLOAT_VRS,
    INT_RANGES,
    STRING_VRS,
    STRUCT_CODES,
    Encoded,
    invalid,
    tag_text,
)

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Spellings for the non-finite FL/FD values JSON numbers cannot carry (JavaScript's, for both models).
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

# Values decoded straight from the raw bytes for the common VRs, as pydicom would decode them
# (tests check every element of pydicom's files against the pydicom path): converting each
# element through pydicom costs most of an ingest's CPU time.
_ASCII_STRINGS = frozenset(("UI", "CS", "AS", "DA", "DT", "TM"))
_TEXT_SPLIT = frozenset(("SH", "LO", "UC"))
_TEXT_SINGLE = frozenset(("ST", "LT", "UT"))
_SIMPLE_CHARSETS = frozenset(("iso8859", "latin_1", "UTF8"))
# SV and UV are left to pydicom.
_NUMBERS = {vr: code for vr, code in STRUCT_CODES.items() if vr not in ("SV", "UV")}
_NUMBER_SIZES = {vr: struct.calcsize("<" + code) for vr, code in _NUMBERS.items()}


def plain_values(value: bytes, vr: str, charsets: str | list[str]) -> list[Any] | None:
    """Values of a little-endian Value Field decoded without pydicom, or None when only pydicom
    knows how (``charsets`` as pydicom's ``Dataset._character_set`` gives them)."""
    if not value:
        return []
    if vr in _NUMBERS:
        code, size = _NUMBERS[vr], _NUMBER_SIZES[vr]
        if len(value) % size:
            return None
        numbers = struct.unpack(f"<{len(value) // size}{code}", value)
        return [float(n) for n in numbers] if vr in FLOAT_VRS else list(numbers)
    if vr in _ASCII_STRINGS:
        return [v or None for v in value.decode("latin_1").rstrip(" \x00").split("\\")]
    if vr in ("IS", "DS"):
        return [v.strip(" ") or None for v in value.decode("latin_1").strip().split("\\")]
    if vr in _TEXT_SPLIT or vr in _TEXT_SINGLE or vr == "PN":
        if len(charsets) != 1 or charsets[0] not in _SIMPLE_CHARSETS:
            return None
        try:
            text = (value.rstrip(b"\x00 ") if vr == "PN" else value).decode(charsets[0])
        except UnicodeDecodeError:
            return None
        if vr in _TEXT_SINGLE:
            return [text.rstrip("\0 ") or None]
        if vr == "PN":
            return [person_name_groups(v) for v in text.split("\\")]
        return [v.rstrip("\0 ") or None for v in text.split("\\")]
    return None



def person_name_groups(text: str) -> tuple[str, str, str] | None:
    """The three component groups of a PN value (PS3.5 6.2.1), None when all are empty."""
    groups = (tuple(text.split("=")) + ("", "", ""))[:3]
    return groups if any(groups) else None  # type: ignore[return-value]



def converted(elem: DataElement, vr: str, creator: str | None, *, little: bool) -> Encoded:
    """The Encoded form of an element pydicom has converted; ``little``: how its bytes were read."""
    tag = elem.tag
    if elem.VR not in AMBIGUOUS_VR:
        vr = str(elem.VR)
    value = elem.value
    if elem.VM == 0:
        return Encoded(int(tag), vr, creator, "empty", None)
    if vr in BINARY_VRS:
        data = bytes(value)
        if elem.is_undefined_length:
            # PS3.19 A.1.5 "the whole Value Field": the items and the closing Sequence Delimiter.
            data += SEQUENCE_DELIMITATION_ITEM
        elif not little and vr in WORD_WIDTH:
            data = swap_bytes(data, WORD_WIDTH[vr])
        return Encoded(int(tag), vr, creator, "inline", data)
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return Encoded(int(tag), vr, creator, "values", [_value(vr, v) for v in values])


def _value(vr: str, v: Any) -> Any:
    """Normalise one value: str or None (strings, DS, IS), PN group triple or None,
    AT as 8 hex digits, float for FL/FD, int for the binary integers."""
    if vr in STRING_VRS or vr in ("DS", "IS"):
        text = str(v).strip(" ") if vr in ("DS", "IS") else str(v)
        return text or None
    if vr == "PN":
        groups = (v if isinstance(v, PersonName) else PersonName(str(v))).components
        triple = (tuple(groups) + ("", "", ""))[:3]
        return triple if any(triple) else None
    if vr == "AT":
        return tag_text(int(v))
    if vr in FLOAT_VRS:
        return float(v)
    return int(v)


def element_from_text(tag: int, vr: str, value: str | int | None) -> Encoded:
    """An element from its Value Field in character form, as an index column keeps it: values
    separated by backslashes, PN groups by '=', IS and US as integers; None or '' is empty."""
    if value is None or value == "":
        return Encoded(tag, vr, None, "empty", None)
    if vr == "PN":
        return Encoded(tag, vr, None, "values", [person_name_groups(str(value))])
    if vr == "IS":
        return Encoded(tag, vr, None, "values", [str(int(value))])
    if vr == "US":
        return Encoded(tag, vr, None, "values", [int(value)])
    return Encoded(tag, vr, None, "values", str(value).split("\\"))


def float_out(vr: str, x: float) -> float | str:
    """The number both models print: shortest text that reads back to the same FL/FD bits;
    non-finite values as the JavaScript spellings, since neither model defines them."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if vr == "FL":
        bits = struct.pack("<f", x)
        for digits in range(6, 10):
            shorter = float(f"{x:.{digits}g}")
            if struct.pack("<f", shorter) == bits:
                return shorter
    return x


def b64encode(data: bytes) -> str:
    """InlineBinary text (PS3.18 F.2.7, PS3.19 A.1.5): base64 of the whole Value Field."""
    return base64.b64encode(data).decode("ascii")


def parse_tag(text: Any, where: str) -> int:
    if not isinstance(text, str) or _HEX8.fullmatch(text) is None:
        raise invalid(where, f"tag {text!r} is not 8 hexadecimal digits")
    return int(text, 16)


def parse_vr(vr: Any, where: str) -> str:
    if not isinstance(vr, str) or vr not in ALL_VRS:
        raise invalid(where, f"VR {vr!r} is not a PS3.5 value representation")
    return vr


def decode_base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise invalid(where, "InlineBinary is not valid base64") from exc


def check_number(vr: str, n: Any, where: str) -> int | float:
    """Reject bools, wrong types and values the VR's binary width cannot hold."""
    if vr in FLOAT_VRS:
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise invalid(where, f"{vr} value {n!r} is not a number")
        x = float(n)
        if vr == "FL":
            try:
                struct.pack("<f", x)  # rounds to the nearest float32, or overflows
            except OverflowError as exc:
                raise invalid(where, f"FL value {n!r} is out of range") from exc
        return x
    if isinstance(n, bool) or not isinstance(n, int):
        raise invalid(where, f"{vr} value {n!r} is not an integer")
    low, high = INT_RANGES[vr]
    if not low <= n <= high:
        raise invalid(where, f"{vr} value {n} is outside {low}..{high}")
    return n


def parse_text_value(vr: str, text: str, where: str) -> Any:
    """Turn the character form of one value (XML text, or a JSON string) into its decoded type."""
    if vr == "AT":
        return parse_tag(text.strip(), where)
    if vr in FLOAT_VRS:
        stripped = text.strip()
        if stripped in NON_FINITE:
            return NON_FINITE[stripped]
        if _FLOAT_TEXT.fullmatch(stripped) is None:
            raise invalid(where, f"{vr} value {text!r} is not a number")
        return check_number(vr, float(stripped), where)
    if vr in INT_RANGES:
        stripped = text.strip()
        if _INT_TEXT.fullmatch(stripped) is None:
            raise invalid(where, f"{vr} value {text!r} is not an integer")
        return check_number(vr, int(stripped), where)
    if vr in ("DS", "IS"):
        return text.strip(" ") or None
    return text or None


def join_person_name(groups: Sequence[str]) -> str | None:
    """PS3.5 6.2.1: groups joined by '=', trailing empty groups dropped."""
    name = "=".join(groups).rstrip("=")
    return name or None
