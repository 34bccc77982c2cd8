"""Bulk data references: where a value too large to inline sits, and the Value Field that
encapsulated Pixel Data sent as one bulk part is (PS3.18 8.6, F.2.2; PS3.5 A.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from xdsi.dicom.tags import ITEM_BYTES, SEQUENCE_DELIMITATION_ITEM


class BulkDataRef(NamedTuple):
    """Where a bulk data candidate sits, so a callback can decide and build a URI without its value."""

    path: tuple[int, ...]
    vr: str
    length: int | None


BulkDataCallback = Callable[[BulkDataRef], str | None]
BulkDataLoader = Callable[[str, str], bytes]


def is_encapsulated(data: bytes) -> bool:
    """True when ``data`` is a chain of Items (PS3.5 A.4), optionally closed by the Sequence
    Delimiter: the whole Value Field of undefined-length Pixel Data."""
    offset, end = 0, len(data)
    if data.endswith(SEQUENCE_DELIMITATION_ITEM):
        end -= len(SEQUENCE_DELIMITATION_ITEM)
    if end < 8:
        return False
    while offset + 8 <= end:
        if data[offset : offset + 4] != ITEM_BYTES:
            return False
        offset += 8 + int.from_bytes(data[offset + 4 : offset + 8], "little")
    return offset == end
