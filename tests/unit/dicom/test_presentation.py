"""GSPS applied to a real image, checked against a numpy computation written here."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence

from tests.dicomfiles import dataset_of, make_presentation_state
from xdsi.dicom import presentation
from xdsi.dicom.presentation import presentation_for
from xdsi.errors import InvalidRequest, MalformedDicom


def _ct() -> Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def _expected(image: Dataset, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 by hand, then the displayed area (columns 11-110, rows 21-100), the flip, the rotation."""
    hu = image.pixel_array.astype(np.float64) * 1 - 1024
    c, w = center - 0.5, width - 1
    out = np.where(hu <= c - w / 2, 0.0, np.where(hu > c + w / 2, 255.0, ((hu - c) / w + 0.5) * 255))
    gray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    area = gray[20:100, 10:110]
    return np.rot90(area[:, ::-1], k=-1)


def test_window_flip_rotation_and_displayed_area_match_numpy() -> None:
    image = _ct()
    state = presentation_for(make_presentation_state(image), image.SOPInstanceUID)
    gray = state.grayscale.to_display(image.pixel_array)
    shown = state.spatial(gray)
    expected = _expected(image, 40, 400)
    assert shown.shape == (100, 80)  # 80 rows x 100 columns, rotated
    np.testing.assert_array_equal(shown, expected)
    assert state.output_size(128, 128) == (80, 100)


def test_polyline_is_drawn_where_the_transforms_put_it() -> None:
    image = _ct()
    state = presentation_for(make_presentation_state(image), image.SOPInstanceUID)
    shown = state.spatial(state.grayscale.to_display(image.pixel_array))
    canvas = Image.fromarray(np.zeros_like(shown))  # black, so only the drawing shows
    state.draw(canvas, 128, 128)
    drawn = np.asarray(canvas)
    # The line x=20.5 (area column 10.5 after the area starts at column 11), y 30.5..80.5 (area rows 10..60):
    # flipped: x' = 100 - 10.5 = 89.5; rotated 90 clockwise (area height 80): (80 - y, x') -> a horizontal
    # line at output row 89.5, from output column 70 down to 20.
    assert drawn[89:91, 25:65].max(axis=0).min() == 255  # a one-pixel line, on row 89 or 90
    assert drawn[:85].max() == 0 and drawn[95:].max() == 0
    assert drawn[:, :15].max() == 0 and drawn[:, 76:].max() == 0


def test_inverse_sigmoid_and_output_scaling() -> None:
    image = _ct()
    gsps = make_presentation_state(image, PresentationLUTShape="INVERSE")
    gsps.SoftcopyVOILUTSequence[0].VOILUTFunction = "SIGMOID"
    gsps.DisplayedAreaSelectionSequence[0].PresentationSizeMode = "MAGNIFY"
    gsps.DisplayedAreaSelectionSequence[0].PresentationPixelMagnificationRatio = 2.0
    state = presentation_for(gsps, image.SOPInstanceUID)
    gray = state.grayscale.to_display(image.pixel_array)
    hu = image.pixel_array.astype(np.float64) - 1024
    expected = np.rint(255 - 255 / (1 + np.exp(-4 * (hu - 40) / 400))).astype(np.uint8)  # inverted, then rounded
    np.testing.assert_array_equal(gray, expected)
    assert state.output_size(128, 128) == (160, 200)
    assert state.output_size(128, 128, (100, None)) == (100, 125)


def test_voi_applies_only_to_the_images_it_references() -> None:
    image = _ct()
    gsps = make_presentation_state(image)
    other = dataset_of(ReferencedSOPClassUID=image.SOPClassUID, ReferencedSOPInstanceUID="1.2.3")
    gsps.SoftcopyVOILUTSequence[0].ReferencedImageSequence = Sequence([other])
    state = presentation_for(gsps, image.SOPInstanceUID)
    assert state.window is None and state.voi_lut is None
    gray = state.grayscale.to_display(image.pixel_array)
    # No VOI for this image: the frame's rescaled range, stretched.
    hu = image.pixel_array.astype(np.float64) - 1024
    np.testing.assert_array_equal(gray, np.rint((hu - hu.min()) * 255 / (hu.max() - hu.min())).astype(np.uint8))


def test_a_voi_lut_and_a_modality_lut_of_the_state_replace_the_images() -> None:
    image = _ct()
    gsps = make_presentation_state(image)
    del gsps.RescaleSlope, gsps.RescaleIntercept, gsps.RescaleType  # no Modality LUT: the identity
    lut = np.clip(np.arange(4096) // 16, 0, 255).astype(np.uint16)
    gsps.SoftcopyVOILUTSequence = Sequence([dataset_of(VOILUTSequence=Sequence([dataset_of(
        LUTDescriptor=[4096, 0, 8], LUTData=lut.tolist())]))])
    state = presentation_for(gsps, image.SOPInstanceUID)
    gray = state.grayscale.to_display(image.pixel_array)
    np.testing.assert_array_equal(gray, lut[np.clip(image.pixel_array, 0, 4095)].astype(np.uint8))


@pytest.mark.parametrize(("kind", "data"), [
    ("CIRCLE", [64.0, 64.0, 74.0, 64.0]),
    ("ELLIPSE", [44.0, 64.0, 84.0, 64.0, 64.0, 54.0, 64.0, 74.0]),
    ("INTERPOLATED", [30.0, 30.0, 60.0, 50.0, 90.0, 30.0]),
    ("POINT", [64.0, 64.0]),
])
def test_every_graphic_type_draws_around_its_points(kind: str, data: list[float]) -> None:
    image = _ct()
    gsps = make_presentation_state(image, ImageRotation=0, ImageHorizontalFlip="N")
    del gsps.DisplayedAreaSelectionSequence
    obj = gsps.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
    obj.GraphicType, obj.GraphicData, obj.NumberOfGraphicPoints = kind, data, len(data) // 2
    state = presentation_for(gsps, image.SOPInstanceUID)
    canvas = Image.new("L", (256, 256))  # twice the image: PIXEL units scale with the output
    state.draw(canvas, 128, 128)
    drawn = np.argwhere(np.asarray(canvas) == 255)
    assert len(drawn)
    xs, ys = data[0::2], data[1::2]
    if kind == "CIRCLE":
        assert drawn[:, 1].min() == pytest.approx(2 * 54, abs=2) and drawn[:, 1].max() == pytest.approx(2 * 74, abs=2)
    else:
        assert drawn[:, 1].min() >= 2 * min(xs) - 4 and drawn[:, 1].max() <= 2 * max(xs) + 4
        assert drawn[:, 0].min() >= 2 * min(ys) - 4 and drawn[:, 0].max() <= 2 * max(ys) + 4


def _text_drawn(body: str, top_left: tuple[float, float] = (0.1, 0.1),
                bottom_right: tuple[float, float] = (0.9, 0.4), side: int = 256) -> np.ndarray:
    """A state whose one text object is ``body`` in a box given in display units, drawn on a black canvas."""
    image = _ct()
    gsps = make_presentation_state(image)
    text = dataset_of(BoundingBoxAnnotationUnits="DISPLAY", UnformattedTextValue=body,
                      BoundingBoxTopLeftHandCorner=list(top_left), BoundingBoxBottomRightHandCorner=list(bottom_right),
                      BoundingBoxTextHorizontalJustification="LEFT")
    gsps.GraphicAnnotationSequence[0].TextObjectSequence = Sequence([text])
    del gsps.GraphicAnnotationSequence[0].GraphicObjectSequence
    state = presentation_for(gsps, image.SOPInstanceUID)
    canvas = Image.new("L", (side, side))
    state.draw(canvas, 128, 128)
    return np.asarray(canvas).astype(int)


def test_text_object_in_display_units_is_drawn_in_its_box() -> None:
    drawn = np.argwhere(_text_drawn("L", (0.5, 0.5), (0.9, 0.9), 200) == 255)
    assert len(drawn) > 10
    assert drawn.min(axis=0).tolist() >= [95, 95]


def test_hebrew_text_objects_are_drawn_in_their_letters_right_to_left() -> None:
    """Letters, not missing-glyph boxes (two words of as many letters differ), in right-to-left
    order: the word looks as its letters reversed and forced left to right (LRO ... PDF) look,
    not as its letters reversed in plain order."""
    word = "\u05e9\u05dc\u05d5\u05dd"
    shown = _text_drawn(word)
    assert (shown > 128).sum() > 200
    assert np.abs(_text_drawn("\u05d0\u05d1\u05d2") - _text_drawn("\u05d3\u05d4\u05d5")).sum() > 255 * 50
    np.testing.assert_array_equal(shown, _text_drawn("\u202d" + word[::-1] + "\u202c"))
    assert np.abs(shown - _text_drawn(word[::-1])).sum() > 255 * 50


def test_not_a_gsps_or_not_referencing_the_image_is_a_client_error() -> None:
    image = _ct()
    with pytest.raises(InvalidRequest, match="not a Grayscale Softcopy Presentation State"):
        presentation_for(image, image.SOPInstanceUID)
    with pytest.raises(InvalidRequest, match=r"does not reference image 1\.2\.9"):
        presentation_for(make_presentation_state(image), "1.2.9")
    bad = make_presentation_state(image, ImageRotation=45)
    with pytest.raises(InvalidRequest, match="Image Rotation 45"):
        presentation_for(bad, image.SOPInstanceUID)


def test_frame_references_limit_the_state_to_those_frames() -> None:
    image = _ct()
    gsps = make_presentation_state(image)
    gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedFrameNumber = [2, 3]
    assert presentation.presentation_for(gsps, image.SOPInstanceUID, 3).rotation == 90
    with pytest.raises(InvalidRequest, match="frame 1"):
        presentation.presentation_for(gsps, image.SOPInstanceUID, 1)


# --- display shutters (PS3.3 C.7.6.11, C.7.6.15), applied to P-values before the spatial step -------

def _indices(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """1-based row and column of every pixel."""
    rows, columns = np.indices(shape[:2])
    return rows + 1, columns + 1


def _shown_through(image: Dataset, visible: np.ndarray, value: int) -> np.ndarray:
    """The window by hand, the shutter's value where ``visible`` is False, then area, flip, rotation."""
    hu = image.pixel_array.astype(np.float64) - 1024
    c, w = 40 - 0.5, 400 - 1
    gray = np.clip(np.rint(np.where(hu <= c - w / 2, 0.0, np.where(hu > c + w / 2, 255.0,
                                                                   ((hu - c) / w + 0.5) * 255))), 0, 255)
    gray = np.where(visible, gray, value).astype(np.uint8)
    return np.rot90(gray[20:100, 10:110][:, ::-1], k=-1)


def test_rectangular_and_circular_shutters_match_numpy_through_flip_and_rotation() -> None:
    image = _ct()
    gsps = make_presentation_state(image, ShutterShape=["RECTANGULAR", "CIRCULAR"], ShutterLeftVerticalEdge=21,
                                   ShutterRightVerticalEdge=100, ShutterUpperHorizontalEdge=31,
                                   ShutterLowerHorizontalEdge=90, CenterOfCircularShutter=[64, 60],
                                   RadiusOfCircularShutter=40, ShutterPresentationValue=0xC000)
    state = presentation_for(gsps, image.SOPInstanceUID)
    row, column = _indices(image.pixel_array.shape)
    visible = (column >= 21) & (column <= 100) & (row >= 31) & (row <= 90) & \
        ((row - 64) ** 2 + (column - 60) ** 2 <= 40 ** 2)
    shown = state.spatial(state.shuttered(state.grayscale.to_display(image.pixel_array)))
    np.testing.assert_array_equal(shown, _shown_through(image, visible, 0xC0))
    assert 0 < visible.sum() < visible.size  # both shapes cut something


def test_polygonal_shutter_includes_its_edges_and_follows_concave_outlines() -> None:
    image = _ct()
    diamond = [20, 64, 64, 108, 108, 64, 64, 20]  # (row, column) pairs: |row - 64| + |column - 64| <= 44
    state = presentation_for(make_presentation_state(image, ShutterShape="POLYGONAL",
                                                     VerticesOfThePolygonalShutter=diamond),
                             image.SOPInstanceUID)
    row, column = _indices(image.pixel_array.shape)
    gray = state.grayscale.to_display(image.pixel_array)
    np.testing.assert_array_equal(state.shuttered(gray), np.where(np.abs(row - 64) + np.abs(column - 64) <= 44,
                                                                  gray, 0))
    ell = [10, 10, 10, 50, 30, 50, 30, 30, 50, 30, 50, 10]  # an L: two rectangles sharing an edge
    state = presentation_for(make_presentation_state(image, ShutterShape="POLYGONAL",
                                                     VerticesOfThePolygonalShutter=ell,
                                                     ShutterPresentationValue=0xFFFF), image.SOPInstanceUID)
    inside = ((row >= 10) & (row <= 30) & (column >= 10) & (column <= 50)) | \
        ((row >= 30) & (row <= 50) & (column >= 10) & (column <= 30))
    np.testing.assert_array_equal(state.shuttered(gray), np.where(inside, gray, 255))


def test_bitmap_shutter_hides_the_set_bits_of_its_overlay_plane() -> None:
    image = _ct()
    bits = np.zeros((20, 30), dtype=np.uint8)
    bits[5:15, 10:25] = 1
    gsps = make_presentation_state(image, ShutterShape="BITMAP", ShutterOverlayGroup=0x6002,
                                   ShutterPresentationColorCIELabValue=[0x8000, 0x8080, 0x8080])
    gsps.add_new(0x60020010, "US", 20)  # Overlay Rows
    gsps.add_new(0x60020011, "US", 30)  # Overlay Columns
    gsps.add_new(0x60020040, "CS", "G")  # Overlay Type
    gsps.add_new(0x60020050, "SS", [101, 111])  # Overlay Origin: row 101, column 111 (runs off the image)
    gsps.add_new(0x60020100, "US", 1)  # Overlay Bits Allocated
    gsps.add_new(0x60020102, "US", 0)  # Overlay Bit Position
    gsps.add_new(0x60023000, "OW", pack_bits(bits))
    state = presentation_for(gsps, image.SOPInstanceUID)
    gray = state.grayscale.to_display(image.pixel_array)
    hidden = np.zeros(gray.shape, dtype=bool)
    hidden[100 + 5:100 + 15, 110 + 10:128] = True  # the set bits that fall on the 128 x 128 image
    np.testing.assert_array_equal(state.shuttered(gray), np.where(hidden, 0x80, gray))  # L* 50: mid gray


def test_no_shutter_leaves_the_image_and_the_value_defaults_to_black() -> None:
    image = _ct()
    gray = presentation_for(make_presentation_state(image), image.SOPInstanceUID).grayscale.to_display(
        image.pixel_array)
    plain = presentation_for(make_presentation_state(image), image.SOPInstanceUID)
    assert plain.shutter is None and plain.shuttered(gray) is gray
    state = presentation_for(make_presentation_state(image, ShutterShape="CIRCULAR", CenterOfCircularShutter=[1, 1],
                                                     RadiusOfCircularShutter=0), image.SOPInstanceUID)
    expected = np.zeros_like(gray)
    expected[0, 0] = gray[0, 0]
    np.testing.assert_array_equal(state.shuttered(gray), expected)


@pytest.mark.parametrize(("attributes", "named"), [
    ({"ShutterShape": "HEXAGONAL"}, "HEXAGONAL"),
    ({"ShutterShape": "POLYGONAL", "VerticesOfThePolygonalShutter": [1, 1, 5, 5]}, "3 to"),
    ({"ShutterShape": "RECTANGULAR", "ShutterLeftVerticalEdge": 10}, "missing"),
    ({"ShutterShape": "RECTANGULAR", "ShutterLeftVerticalEdge": 50, "ShutterRightVerticalEdge": 10,
      "ShutterUpperHorizontalEdge": 1, "ShutterLowerHorizontalEdge": 5}, "crossed"),
    ({"ShutterShape": ["BITMAP", "CIRCULAR"], "ShutterOverlayGroup": 0x6000}, "BITMAP"),
    ({"ShutterShape": "BITMAP", "ShutterOverlayGroup": 0x6000}, "Overlay Data"),
    ({"ShutterShape": "BITMAP", "ShutterOverlayGroup": 0x5000}, "overlay group"),
])
def test_a_malformed_shutter_is_a_client_error_naming_it(attributes: dict[str, object], named: str) -> None:
    image = _ct()
    with pytest.raises(InvalidRequest, match=named):
        presentation_for(make_presentation_state(image, **attributes), image.SOPInstanceUID)


# --- overlays the state activates (PS3.3 C.9.2, C.11.7), drawn in their graphic layer -----------------

def _add_plane(ds: Dataset, group: int, bits: np.ndarray, origin: tuple[int, int]) -> None:
    ds.add_new(group << 16 | 0x0010, "US", bits.shape[0])  # Overlay Rows
    ds.add_new(group << 16 | 0x0011, "US", bits.shape[1])  # Overlay Columns
    ds.add_new(group << 16 | 0x0040, "CS", "G")  # Overlay Type
    ds.add_new(group << 16 | 0x0050, "SS", list(origin))  # Overlay Origin (row, column)
    ds.add_new(group << 16 | 0x0100, "US", 1)  # Overlay Bits Allocated
    ds.add_new(group << 16 | 0x0102, "US", 0)  # Overlay Bit Position
    ds.add_new(group << 16 | 0x3000, "OW", pack_bits(bits))


def _drawn(state: presentation.PresentationState, image: Dataset | None = None) -> np.ndarray:
    canvas = Image.new("L", state.output_size(128, 128))  # black: only what is drawn shows
    return np.asarray(state.draw(canvas, 128, 128, image))


def test_an_activated_overlay_of_the_state_follows_area_flip_and_rotation() -> None:
    image = _ct()
    bits = np.zeros((40, 50), dtype=np.uint8)
    bits[3:30, 5:12] = 1
    bits[20:25, :] = 1
    gsps = make_presentation_state(image)
    del gsps.GraphicAnnotationSequence  # the overlay alone
    _add_plane(gsps, 0x6000, bits, (31, 41))
    gsps.add_new(0x60001001, "CS", "MARKS")  # Overlay Activation Layer
    state = presentation_for(gsps, image.SOPInstanceUID)
    frame = np.zeros((128, 128), dtype=bool)
    frame[30:70, 40:90] = bits.astype(bool)
    expected = np.rot90(frame[20:100, 10:110][:, ::-1], k=-1)  # the state's area, flip, rotation
    np.testing.assert_array_equal(_drawn(state) == 255, expected)


def test_an_image_overlay_is_shown_only_when_the_state_activates_it() -> None:
    image = _ct()
    bits = np.zeros((10, 10), dtype=np.uint8)
    bits[2:8, 2:8] = 1
    _add_plane(image, 0x6002, bits, (51, 51))
    gsps = make_presentation_state(image, ImageRotation=0, ImageHorizontalFlip="N")
    del gsps.GraphicAnnotationSequence, gsps.DisplayedAreaSelectionSequence
    assert presentation_for(gsps, image.SOPInstanceUID).draw(Image.new("L", (128, 128)), 128, 128, image) \
        .getextrema() == (0, 0)  # not activated: not shown
    gsps.add_new(0x60021001, "CS", "MARKS")
    state = presentation_for(gsps, image.SOPInstanceUID)
    expected = np.zeros((128, 128), dtype=bool)
    expected[52:58, 52:58] = True
    np.testing.assert_array_equal(_drawn(state, image) == 255, expected)
    gsps.add_new(0x60021001, "CS", "")  # an empty activation layer shows nothing
    assert presentation_for(gsps, image.SOPInstanceUID).overlays == ()
    assert presentation_for(gsps, image.SOPInstanceUID).image_overlays == ()


def test_overlays_and_graphics_are_drawn_by_graphic_layer_order() -> None:
    image = _ct()
    gsps = make_presentation_state(image, ImageRotation=0, ImageHorizontalFlip="N")
    del gsps.DisplayedAreaSelectionSequence
    square = gsps.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
    square.GraphicType, square.GraphicFilled = "POLYLINE", "Y"
    square.GraphicData, square.NumberOfGraphicPoints = [10.0, 10.0, 60.0, 10.0, 60.0, 60.0, 10.0, 60.0, 10.0, 10.0], 5
    gsps.GraphicLayerSequence.append(dataset_of(GraphicLayer="PLANE", GraphicLayerOrder=2,
                                                GraphicLayerRecommendedDisplayGrayscaleValue=0x8000))
    _add_plane(gsps, 0x6000, np.ones((20, 20), dtype=np.uint8), (31, 31))
    gsps.add_new(0x60001001, "CS", "PLANE")
    drawn = _drawn(presentation_for(gsps, image.SOPInstanceUID))
    assert drawn[40, 40] == 128 and drawn[20, 20] == 255  # the plane (order 2) over the square (order 1)
    gsps.GraphicLayerSequence[1].GraphicLayerOrder = 0
    drawn = _drawn(presentation_for(gsps, image.SOPInstanceUID))
    assert drawn[40, 40] == 255 and drawn[55, 55] == 255 and drawn[12, 12] == 255
    assert drawn[62, 62] == 0 and drawn[40, 70] == 0  # outside both


def test_a_bitmap_shutter_plane_is_not_also_an_overlay() -> None:
    image = _ct()
    gsps = make_presentation_state(image, ShutterShape="BITMAP", ShutterOverlayGroup=0x6000)
    _add_plane(gsps, 0x6000, np.ones((4, 4), dtype=np.uint8), (1, 1))
    gsps.add_new(0x60001001, "CS", "MARKS")
    state = presentation_for(gsps, image.SOPInstanceUID)
    assert state.overlays == () and state.shutter is not None and state.shutter.bitmap is not None


def test_a_malformed_overlay_is_refused() -> None:
    image = _ct()
    gsps = make_presentation_state(image)
    _add_plane(gsps, 0x6000, np.ones((4, 4), dtype=np.uint8), (1, 1))
    gsps.add_new(0x60001001, "CS", "MARKS")
    gsps[0x60000050].value = [1]
    with pytest.raises(InvalidRequest, match="Overlay Origin"):
        presentation_for(gsps, image.SOPInstanceUID)
    gsps[0x60000050].value = [1, 1]
    gsps[0x60000010].value = 65535
    gsps[0x60000011].value = 65535
    with pytest.raises(InvalidRequest, match="larger than"):
        presentation_for(gsps, image.SOPInstanceUID)
    # The image's own plane, broken, is the stored object's fault: MalformedDicom, not the client's.
    plain = make_presentation_state(image)
    plain.add_new(0x60021001, "CS", "MARKS")
    _add_plane(image, 0x6002, np.ones((4, 4), dtype=np.uint8), (1, 1))
    del image[0x60020050]
    with pytest.raises(MalformedDicom):
        presentation_for(plain, image.SOPInstanceUID).draw(Image.new("L", (80, 100)), 128, 128, image)


def test_a_region_replaces_the_displayed_area_and_keeps_the_rest_of_the_state() -> None:
    image = _ct()
    gsps = make_presentation_state(image)
    gsps.DisplayedAreaSelectionSequence[0].PresentationSizeMode = "MAGNIFY"
    gsps.DisplayedAreaSelectionSequence[0].PresentationPixelMagnificationRatio = 2.0
    state = presentation_for(gsps, image.SOPInstanceUID).showing((16, 32, 80, 96))
    assert state.area_box(128, 128) == (17, 33, 80, 96)
    assert state.area is not None and state.area.size_mode == "MAGNIFY" and state.area.magnification == 2.0
    gray = state.grayscale.to_display(image.pixel_array)
    np.testing.assert_array_equal(state.spatial(gray), np.rot90(gray[32:96, 16:80][:, ::-1], k=-1))
    assert state.output_size(128, 128) == (128, 128)  # 64 x 64, magnified twice
    del gsps.DisplayedAreaSelectionSequence  # no area: the region becomes one, scaled to fit
    state = presentation_for(gsps, image.SOPInstanceUID).showing((0, 0, 10, 20))
    # 10 columns x 20 rows, rotated: 20 wide, 10 high; fitted to 40 rows.
    assert state.area_box(128, 128) == (1, 1, 10, 20) and state.output_size(128, 128, (None, 40)) == (80, 40)


def test_deidentified_keeps_the_graphics_and_drops_text_and_overlays() -> None:
    image = _ct()
    _add_plane(image, 0x6002, np.ones((10, 10), dtype=np.uint8), (51, 51))
    gsps = make_presentation_state(image)
    gsps.GraphicAnnotationSequence[0].TextObjectSequence = Sequence([dataset_of(
        BoundingBoxAnnotationUnits="DISPLAY", UnformattedTextValue="Doe^John", BoundingBoxTopLeftHandCorner=[0.5, 0.5],
        BoundingBoxBottomRightHandCorner=[0.9, 0.9], BoundingBoxTextHorizontalJustification="LEFT")])
    _add_plane(gsps, 0x6000, np.ones((10, 10), dtype=np.uint8), (1, 1))
    gsps.add_new(0x60001001, "CS", "MARKS")
    gsps.add_new(0x60021001, "CS", "MARKS")
    state = presentation_for(gsps, image.SOPInstanceUID)
    [layer] = state.layers
    assert layer.texts and layer.graphics and state.overlays and state.image_overlays
    bare = state.deidentified()
    assert not bare.layers[0].texts and bare.layers[0].graphics == layer.graphics
    assert bare.overlays == () and bare.image_overlays == ()
    assert bare.window == state.window and bare.area == state.area
