"""Bulk data references: where a value too large to inline sits, and the Value Field that
encapsulated Pixel Data sent as one bulk part is (PS3.18 8.6, F.2.2; PS3.5 A.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from xdsi.dicom.tags import ITEM_BYTES, PIXEL_DATA_TAGS, SEQUENCE_DELIMITATION_ITEM


class BulkDataRef(NamedTuple):
    """Where a bulk data candidate sits, so a callback can decide and build a URI without its value."""

    path: tuple[int, ...]
    vr: str
    length: int | None


BulkDataCallback = Callable[[BulkDataRef], str | None]
# No value of known length up to this many bytes, Pixel Data aside, is a bulk data candidate: every callback is asked.
ASK_ALWAYS = -1
BulkDataLoader = Callable[[str, str], bytes]


def beyond_threshold(tag: int, length: int | None, threshold: int) -> bool:
    """Pixel Data, a value of unknown length, or one of more than ``threshold`` bytes: what a bulk data
    threshold sends apart from the metadata. The walks ask their callback about these values only."""
    return length is None or length > threshold or tag in PIXEL_DATA_TAGS


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
