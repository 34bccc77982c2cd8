"""The grayscale pipeline (PS3.3 C.11) against the formulas of tests/rendering.py, table and direct paths alike."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from tests.rendering import window as reference_window
from xdsi.dicom.luts import Window, frame_attributes, grayscale, object_window
from xdsi.errors import InvalidRequest


def _ds(**attributes: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize(("center", "width"), [(40.0, 400.0), (0.5, 1.0), (-1000.0, 3.0), (127.5, 256.0)])
def test_window_functions_follow_the_standard(function: str, center: float, width: float) -> None:
    if function != "LINEAR" and width == 1.0:
        width = 0.5  # LINEAR_EXACT and SIGMOID take widths below 1
    x = np.linspace(center - 2 * width - 5, center + 2 * width + 5, 2001)
    got = Window(center, width, function).apply(x)  # type: ignore[arg-type]
    assert np.allclose(got, reference_window(x, center, width, function), atol=1e-9)


def test_windows_a_stored_value_could_not_take_are_refused() -> None:
    for center, width, function in ((0, 0.5, "LINEAR"), (0, 0, "SIGMOID"), (float("nan"), 10, "LINEAR"),
                                    (0, 10, "CUBIC")):
        with pytest.raises(InvalidRequest):
            Window(center, width, function)  # type: ignore[arg-type]


def test_table_and_direct_paths_agree_for_signed_and_unsigned_data() -> None:
    rng = np.random.default_rng(1)
    ds = _ds(RescaleSlope=2.5, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    for dtype, low, high in ((np.int16, -32768, 32767), (np.uint16, 0, 65535), (np.uint8, 0, 255), (np.int8, -128, 127)):
        stored = rng.integers(low, high, size=(64, 64), endpoint=True).astype(dtype)
        mapping = grayscale(ds, 0, "MONOCHROME2")
        through_table = mapping.to_display(stored)
        direct = mapping.to_display(stored.astype(np.float64))  # floats never use a table
        assert through_table.dtype == np.uint8
        assert np.array_equal(through_table, direct), dtype


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize(
    ("dtype", "slope", "intercept", "center", "width", "function"),
    [
        (np.int16, 1.0, 0.0, 40.0, 400.0, "LINEAR"),  # CT stored as Hounsfield units
        (np.uint16, 1.0, -1024.0, 40.0, 80.0, "LINEAR"),  # a brain window over rescaled data
        (np.uint16, 0.5, 10.0, 2000.0, 4000.0, "LINEAR_EXACT"),
        (np.uint8, 2.0, -3.0, 100.0, 50.0, "LINEAR"),
        (np.uint16, 1.0, 0.0, 2048.0, 2.0, "LINEAR"),  # narrow: too steep for float32, kept on the table
        (np.int16, 1.0, 0.0, None, None, "LINEAR"),  # no window: the frame's range
        (np.uint16, -1.0, 4095.0, None, None, "LINEAR"),  # a negative slope turns the range over
    ],
)
def test_windows_and_rescales_of_every_kind_match_the_standard_within_rounding(
    dtype: type, slope: float, intercept: float, center: float | None, width: float | None, function: str,
    inverse: bool,
) -> None:
    """Linear pipelines run as one float32 line, the rest through a table: either way each display value is the
    standard's, rounded, give or take one level where float32 rounds a value lying on a half."""
    info = np.iinfo(dtype)
    stored = np.random.default_rng(7).integers(max(info.min, -2000), min(info.max, 4095), size=(128, 128),
                                               endpoint=True).astype(dtype)
    attributes: dict[str, object] = {"RescaleSlope": slope, "RescaleIntercept": intercept}
    if center is not None:
        attributes.update(WindowCenter=center, WindowWidth=width, VOILUTFunction=function)
    got = grayscale(_ds(**attributes), 0, "MONOCHROME2", inverse=inverse).to_display(stored)
    modality = stored.astype(np.float64) * slope + intercept
    if center is None:
        ideal = (modality - modality.min()) * (255.0 / (modality.max() - modality.min()))
    else:
        ideal = reference_window(modality, center, width, function)  # type: ignore[arg-type]
    ideal = np.clip(ideal, 0.0, 255.0)
    wanted = np.rint(255.0 - ideal if inverse else ideal)
    difference = np.abs(got.astype(np.float64) - wanted)
    assert got.dtype == np.uint8
    assert difference.max() <= 1
    # Off by one only where the ideal value lies within float32's reach of a half.
    off = difference > 0
    assert np.all(np.abs(ideal[off] - np.floor(ideal[off]) - 0.5) < 1e-3)


def test_monochrome1_and_presentation_lut_shape() -> None:
    stored = np.arange(256, dtype=np.uint8).reshape(16, 16)
    plain = grayscale(_ds(), 0, "MONOCHROME2").to_display(stored)
    assert np.array_equal(plain, stored)  # no VOI: the frame's own range over 0..255
    assert np.array_equal(grayscale(_ds(), 0, "MONOCHROME1").to_display(stored), 255 - stored)
    # PS3.3 C.8.11.6.1.2: the image's own Presentation LUT Shape says how it is displayed.
    assert np.array_equal(grayscale(_ds(PresentationLUTShape="IDENTITY"), 0, "MONOCHROME1").to_display(stored), stored)
    assert np.array_equal(grayscale(_ds(PresentationLUTShape="INVERSE"), 0, "MONOCHROME2").to_display(stored),
                          255 - stored)
    # A presentation state's shape overrides both.
    assert np.array_equal(grayscale(_ds(), 0, "MONOCHROME1", inverse=False).to_display(stored), stored)


def test_a_requested_window_overrides_the_objects() -> None:
    ds = _ds(WindowCenter=[100, 300], WindowWidth=[50, 60], VOILUTFunction="SIGMOID")
    assert object_window(ds) == Window(100, 50, "SIGMOID")
    mapping = grayscale(ds, 0, "MONOCHROME2", window=Window(0, 10))
    assert mapping.window == Window(0, 10)


def test_an_unusable_stored_window_falls_back_to_the_voi_lut() -> None:
    lut = _ds(LUTDescriptor=[4, 10, 8], LUTData=[0, 50, 100, 255])
    ds = _ds(WindowCenter=0, WindowWidth=0, VOILUTSequence=[lut])
    mapping = grayscale(ds, 0, "MONOCHROME2")
    assert mapping.window is None and mapping.voi_lut is lut
    stored = np.array([[0, 10, 11, 12, 13, 200]], dtype=np.uint16)
    # PS3.3 C.11.2.1.1: below the first mapped value the first entry, beyond the last the last.
    assert mapping.to_display(stored).tolist() == [[0, 0, 50, 100, 255, 255]]


def test_modality_lut_sequence() -> None:
    item = _ds(LUTDescriptor=[3, 5, 16], LUTData=[0, 1000, 4000], ModalityLUTType="US")
    ds = _ds(ModalityLUTSequence=[item], WindowCenter=2000, WindowWidth=4001, VOILUTFunction="LINEAR_EXACT")
    got = grayscale(ds, 0, "MONOCHROME2").to_display(np.array([[4, 5, 6, 7, 8]], dtype=np.uint16))
    want = np.rint(np.clip(((np.array([0, 0, 1000, 4000, 4000]) - 2000) / 4001 + 0.5) * 255, 0, 255))
    assert got.tolist() == [want.astype(int).tolist()]


def test_functional_groups_supply_each_frames_window_and_rescale() -> None:
    shared = _ds(PixelValueTransformationSequence=[_ds(RescaleSlope=1, RescaleIntercept=-1000)])
    frames = [_ds(FrameVOILUTSequence=[_ds(WindowCenter=center, WindowWidth=100)]) for center in (0, 500)]
    ds = _ds(SharedFunctionalGroupsSequence=[shared], PerFrameFunctionalGroupsSequence=frames)
    second = frame_attributes(ds, 1)
    assert second.RescaleIntercept == -1000 and second.WindowCenter == 500
    assert grayscale(ds, 1, "MONOCHROME2").window == Window(500, 100)
    assert "WindowCenter" not in ds  # the object itself is left as it was
