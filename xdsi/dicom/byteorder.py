"""Byte order of word-valued data: PS3.5 7.3 big-endian values turned little-endian."""

from __future__ import annotations

# The width of one word of each VR whose value is a run of words.
WORD_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def swap_bytes(data: bytes, width: int) -> bytes:
    """Reverse each ``width``-byte unit; a trailing partial unit is kept as it is."""
    usable = len(data) - len(data) % width
    swapped = bytearray(data)
    for offset in range(width):
        swapped[offset:usable:width] = data[width - 1 - offset : usable : width]
    return bytes(swapped)
