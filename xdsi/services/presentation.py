"""Presentation states named by a request (WADO-URI presentationUID and presentationSeriesUID, PS3.18
9.1.2.2.9), read from the archive and applied to the image being rendered (``dicom/presentation``).

The state is looked up in the image's study: 404 naming it when it is not there; 400 when it is
not a Grayscale Softcopy Presentation State or does not reference the image (and frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from xdsi.dicom.parsing import Limits, open_instance
from xdsi.dicom.presentation import PresentationState, presentation_for
from xdsi.errors import NotFound
from xdsi.repository import index
from xdsi.repository.blobs import BlobStore
from xdsi.repository.index import StoredInstance


@dataclass(frozen=True)
class Loaded:
    """A state as it applies to one image, and the stored instance it was read from (whose blob
    key and digest identify it in a cache)."""

    state: PresentationState
    stored: StoredInstance


def load(session: Session, blobs: BlobStore, limits: Limits, *, study_uid: str, series_uid: str, sop_uid: str,
         image_uid: str, frame: int = 1) -> Loaded:
    """The state ``sop_uid`` of series ``series_uid`` (in study ``study_uid``) as it applies to the image."""
    found = index.stored_instances(session, study_uid, series_uid, sop_uid)
    if not found:
        raise NotFound(f"presentation state {sop_uid} of series {series_uid} is not in study {study_uid}")
    with open_instance(blobs.path(found[0].blob_key), limits) as parsed:
        return Loaded(presentation_for(parsed.dataset, image_uid, frame), found[0])
