"""The neutral element model both DICOM encodings share: Encoded (written out) and Parsed (read in),
the VR tables that shape them, and the naming of tags, creators and error places."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, NamedTuple

from pydicom.datadict import keyword_for_tag

from xdsi.errors import InvalidRequest

# PS3.18 F.2.2: VRs whose Value Field may be replaced by a BulkDataURI.
BULK_DATA_VRS = frozenset(
    [
        "DS", "FL", "FD", "IS", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "SL", "SS", "ST", "SV", "UC", "UL",
        "UN", "US", "UT", "UV"
    ]
)
# PS3.18 F.2.2: VRs carried as InlineBinary (base64 of the whole Value Field) rather than Value.
BINARY_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])
# Values that are plain character strings after Specific Character Set decoding.
STRING_VRS = frozenset(["AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"])
# PS3.5 6.2: VM is always 1 for these; a backslash is part of the text.
SINGLE_VALUE_VRS = frozenset(["LT", "ST", "UR", "UT"])
FLOAT_VRS = frozenset(("FL", "FD"))
INT_RANGES = {
    "SS": (-(2**15), 2**15 - 1),
    "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UL": (0, 2**32 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
}
# PS3.5 6.2: the binary numbers, as struct codes of their little-endian Value Field.
STRUCT_CODES = {"FL": "f", "FD": "d", "SS": "h", "US": "H", "SL": "l", "UL": "L", "SV": "q", "UV": "Q"}
# PS3.18 F.2.2 and PS3.19 A.1.5: the component groups of a Person Name value, in order.
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")

# Sequence nesting accepted from clients; real IODs nest a handful of levels.
MAX_DEPTH = 64

Kind = Literal["empty", "values", "items", "uri", "inline", "field"]


class Encoded(NamedTuple):
    """One element ready for rendering.

    ``payload`` by ``kind``: ``empty`` None; ``values`` a list whose entries depend on the VR
    (see ``values.converted``); ``items`` one iterator of Encoded per sequence item; ``uri`` the
    BulkDataURI; ``inline`` the little-endian Value Field bytes.
    """

    tag: int
    vr: str
    creator: str | None
    kind: Kind
    payload: Any



class Parsed(NamedTuple):
    """One element as read by a decoder, checked for shape but not yet a DataElement.

    ``payload`` by ``kind``: ``values`` a list of str|None (strings, DS, IS, PN), int (AT and
    binary integers) or float (FL, FD); ``field`` (DS and IS only, see ``builder.compact``) their
    Value Field bytes; ``items`` a list of Parsed lists; ``uri`` a URI; ``inline`` bytes. ``where``
    names the element in error messages.
    """

    tag: int
    vr: str
    creator: str | None
    kind: Kind
    payload: Any
    where: str


def invalid(where: str, message: str) -> InvalidRequest:
    """Build the error every decoder raises, prefixed by the path of the offending element."""
    return InvalidRequest(f"{where}: {message}" if where else message)


def tag_text(tag: int) -> str:
    """Eight uppercase hex digits: the spelling of a tag in both models and in AT values."""
    return f"{tag:08X}"


@lru_cache(maxsize=4096)
def keyword(tag: int) -> str:
    """Dictionary keyword of a public tag, '' when the host does not know it (PS3.19 A.1.5)."""
    return keyword_for_tag(tag)



def child_where(parent: str, tag: str) -> str:
    """The place of a child element in error messages: ``00081140[1].00081150``."""
    return f"{parent}.{tag}" if parent else tag


def creator_tag(tag: int) -> int | None:
    """PS3.5 7.8.1: the Private Creator element (gggg,00xx) that private element (gggg,xxee),
    xx >= 0x10, belongs to; None for any other tag."""
    if not tag >> 16 & 1 or tag & 0xFFFF < 0x1000:
        return None
    return (tag >> 16) << 16 | (tag & 0xFFFF) >> 8

