"""UID syntax and the storage SOP class list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdsi.dicom.uids import is_storage_sop_class, is_valid_uid, validate_uid
from xdsi.errors import InvalidUID


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.1", "0", "1.0.3", "2.25." + "1" * 59])
def test_valid_uids(uid: str) -> None:
    assert is_valid_uid(uid)


@pytest.mark.parametrize(
    "uid",
    ["", "1.2/3", "../1.2", "1..2", "1.2.", ".1.2", "1.02", "1.2.３", "١.٢", "1.2 ", "1.2\x00", "1.2\n",
     "1." * 5000 + "1", "2.25." + "1" * 60, "abc"],
)
def test_invalid_uids(uid: str) -> None:
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUID):
        validate_uid(uid, "SOP Instance UID")


def test_invalid_uid_message_is_bounded() -> None:
    with pytest.raises(InvalidUID) as caught:
        validate_uid("9" * 10_000, "Study Instance UID")
    assert len(str(caught.value)) < 300


@given(st.text(max_size=80))
def test_valid_uids_are_safe_path_and_query_parts(text: str) -> None:
    if is_valid_uid(text):
        assert set(text) <= set("0123456789.") and ".." not in text and len(text) <= 64


def test_storage_sop_classes() -> None:
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.104.1")  # Encapsulated PDF Storage
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.88.59")  # Key Object Selection
    assert not is_storage_sop_class("1.2.840.10008.1.3.10")  # Media Storage Directory (DICOMDIR)
    assert not is_storage_sop_class("1.2.840.10008.1.20.1")  # Storage Commitment Push Model
    assert not is_storage_sop_class("1.2.3.4")
