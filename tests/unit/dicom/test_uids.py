"""UID syntax (one rule, two levels) and the storage SOP class list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdsi.dicom.uids import (
    UIDLevel,
    is_storage_sop_class,
    is_valid_uid,
    legacy_uid_reason,
    uid_level,
    validate_uid,
)
from xdsi.errors import InvalidUID


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.1", "0", "1.0.3", "2.25." + "1" * 59])
def test_conformant_uids(uid: str) -> None:
    assert uid_level(uid) is UIDLevel.CONFORMANT
    assert is_valid_uid(uid)
    assert validate_uid(uid) == uid
    assert legacy_uid_reason(uid) is None


@pytest.mark.parametrize(
    ("uid", "component"),
    [("999.999.2.19940822.083000", "083000"), ("1.02", "02"), ("00.1", "00"), ("1.2.0" + "9" * 59, "0" + "9" * 59)],
)
def test_legacy_uids_are_accepted_and_named_as_such(uid: str, component: str) -> None:
    assert uid_level(uid) is UIDLevel.LEGACY
    assert is_valid_uid(uid)
    assert validate_uid(uid, "Study Instance UID") == uid
    reason = legacy_uid_reason(uid)
    assert reason is not None and repr(component) in reason and "PS3.5 9.1" in reason


@pytest.mark.parametrize(
    "uid",
    ["", "1.2/3", "../1.2", "1..2", "1.2.", ".1.2", ".", "1.2.３", "١.٢", "1.2 ", " 1.2", "1.2\x00", "1.2\n",
     "1." * 5000 + "1", "2.25." + "1" * 60, "1.02." + "1" * 60, "abc", "1.2e3", "+1.2", "-1", "1,2"],
)
def test_unusable_uids_are_refused(uid: str) -> None:
    assert uid_level(uid) is None
    assert not is_valid_uid(uid)
    assert legacy_uid_reason(uid) is None
    with pytest.raises(InvalidUID):
        validate_uid(uid, "SOP Instance UID")


@pytest.mark.parametrize("value", [None, 1.2, b"1.2", ["1.2"]])
def test_non_strings_are_no_uids(value: object) -> None:
    assert uid_level(value) is None
    with pytest.raises(InvalidUID):
        validate_uid(value)


def test_invalid_uid_message_is_bounded() -> None:
    with pytest.raises(InvalidUID) as caught:
        validate_uid("9" * 10_000, "Study Instance UID")
    assert len(str(caught.value)) < 300


@given(st.text(max_size=80))
def test_accepted_uids_are_safe_path_and_query_parts(text: str) -> None:
    level = uid_level(text)
    if level is not None:
        assert set(text) <= set("0123456789.") and ".." not in text and len(text) <= 64
        assert not text.startswith(".") and not text.endswith(".")
    # The strict level is exactly the accepted one without zero-led components.
    components = text.split(".")
    zero_led = any(len(c) > 1 and c.startswith("0") for c in components)
    assert (level is UIDLevel.CONFORMANT) == (level is not None and not zero_led)
    assert (legacy_uid_reason(text) is not None) == (level is UIDLevel.LEGACY)


def test_storage_sop_classes() -> None:
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.104.1")  # Encapsulated PDF Storage
    assert is_storage_sop_class("1.2.840.10008.5.1.4.1.1.88.59")  # Key Object Selection
    assert not is_storage_sop_class("1.2.840.10008.1.3.10")  # Media Storage Directory (DICOMDIR)
    assert not is_storage_sop_class("1.2.840.10008.1.20.1")  # Storage Commitment Push Model
    assert not is_storage_sop_class("1.2.3.4")
