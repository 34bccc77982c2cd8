"""One stored frame decoded to an array a renderer can map to display values: grayscale samples as
stored (signed or not), or colour as 8-bit RGB (PS3.3 C.7.6.3.1.2 photometric interpretations).

Only the frame asked for is decoded: the caller passes its bytes, read alone through the frame
table (``frames.read_frame``). Compressed frames go through the decoders ``transcode`` uses,
native ones through pydicom's native decoder, which knows 1-bit packing, planar configuration
and subsampled YBR_FULL_422; plain grayscale is read directly (``_native_gray``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
from pydicom.uid import UID

from xdsi.dicom import transcode, uids
from xdsi.dicom.transcode import PixelDescription
from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable

GRAYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})
# Colour spaces pydicom converts to RGB (PS3.3 C.7.6.3.1.2); JPEG 2000's YBR_RCT/YBR_ICT come out
# of its decoder as RGB already.
_YBR = frozenset({"YBR_FULL", "YBR_FULL_422"})
_AS_RGB = frozenset({"RGB", "YBR_RCT", "YBR_ICT"})


@dataclass(frozen=True)
class DecodedFrame:
    """A frame ready for display mapping: ``gray`` (stored values, 2-D) or ``rgb`` (uint8, H x W x 3)."""

    array: np.ndarray
    photometric: str  # the stored Photometric Interpretation; MONOCHROME1/2 for grayscale

    @property
    def is_gray(self) -> bool:
        return self.array.ndim == 2


def decode(frame: bytes, pixel: PixelDescription, transfer_syntax: str, ds: Dataset, *,
           max_pixel_bytes: int) -> DecodedFrame:
    """Decode one frame's bytes (encapsulated codestream, or native little endian as
    ``frames.read_frame`` gives them) laid out as ``pixel`` says; ``ds`` supplies palettes."""
    pixel = replace(pixel, number_of_frames=1)
    photometric = pixel.photometric_interpretation
    if photometric not in GRAYSCALE and photometric != "PALETTE COLOR" and photometric not in _YBR | _AS_RGB:
        raise NotAcceptable(f"{photometric} pixels cannot be rendered (PS3.3 C.7.6.3.1.2)")
    if pixel.decoded_bytes > max_pixel_bytes:
        raise InstanceTooLarge(
            f"a frame of {pixel.rows}x{pixel.columns}x{pixel.samples_per_pixel} at {pixel.bits_allocated} bits "
            f"decodes to {pixel.decoded_bytes} bytes, over the limit of {max_pixel_bytes}")
    if uids.is_encapsulated(transfer_syntax):
        frame, pixel = transcode.decode_frame(frame, pixel, transfer_syntax, max_pixel_bytes=max_pixel_bytes)
    if photometric in GRAYSCALE and (gray := _native_gray(frame, pixel)) is not None:
        return DecodedFrame(gray, photometric)
    options = pixel.pydicom_options()
    options.update(transfer_syntax_uid=UID(uids.EXPLICIT_VR_LITTLE_ENDIAN), pixel_keyword="PixelData", as_rgb=False)
    with _decoding():
        arr, info = get_decoder(uids.EXPLICIT_VR_LITTLE_ENDIAN).as_array(frame, **options)
    decoded = str(info.get("photometric_interpretation", pixel.photometric_interpretation))
    if photometric in GRAYSCALE:
        if arr.ndim != 2:
            raise MalformedDicom(f"{photometric} pixels with {pixel.samples_per_pixel} samples per pixel")
        return DecodedFrame(arr, photometric)
    if photometric == "PALETTE COLOR":
        with _decoding():
            rgb = apply_color_lut(arr, ds)
        return DecodedFrame(_to_8_bits(rgb, 16 if rgb.dtype.itemsize > 1 else 8), photometric)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise MalformedDicom(f"{photometric} pixels need 3 samples per pixel")
    if decoded in _YBR:
        # PS3.3 C.7.6.3.1.2: YBR_FULL_422 is stored subsampled; decoded, it is full-resolution YBR_FULL.
        with _decoding():
            arr = convert_color_space(arr, "YBR_FULL", "RGB")
    return DecodedFrame(_to_8_bits(arr, pixel.bits_stored), photometric)


def _native_gray(frame: bytes, pixel: PixelDescription) -> np.ndarray | None:
    """The common grayscale frame (one sample of 8, 16 or 32 bits) read straight from its bytes, as
    pydicom's native decoder would give it, without that decoder's set-up, which costs more than
    the read for a small image. None for any other layout, and for a short frame (pydicom then
    names the fault)."""
    allocated = pixel.bits_allocated
    if pixel.samples_per_pixel != 1 or allocated not in (8, 16, 32):
        return None
    dtype = np.dtype(f"<{'i' if pixel.pixel_representation else 'u'}{allocated // 8}")
    count = pixel.rows * pixel.columns
    if len(frame) < count * dtype.itemsize:
        return None
    arr = np.frombuffer(frame, dtype, count).reshape(pixel.rows, pixel.columns)
    unused = allocated - pixel.bits_stored
    if unused:
        # PS3.5 8.1.1: the bits above Bits Stored carry nothing; shifting them out and back in the
        # sample's own type masks them (unsigned) or extends the sign (signed), as pydicom does.
        arr = np.right_shift(np.left_shift(arr, unused), unused)
    return arr


def _to_8_bits(arr: np.ndarray, bits: int) -> np.ndarray:
    """Rendered images carry at most 8 bits per channel (PS3.18 8.3.5.1)."""
    if arr.dtype == np.uint8 and bits <= 8:
        return arr
    if bits <= 8:
        return arr.astype(np.uint8)
    top = float((1 << bits) - 1)
    return np.rint(np.clip(arr, 0, top) * (255.0 / top)).astype(np.uint8)


@contextmanager
def _decoding() -> Iterator[None]:
    """Decoder failures on stored data are malformed pixels, reported as such; warnings are not
    failures (warnings are errors in the test suite, so they are caught here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except (MalformedDicom, NotAcceptable, InstanceTooLarge):
            raise
        except MemoryError as exc:
            raise InstanceTooLarge("out of memory decoding pixels") from exc
        except Exception as exc:
            raise MalformedDicom(f"pixel data cannot be decoded: {exc}") from exc
