"""What frames can be sent as: the stored form first, for compressed and native instances alike."""

from __future__ import annotations

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.services.frame_forms import FrameForm, frame_forms

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def test_compressed_frames_are_offered_first_as_stored_then_as_native_octets() -> None:
    forms = frame_forms(JPEG_BASELINE)
    assert forms[0] == FrameForm("image/jpeg", (JPEG_BASELINE,), JPEG_BASELINE)
    assert forms[1].media_type == "application/octet-stream"
    assert forms[1].stored_syntax == JPEG_BASELINE
    assert all(form.stored_syntax is None for form in forms[2:])
    assert "image/jpeg" not in [form.media_type for form in forms[1:]]


def test_native_frames_are_offered_first_as_octets() -> None:
    forms = frame_forms(EXPLICIT_VR_LITTLE_ENDIAN)
    assert forms[0] == FrameForm("application/octet-stream", (EXPLICIT_VR_LITTLE_ENDIAN,), EXPLICIT_VR_LITTLE_ENDIAN)
    assert all(EXPLICIT_VR_LITTLE_ENDIAN not in form.transfer_syntaxes for form in forms[1:])
