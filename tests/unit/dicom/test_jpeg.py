"""The JPEG process, and so the transfer syntax, read from a codestream's own headers."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

from tests.dicomfiles import pydicom_files
from xdsi.dicom import jpeg, uids

JPEG_SYNTAXES = {uids.JPEG_BASELINE, uids.JPEG_EXTENDED, uids.JPEG_LOSSLESS, uids.JPEG_LOSSLESS_SV1}


def _first_frame(path: Path | str) -> tuple[bytes, str] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - a file pydicom cannot read has no frames to test
            return None
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in JPEG_SYNTAXES or "PixelData" not in ds:
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return next(generate_frames(ds.PixelData, number_of_frames=frames)), syntax


FRAMES = [(path, found) for path in pydicom_files() if (found := _first_frame(path)) is not None]


def test_the_test_data_holds_every_jpeg_process_dicom_uses() -> None:
    assert {syntax for _, (_, syntax) in FRAMES} >= {uids.JPEG_BASELINE, uids.JPEG_EXTENDED, uids.JPEG_LOSSLESS_SV1}
    assert len(FRAMES) >= 15


@pytest.mark.parametrize("path,found", FRAMES, ids=[path.name for path, _ in FRAMES])
def test_each_jpeg_frame_of_the_test_data_reads_as_its_files_transfer_syntax(path: Path, found: tuple) -> None:
    frame, syntax = found
    assert jpeg.transfer_syntax_of(frame) == syntax


def _lossless_sv1_frame() -> bytes:
    found = _first_frame(get_testdata_file("JPEG-LL.dcm"))
    assert found is not None and found[1] == uids.JPEG_LOSSLESS_SV1
    return found[0]


def test_a_lossless_stream_with_another_predictor_is_process_14_of_any_predictor() -> None:
    frame = bytearray(_lossless_sv1_frame())
    sos = frame.index(b"\xff\xda")
    components = frame[sos + 4]
    frame[sos + 5 + 2 * components] = 6  # Ss: predictor selection value 6
    assert jpeg.transfer_syntax_of(bytes(frame)) == uids.JPEG_LOSSLESS


def _pillow_jpeg(**options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(out, "JPEG", **options)
    return out.getvalue()


def test_baseline_from_another_encoder() -> None:
    assert jpeg.transfer_syntax_of(_pillow_jpeg()) == uids.JPEG_BASELINE


@pytest.mark.parametrize(
    "data",
    [
        _pillow_jpeg(progressive=True),  # progressive: no DICOM transfer syntax in use carries it
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        b"",
        b"\xff\xd8",
        b"\xff\xd8\xff\xe0\x00",  # cut inside a segment header
        b"\xff\xd8\xff\xe0\x00\x01" + b"\0" * 16,  # a segment length below its own two bytes
        b"\xff\xd8\x00\x00\x00\x00",  # no marker where one must be
    ],
    ids=["progressive", "png", "empty", "soi-only", "truncated", "bad-length", "no-marker"],
)
def test_streams_that_are_no_dicom_jpeg_give_none(data: bytes) -> None:
    assert jpeg.transfer_syntax_of(data) is None


def test_a_lossless_stream_cut_before_its_predictor_gives_none() -> None:
    frame = _lossless_sv1_frame()
    sos = frame.index(b"\xff\xda")
    assert jpeg.transfer_syntax_of(frame[: sos + 5]) is None
