"""The data element tags xdsi names in code (PS3.6 Table 6-1, PS3.5 7.5), and their byte patterns."""

from __future__ import annotations

import struct

SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
INSTANCE_AVAILABILITY = 0x00080056
RETRIEVE_URL = 0x00081190
AVAILABLE_TRANSFER_SYNTAX_UID = 0x00083002
REQUEST_ATTRIBUTES_SEQUENCE = 0x00400275
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E

EXTENDED_OFFSET_TABLE = 0x7FE00001
EXTENDED_OFFSET_TABLE_LENGTHS = 0x7FE00002
FLOAT_PIXEL_DATA = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00009
PIXEL_DATA = 0x7FE00010
# The three pixel data elements (PS3.3 C.7.6.3), Pixel Data first: a data set holds at most one.
PIXEL_DATA_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)

# PS3.10 7.2: padding at the end of a data set, carrying nothing.
DATA_SET_TRAILING_PADDING = 0xFFFCFFFC

# PS3.5 7.5: the tags that frame items and close sequences, and the length meaning "undefined".
ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
# PS3.5 7.5: the group of those three tags, which no data element may use.
DELIMITATION_GROUP = ITEM >> 16


def _little_endian(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


# The same tags as they appear in a little endian stream.
ITEM_BYTES = _little_endian(ITEM)
SEQUENCE_DELIMITER_BYTES = _little_endian(SEQUENCE_DELIMITER)
# PS3.5 7.5.2: the Sequence Delimitation Item, its tag and a zero length.
SEQUENCE_DELIMITATION_ITEM = SEQUENCE_DELIMITER_BYTES + bytes(4)
