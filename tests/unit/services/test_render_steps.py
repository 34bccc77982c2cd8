"""The rendering service with a stored presentation state and with burned-in annotation, over a real archive."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from tests.dicomfiles import make_presentation_state, to_bytes
from tests.unit.dicom.test_presentation import _expected
from xdsi.errors import InvalidRequest, NotFound
from xdsi.services.archive import Archive
from xdsi.services.render import PNG, PresentationRef, RenderRequest, Window
from xdsi.services.retrieve import Target


def _stored(archive: Archive) -> tuple[pydicom.Dataset, pydicom.Dataset, Target]:
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    state = make_presentation_state(image)
    for ds in (image, state):
        [outcome] = archive.store.store([io.BytesIO(to_bytes(ds))])
        assert outcome.status.succeeded, outcome.reason
    return image, state, Target(image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID)


def _png(archive: Archive, target: Target, request: RenderRequest) -> np.ndarray:
    with archive.sessions() as session:
        prepared = archive.renderer.prepare(session, target, presentation=request.presentation)
    return np.asarray(Image.open(io.BytesIO(archive.renderer.render(prepared, request).data)))


def test_a_stored_presentation_state_is_applied(archive: Archive) -> None:
    image, state, target = _stored(archive)
    ref = PresentationRef(state.SeriesInstanceUID, state.SOPInstanceUID)
    shown = _png(archive, target, RenderRequest(media_type=PNG, presentation=ref))
    expected = _expected(image, 40, 400)  # window, displayed area, flip, rotation by numpy
    assert shown.shape == expected.shape == (100, 80)
    line = np.zeros(shown.shape, dtype=bool)
    line[88:92, 18:72] = True  # the polyline, drawn in white (its test in test_presentation)
    np.testing.assert_array_equal(shown[~line], expected[~line])
    assert shown[89:91, 25:65].max(axis=0).min() == 255
    plain = _png(archive, target, RenderRequest(media_type=PNG))
    assert plain.shape == (128, 128)  # without the state: the image's own rendering, not the cached one


def test_presentation_state_errors(archive: Archive) -> None:
    image, state, target = _stored(archive)
    with archive.sessions() as session, pytest.raises(NotFound, match=r"presentation state 1\.2\.3"):
        archive.renderer.prepare(session, target, presentation=PresentationRef(state.SeriesInstanceUID, "1.2.3"))
    with archive.sessions() as session, pytest.raises(InvalidRequest, match="not a Grayscale Softcopy"):
        archive.renderer.prepare(session, target, presentation=PresentationRef(image.SeriesInstanceUID,
                                                                               image.SOPInstanceUID))
    ref = PresentationRef(state.SeriesInstanceUID, state.SOPInstanceUID)
    with pytest.raises(InvalidRequest, match="window cannot be combined"):
        _png(archive, target, RenderRequest(media_type=PNG, presentation=ref, window=Window(40, 400)))


def test_burned_in_annotation_marks_the_corners_only(archive: Archive) -> None:
    _image, _state, target = _stored(archive)
    plain = _png(archive, target, RenderRequest(media_type=PNG, window=Window(40, 400)))
    marked = _png(archive, target, RenderRequest(media_type=PNG, window=Window(40, 400),
                                                annotation=("patient", "technique")))
    changed = plain != marked
    assert changed[:30, :90].sum() > 50 and changed[-45:, :90].sum() > 50  # patient top left, technique bottom
    assert not changed[40:80, 40:120].any()
    assert (marked[:30, :90] == 255).any() and (marked[:30, :90] == 0).any()
