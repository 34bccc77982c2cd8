"""Presentation states looked up in the archive: found, absent (404), not a GSPS or not for the image (400)."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.dicomfiles import make_presentation_state, to_bytes
from xdsi.errors import InvalidRequest, NotFound
from xdsi.services import presentation
from xdsi.services.archive import Archive


def _load(archive: Archive, study: str, series: str, sop: str, image: str) -> object:
    with archive.sessions() as session:
        return presentation.load(session, archive.blobs, archive.limits, study_uid=study, series_uid=series,
                                 sop_uid=sop, image_uid=image)


def test_a_stored_state_is_found_and_applied_to_its_image(archive: Archive) -> None:
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    state = make_presentation_state(image)
    for ds in (image, state):
        archive.store.store([io.BytesIO(to_bytes(ds))])
    loaded = _load(archive, image.StudyInstanceUID, state.SeriesInstanceUID, state.SOPInstanceUID, image.SOPInstanceUID)
    found = loaded.state  # type: ignore[attr-defined]
    assert found.rotation == 90 and found.flip and found.window.center == 40
    assert loaded.stored.sop_instance_uid == state.SOPInstanceUID  # type: ignore[attr-defined]

    with pytest.raises(NotFound, match=re.escape(f"presentation state 1.2.3 of series {state.SeriesInstanceUID}")):
        _load(archive, image.StudyInstanceUID, state.SeriesInstanceUID, "1.2.3", image.SOPInstanceUID)
    with pytest.raises(InvalidRequest, match=r"does not reference image 1\.2\.4"):
        _load(archive, image.StudyInstanceUID, state.SeriesInstanceUID, state.SOPInstanceUID, "1.2.4")
    with pytest.raises(InvalidRequest, match="is not a Grayscale Softcopy Presentation State"):
        _load(archive, image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID, image.SOPInstanceUID)
