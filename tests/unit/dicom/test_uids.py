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


# --- the transfer syntax table ----------------------------------------------------------------


def test_every_media_type_carries_known_syntaxes_encapsulated_unless_octet_stream() -> None:
    from pydicom.uid import UID

    from xdsi.dicom import uids

    assert set(uids.FRAME_MEDIA_TYPES.items()) - {("application/octet-stream", (uids.EXPLICIT_VR_LITTLE_ENDIAN,))} \
        <= set(uids.COMPRESSED_MEDIA_TYPES.items())
    for media_type, syntaxes in uids.COMPRESSED_MEDIA_TYPES.items():
        assert syntaxes, media_type
        for uid in syntaxes:
            assert uids.is_known_transfer_syntax(uid), (media_type, uid)
            assert UID(uid).is_encapsulated, (media_type, uid)


@pytest.mark.parametrize(
    ("media_type", "default", "pydicom_name"),
    [
        # PS3.18 Table 8.7.3-5: the default transfer syntax of each type is listed first.
        ("image/jpeg", "1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
        ("image/jls", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression"),
        ("image/jp2", "1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)"),
        ("image/jphc", "1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Image Compression (Lossless Only)"),
        ("image/dicom-rle", "1.2.840.10008.1.2.5", "RLE Lossless"),
        ("video/mpeg", "1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
        ("video/mp4", "1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),
        ("video/h265", "1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"),
    ],
)
def test_the_default_of_each_type_comes_first(media_type: str, default: str, pydicom_name: str) -> None:
    from pydicom.uid import UID

    from xdsi.dicom import uids

    assert uids.COMPRESSED_MEDIA_TYPES[media_type][0] == default
    assert pydicom_name in UID(default).name


def test_ffd9_syntaxes_are_the_jpeg_family_and_no_other() -> None:
    from pydicom.uid import UID

    from xdsi.dicom import uids

    names = {UID(uid).name for uid in uids.FFD9_TERMINATED_SYNTAXES}
    assert len(names) == 13
    assert all("JPEG" in name for name in names)
    others = {uids.RLE_LOSSLESS, uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.MPEG2_MAIN_LEVEL}
    assert not uids.FFD9_TERMINATED_SYNTAXES & others
