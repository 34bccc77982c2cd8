"""What a stored instance's frames can be sent as (PS3.18 8.7.3.5, Table 8.7.3-5): the stored form
first, then every media type and transfer syntax the codecs here can produce from it.

A decision, not a wire format: WADO-RS, WADO-URI and the rendered retrieves all offer the same
forms, each in its own request language.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from xdsi.dicom import transcode, uids
from xdsi.dicom.tags import PIXEL_DATA_TAGS
from xdsi.dicom.transcode import frame_media_type
from xdsi.services.retrieve import StoredInstance

__all__ = ["FrameForm", "frame_forms", "frame_media_type", "sent_as_frames"]

NATIVE = frame_media_type(uids.EXPLICIT_VR_LITTLE_ENDIAN)


@dataclass(frozen=True)
class FrameForm:
    """A media type frames can be sent as, with the transfer syntaxes it can carry them in.

    ``stored_syntax`` is set on the forms that can also send the frames exactly as stored
    (PS3.18 8.7.3.5.2: 'transfer-syntax=*').
    """

    media_type: str
    transfer_syntaxes: tuple[str, ...]
    stored_syntax: str | None = None


@lru_cache(maxsize=256)
def frame_forms(stored: str) -> tuple[FrameForm, ...]:
    """The forms of frames stored in ``stored``; kept per syntax, as the codecs do not change.

    'transfer-syntax=*' on application/octet-stream also selects the stored form, compressed or
    not (the part's Content-Type then says which), as viewers asking that way expect.
    """
    forms = []
    stored_type = frame_media_type(stored)
    if uids.is_encapsulated(stored):
        forms.append(FrameForm(stored_type, (stored,), stored))
    native = tuple(s for s in (uids.EXPLICIT_VR_LITTLE_ENDIAN,) if transcode.can_transcode(stored, s))
    forms.append(FrameForm(NATIVE, native, stored))
    for media_type, syntaxes in uids.FRAME_MEDIA_TYPES.items():
        producible = tuple(s for s in syntaxes if s != stored and uids.is_encapsulated(s)
                           and transcode.can_transcode(stored, s))
        if producible and media_type != stored_type:
            forms.append(FrameForm(media_type, producible))
    return tuple(forms)


def sent_as_frames(instance: StoredInstance, path: tuple[int, ...]) -> bool:
    """Whether a bulk data path names encapsulated Pixel Data, a sequence of compressed frames
    that is sent as its frames rather than as one value."""
    return len(path) == 1 and path[0] in PIXEL_DATA_TAGS and uids.is_encapsulated(instance.transfer_syntax_uid)
