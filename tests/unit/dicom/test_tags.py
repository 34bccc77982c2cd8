"""The tag vocabulary names the elements pydicom's dictionary gives those tags."""

from __future__ import annotations

import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_sequence_item

from xdsi.dicom import tags


@pytest.mark.parametrize(
    ("tag", "keyword"),
    [
        (tags.SPECIFIC_CHARACTER_SET, "SpecificCharacterSet"),
        (tags.SOP_CLASS_UID, "SOPClassUID"),
        (tags.SOP_INSTANCE_UID, "SOPInstanceUID"),
        (tags.INSTANCE_AVAILABILITY, "InstanceAvailability"),
        (tags.RETRIEVE_URL, "RetrieveURL"),
        (tags.AVAILABLE_TRANSFER_SYNTAX_UID, "AvailableTransferSyntaxUID"),
        (tags.REQUEST_ATTRIBUTES_SEQUENCE, "RequestAttributesSequence"),
        (tags.STUDY_INSTANCE_UID, "StudyInstanceUID"),
        (tags.SERIES_INSTANCE_UID, "SeriesInstanceUID"),
        (tags.EXTENDED_OFFSET_TABLE, "ExtendedOffsetTable"),
        (tags.EXTENDED_OFFSET_TABLE_LENGTHS, "ExtendedOffsetTableLengths"),
        (tags.FLOAT_PIXEL_DATA, "FloatPixelData"),
        (tags.DOUBLE_FLOAT_PIXEL_DATA, "DoubleFloatPixelData"),
        (tags.PIXEL_DATA, "PixelData"),
        (tags.DATA_SET_TRAILING_PADDING, "DataSetTrailingPadding"),
        (tags.ITEM, "Item"),
        (tags.ITEM_DELIMITER, "ItemDelimitationItem"),
        (tags.SEQUENCE_DELIMITER, "SequenceDelimitationItem"),
    ],
)
def test_each_tag_is_the_element_its_name_says(tag: int, keyword: str) -> None:
    assert keyword_for_tag(tag) == keyword


def test_pixel_data_comes_first_among_the_pixel_data_tags() -> None:
    assert tags.PIXEL_DATA_TAGS[0] == tags.PIXEL_DATA
    assert {keyword_for_tag(t) for t in tags.PIXEL_DATA_TAGS} == {"PixelData", "FloatPixelData", "DoubleFloatPixelData"}


def test_byte_patterns_are_what_pydicom_writes_little_endian() -> None:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_sequence_item(fp, Dataset(), "iso8859")
    assert fp.getvalue()[:4] == tags.ITEM_BYTES
    assert tags.SEQUENCE_DELIMITATION_ITEM == tags.SEQUENCE_DELIMITER_BYTES + b"\0\0\0\0"
    assert int.from_bytes(tags.SEQUENCE_DELIMITER_BYTES[:2], "little") == tags.DELIMITATION_GROUP
    assert tags.UNDEFINED_LENGTH == 2**32 - 1
