"""Frame decoding for display: the direct read of plain grayscale frames gives exactly what pydicom's
native decoder gives, on the files pydicom ships and on stored values with junk in unused bits."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from tests.dicomfiles import pydicom_files
from xdsi.dicom import uids
from xdsi.dicom.imaging import decode
from xdsi.dicom.transcode import PixelDescription
from xdsi.errors import MalformedDicom

LIMIT = 1 << 30


def _pydicom(frame: bytes, pixel: PixelDescription) -> np.ndarray:
    options = replace(pixel, number_of_frames=1).pydicom_options()
    options.update(transfer_syntax_uid=UID(uids.EXPLICIT_VR_LITTLE_ENDIAN), pixel_keyword="PixelData", as_rgb=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr, _ = get_decoder(uids.EXPLICIT_VR_LITTLE_ENDIAN).as_array(frame, **options)
    return arr


def _native_gray_files() -> list[Path]:
    found = []
    for path in pydicom_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # some of pydicom's files are deliberately broken
                ds = dcmread(path)
            pixel = PixelDescription.from_dataset(ds)
            whole = "PixelData" in ds and len(ds.PixelData) >= pixel.frame_bytes * pixel.number_of_frames
        except (InvalidDicomError, MalformedDicom, ValueError, TypeError, EOFError, OSError):
            continue  # not a file whose pixels this test is about
        if (whole and ds.file_meta.TransferSyntaxUID in (uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN)
                and pixel.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
                and pixel.bits_allocated in (8, 16, 32) and pixel.samples_per_pixel == 1):
            found.append(path)
    return found


FILES = _native_gray_files()


def test_pydicom_ships_native_grayscale_files_of_each_width() -> None:
    widths = {dcmread(path, stop_before_pixels=True).BitsAllocated for path in FILES}
    assert {8, 16} <= widths, widths


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_plain_grayscale_frames_decode_as_pydicom_decodes_them(path: Path) -> None:
    ds = dcmread(path)
    pixel = PixelDescription.from_dataset(ds)
    size = pixel.frame_bytes
    for number in sorted({0, pixel.number_of_frames - 1}):
        frame = bytes(ds.PixelData[number * size:(number + 1) * size])
        decoded = decode(frame, pixel, uids.EXPLICIT_VR_LITTLE_ENDIAN, ds, max_pixel_bytes=LIMIT)
        expected = _pydicom(frame, pixel)
        assert decoded.array.dtype == expected.dtype and np.array_equal(decoded.array, expected)


@pytest.mark.parametrize(("allocated", "stored", "signed"),
                         [(16, 12, 1), (16, 12, 0), (16, 16, 1), (8, 7, 1), (8, 6, 0), (32, 20, 1), (32, 32, 0)])
def test_junk_in_unused_bits_is_masked_or_sign_extended_as_pydicom_does(allocated: int, stored: int,
                                                                         signed: int) -> None:
    pixel = PixelDescription(rows=7, columns=9, samples_per_pixel=1, bits_allocated=allocated, bits_stored=stored,
                             pixel_representation=signed, photometric_interpretation="MONOCHROME2",
                             planar_configuration=0, number_of_frames=1)
    frame = np.random.default_rng(allocated * 100 + stored).bytes(7 * 9 * allocated // 8)
    decoded = decode(frame, pixel, uids.EXPLICIT_VR_LITTLE_ENDIAN, Dataset(), max_pixel_bytes=LIMIT)
    expected = _pydicom(frame, pixel)
    assert decoded.array.dtype == expected.dtype and np.array_equal(decoded.array, expected)
    if stored < allocated and signed:
        assert decoded.array.min() < 0 and decoded.array.min() >= -(1 << (stored - 1))
