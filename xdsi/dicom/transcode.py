"""Transfer syntax conversion of instances and of single frames (PS3.5 8.2, A.4; PS3.18 8.7.3).

Over 500 lines: instance and frame conversion share one table of what each target accepts
(``_PROFILES``) and one decode/encode path per frame, which must not drift apart.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from types import ModuleType
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import get_decoder, get_encoder
from pydicom.pixels.utils import pack_bits
from pydicom.sequence import Sequence
from pydicom.uid import UID

from xdsi.dicom import uids
from xdsi.dicom.byteorder import WORD_WIDTH, swap_bytes
from xdsi.dicom.tags import (
    EXTENDED_OFFSET_TABLE,
    EXTENDED_OFFSET_TABLE_LENGTHS,
    PIXEL_DATA,
    PIXEL_DATA_TAGS,
    UNDEFINED_LENGTH,
)
from xdsi.dicom.uids import (
    FRAME_MEDIA_TYPES,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    RLE_LOSSLESS,
)
from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


imagecodecs = _optional("imagecodecs")  # optional: only the JPEG (ISO 10918) targets need it

_LOG = logging.getLogger(__name__)

# Lossy settings; the test suite asserts the error bounds they give.
JPEG_QUALITY = 90  # libjpeg quality scale, 1-100
JPEG_LS_NEAR = 2  # JPEG-LS NEAR: every sample within ±2 of the original
JPEG_2000_PSNR = 45.0  # JPEG 2000 irreversible: PSNR (dB) against each frame's own value range

NATIVE_TARGETS = frozenset(
    {uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN}
)
# PS3.3 C.7.6.1.1.5.1: Lossy Image Compression Method defined terms.
_LOSSY_METHODS = {
    JPEG_BASELINE: "ISO_10918_1",
    JPEG_EXTENDED: "ISO_10918_1",
    JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1",
    JPEG_2000: "ISO_15444_1",
}
_PYDICOM_TARGETS = (RLE_LOSSLESS, JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_2000)
_JPEG_TARGETS = (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1)
_EXTENDED_OFFSET_TABLE = (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS)
_MAX_VALUE_LENGTH = UNDEFINED_LENGTH - 1  # PS3.5 7.1.1: a 32-bit even length, 0xFFFFFFFF meaning undefined
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_J2K_MIN_SIDE = 1 << 5  # 6 resolution levels halve each side 5 times


@dataclass(frozen=True)
class PixelDescription:
    """The Image Pixel module values (PS3.3 C.7.6.3) that say how one frame's bytes are laid out."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int = 0
    number_of_frames: int = 1

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PixelDescription:
        """Read and check the values; MalformedDicom names the first one that is missing or wrong."""
        rows = _integer(ds, "Rows", 1, 0xFFFF)
        columns = _integer(ds, "Columns", 1, 0xFFFF)
        samples = _integer(ds, "SamplesPerPixel", 1, 4)
        allocated = _integer(ds, "BitsAllocated", 1, 64)
        # PS3.3 C.7.6.3.1.1: Bits Allocated is 1 or a multiple of 8.
        if allocated != 1 and allocated % 8:
            raise MalformedDicom(f"Bits Allocated {allocated} is neither 1 nor a multiple of 8")
        stored = _integer(ds, "BitsStored", 1, allocated, default=allocated)
        representation = _integer(ds, "PixelRepresentation", 0, 1, default=0)
        frames = _integer(ds, "NumberOfFrames", 1, 1 << 31, default=1)
        planar = _integer(ds, "PlanarConfiguration", 0, 1, default=0) if samples > 1 else 0
        photometric = str(ds.get("PhotometricInterpretation") or "").strip()
        if not photometric:
            raise MalformedDicom("Photometric Interpretation (0028,0004) is missing")
        return cls(rows, columns, samples, allocated, stored, representation, photometric, planar, frames)

    @property
    def decoded_bytes(self) -> int:
        """Bytes that decoding every frame allocates: unpacked 1-bit pixels take a byte each."""
        cells = self.rows * self.columns * self.samples_per_pixel * self.number_of_frames
        return cells * max(self.bits_allocated, 8) // 8

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame at Bits Allocated; ratios of lossy compression count these."""
        return (self.rows * self.columns * self.samples_per_pixel * self.bits_allocated + 7) // 8

    def pydicom_options(self) -> dict[str, Any]:
        """The keyword arguments pydicom's pixel decoders and encoders take for such pixels."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "samples_per_pixel": self.samples_per_pixel,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": self.pixel_representation,
            "photometric_interpretation": self.photometric_interpretation,
            "planar_configuration": self.planar_configuration,
            "number_of_frames": self.number_of_frames,
        }


@dataclass(frozen=True)
class _Profile:
    """One row of a PS3.5 8.2 table: which decoded pixels a target takes, and what they become."""

    photometrics: tuple[str, ...]
    bits_allocated: tuple[int, ...]
    bits_stored: range
    signed: bool
    output: str | None = None  # Photometric Interpretation after encoding; None: unchanged


_BITS_16 = (8, 16)
_BITS_40 = (8, 16, 24, 32, 40)
_PROFILES: dict[str, tuple[_Profile, ...]] = {
    # PS3.5 Table 8.2.2-1
    RLE_LOSSLESS: (
        _Profile(_MONOCHROME, _BITS_16, range(1, 17), True),
        _Profile(("PALETTE COLOR", "RGB"), _BITS_16, range(1, 17), False),
        _Profile(("YBR_FULL",), (8,), range(1, 9), False),
    ),
    # PS3.5 Table 8.2.3-1
    JPEG_LS_LOSSLESS: (
        _Profile(_MONOCHROME, _BITS_16, range(2, 17), True),
        _Profile(("PALETTE COLOR", "RGB"), _BITS_16, range(2, 17), False),
        _Profile(("YBR_FULL",), (8,), range(2, 9), False),
    ),
    JPEG_LS_NEAR_LOSSLESS: (
        _Profile(_MONOCHROME, _BITS_16, range(2, 17), True),
        _Profile(("RGB",), _BITS_16, range(2, 17), False),
        _Profile(("YBR_FULL",), (8,), range(2, 9), False),
    ),
    # PS3.5 Table 8.2.4-1 (Bits Stored up to 38, of which pylibjpeg-openjpeg encodes 24);
    # 8.2.4: RGB is coded with the reversible (RCT) or irreversible (ICT) colour transform.
    JPEG_2000_LOSSLESS: (
        _Profile(_MONOCHROME, _BITS_40, range(1, 25), True),
        _Profile(("PALETTE COLOR",), _BITS_16, range(1, 17), False),
        _Profile(("RGB",), _BITS_40, range(1, 25), False, "YBR_RCT"),
        _Profile(("YBR_FULL",), _BITS_40, range(1, 25), False),
    ),
    JPEG_2000: (
        _Profile(_MONOCHROME, _BITS_40, range(1, 25), True),
        _Profile(("RGB",), _BITS_40, range(1, 25), False, "YBR_ICT"),
        _Profile(("YBR_FULL",), _BITS_40, range(1, 25), False),
    ),
    # PS3.5 Table 8.2.1-1; 8.2.1: colour is coded as YCbCr with 4:2:2 chroma, YBR_FULL_422.
    JPEG_BASELINE: (
        _Profile(_MONOCHROME, (8,), range(8, 9), False),
        _Profile(("RGB", "YBR_FULL"), (8,), range(8, 9), False, "YBR_FULL_422"),
    ),
    JPEG_EXTENDED: (
        _Profile(_MONOCHROME, (8,), range(8, 9), False),
        _Profile(_MONOCHROME, (16,), range(1, 13), False),
    ),
    # PS3.5 Table 8.2.1-2; libjpeg-turbo codes precisions 2 to 16. YBR_FULL is left out: the
    # YCbCr lossless streams libjpeg-turbo writes (separate chroma Huffman tables) are
    # misdecoded by pylibjpeg-libjpeg, so their round trip cannot be vouched for.
    JPEG_LOSSLESS: (
        _Profile(_MONOCHROME, _BITS_16, range(2, 17), True),
        _Profile(("PALETTE COLOR", "RGB"), _BITS_16, range(2, 17), False),
    ),
}
_PROFILES[JPEG_LOSSLESS_SV1] = _PROFILES[JPEG_LOSSLESS]


def target_syntaxes() -> frozenset[str]:
    """Transfer syntaxes this host can produce, from the codecs installed.

    Explicit VR Big Endian is not among them: it is retired, and PS3.18 8.7.3 forbids it.
    """
    return _target_syntaxes()


@lru_cache(maxsize=1)
def _target_syntaxes() -> frozenset[str]:
    found = set(NATIVE_TARGETS)
    for uid in _PYDICOM_TARGETS:
        if get_encoder(uid).is_available:
            found.add(uid)
    found.update(uid for uid in _JPEG_TARGETS if _jpeg_ready(uid))
    return frozenset(found)


def can_transcode(source: str, target: str) -> bool:
    """Whether ``transcode`` may succeed; it can still refuse pixels a target's profile excludes."""
    if not uids.is_known_transfer_syntax(source) or not uids.is_known_transfer_syntax(target):
        return False
    if source == target:
        return True
    if target not in target_syntaxes():
        return False
    return not uids.is_encapsulated(source) or _decodable(source)


def transcode(ds: Dataset, target: str, *, max_pixel_bytes: int) -> FileDataset:
    """A dataset to write with ``dcmwrite`` in ``target``, with SOP Instance UID kept.

    Always a new FileDataset, so the caller's dataset keeps its transfer syntax; element
    objects are shared until one must change, and deferred values of ``ds`` are read (so a
    dataset from ``parsing.open_instance`` must be transcoded inside its ``with`` block).
    Native to native changes no pixel, except that big endian words are swapped (PS3.5 7.3).
    Lossy output only for a lossy target, and then Lossy Image Compression and its ratio and
    method are recorded (PS3.3 C.7.6.1.1.5). A missing codec or a pixel layout the target
    cannot carry raises NotAcceptable; pixels that cannot be decoded raise MalformedDicom;
    more than ``max_pixel_bytes`` of decoded pixels raise InstanceTooLarge before decoding.
    """
    source = _source_syntax(ds)
    target = str(target)
    _check_target(source, target)
    if source == target:
        return _shallow_copy(ds, target)
    big_endian = source == uids.EXPLICIT_VR_BIG_ENDIAN
    pixel_tag = next((tag for tag in PIXEL_DATA_TAGS if tag in ds), None)
    if pixel_tag is not None and (big_endian or uids.is_encapsulated(source) or uids.is_encapsulated(target)):
        _check_size(PixelDescription.from_dataset(ds), max_pixel_bytes)  # before any pixel is read
    out = _shallow_copy(ds, target)
    _fix_nested(out, source, target, big_endian, max_pixel_bytes)
    if big_endian:
        _swap_to_little_endian(out)
    if pixel_tag is None or (not uids.is_encapsulated(source) and not uids.is_encapsulated(target)):
        return out
    if pixel_tag != PIXEL_DATA:
        name = uids.transfer_syntax_name(target)
        raise NotAcceptable(f"{ds[pixel_tag].keyword} cannot be encapsulated in {name}")
    for tag in _EXTENDED_OFFSET_TABLE:
        if tag in out:
            del out[tag]
    if uids.is_encapsulated(target):
        _encode_pixels(ds, out, source, target)
    else:
        _decode_pixels(ds, out, source)
    return out


def encode_frame(
    frame: bytes | np.ndarray, pixel: PixelDescription, target: str, *, max_pixel_bytes: int
) -> tuple[bytes, PixelDescription]:
    """Compress one frame for a WADO-RS ``/frames`` answer in a compressed media type.

    ``frame`` is either native little endian bytes laid out as ``pixel`` says (what
    ``frames.read_frame`` returns for a native instance) or the array ``decode_frame`` or
    pydicom decoded. Returns the codestream and the description of the encoded pixels
    (the photometric interpretation may change, PS3.5 8.2).
    """
    pixel = replace(pixel, number_of_frames=1)
    if not uids.is_encapsulated(target):
        raise NotAcceptable(f"{target} is not a compressed transfer syntax; native frames need no encoding")
    _check_target(uids.EXPLICIT_VR_LITTLE_ENDIAN, target)
    _check_size(pixel, max_pixel_bytes)
    if isinstance(frame, np.ndarray):
        arr, decoded = frame, _normalized(pixel)
        samples = (pixel.samples_per_pixel,) if pixel.samples_per_pixel > 1 else ()
        expected = (pixel.rows, pixel.columns, *samples)
        if arr.shape != expected:
            raise ValueError(f"frame array of shape {arr.shape} does not match {expected}")
    else:
        arr, decoded = _decode_one(bytes(frame), pixel, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    return _encode_one(arr, decoded, target)


def decode_frame(
    frame: bytes, pixel: PixelDescription, source: str, *, max_pixel_bytes: int
) -> tuple[bytes, PixelDescription]:
    """Native little endian bytes of one stored compressed frame, for ``application/octet-stream``.

    Colour stays in the stored space (a YCbCr JPEG gives YBR_FULL; JPEG 2000 undoes its
    colour transform, giving RGB); the returned description says which, with Planar
    Configuration 0.
    """
    pixel = replace(pixel, number_of_frames=1)
    if not uids.is_encapsulated(source):
        raise ValueError(f"{source} is not a compressed transfer syntax")
    if not _decodable(source):
        raise NotAcceptable(_missing_decoder(source))
    _check_size(pixel, max_pixel_bytes)
    arr, decoded = _decode_one(encapsulate([frame]), pixel, source)
    return _native_bytes([arr], decoded), decoded


def frame_media_type(transfer_syntax: str) -> str:
    """The media type of frames stored or encoded in ``transfer_syntax`` (PS3.18 Table 8.7.3-5)."""
    if not uids.is_encapsulated(transfer_syntax):
        return "application/octet-stream"
    for media_type, allowed in FRAME_MEDIA_TYPES.items():
        if transfer_syntax in allowed:
            return media_type
    raise NotAcceptable(f"frames in {uids.transfer_syntax_name(transfer_syntax)} have no media type")


def _check_target(source: str, target: str) -> None:
    if not uids.is_known_transfer_syntax(target):
        raise NotAcceptable(f"{target!r} is not a transfer syntax this archive knows")
    if source == target:
        return
    if target == uids.EXPLICIT_VR_BIG_ENDIAN:
        raise NotAcceptable("Explicit VR Big Endian is retired and not produced (PS3.18 8.7.3)")
    if target not in target_syntaxes():
        raise NotAcceptable(_missing_encoder(target))
    if uids.is_encapsulated(source) and not _decodable(source):
        raise NotAcceptable(_missing_decoder(source))


def _missing_encoder(target: str) -> str:
    name = uids.transfer_syntax_name(target)
    if target in _JPEG_TARGETS:
        if imagecodecs is None:
            return f"{name} encoding requires imagecodecs, which is not installed"
        return f"{name} encoding requires imagecodecs built with libjpeg-turbo 3 (12-bit and lossless)"
    if target in _PYDICOM_TARGETS:
        missing = "; ".join(get_encoder(target).missing_dependencies)
        return f"{name} encoding requires a codec that is not installed ({missing})"
    return f"no encoder for {name} is available on this server"


def _missing_decoder(source: str) -> str:
    name = uids.transfer_syntax_name(source)
    try:
        missing = "; ".join(get_decoder(source).missing_dependencies)
    except NotImplementedError:
        return f"no decoder for {name} exists in pydicom"
    return f"{name} decoding requires a codec that is not installed ({missing})"


@cache
def _decodable(source: str) -> bool:
    try:
        return bool(get_decoder(source).is_available)
    except NotImplementedError:
        return False


@cache
def _jpeg_ready(target: str) -> bool:
    """Probe imagecodecs once per target: older builds lack 12-bit and lossless libjpeg."""
    if imagecodecs is None or not imagecodecs.JPEG8.available:
        return False
    probe = np.arange(16, dtype=np.uint16).reshape(4, 4)
    try:
        if target == JPEG_BASELINE:
            imagecodecs.jpeg8_encode(probe.astype(np.uint8), level=JPEG_QUALITY)
        elif target == JPEG_EXTENDED:
            imagecodecs.jpeg8_encode(probe, level=JPEG_QUALITY, bitspersample=12)
        else:
            imagecodecs.jpeg8_encode(probe, lossless=True, predictor=1, bitspersample=16)
    except Exception:  # noqa: BLE001 - any failure of the probe means this build cannot do it
        return False
    return True


def _source_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        raise MalformedDicom("the dataset has no Transfer Syntax UID (0002,0010) in its file meta")
    ts = str(ts)
    if not uids.is_known_transfer_syntax(ts):
        raise MalformedDicom(f"transfer syntax {ts[:64]!r} is not one this archive reads")
    return ts


def _shallow_copy(ds: Dataset, target: str) -> FileDataset:
    elements: dict[Any, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, loading deferred values
        elem = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
            elem = ds[tag]  # a deferred value: read it now, while its file is open
        elements[tag] = elem
    implicit, little = _original_encoding(ds)
    out = FileDataset(
        "",
        elements,
        preamble=b"\x00" * 128,  # never pass on a stored preamble (PS3.10 7.1)
        file_meta=FileMetaDataset(copy.deepcopy(ds.file_meta)),
        is_implicit_VR=bool(implicit),
        is_little_endian=little is not False,
    )
    # The elements still raw are in the source encoding; dcmwrite re-encodes them from this.
    out.set_original_encoding(implicit, little, ds.original_character_set)
    out.file_meta.TransferSyntaxUID = UID(target)
    return out


def _original_encoding(ds: Dataset) -> tuple[bool | None, bool | None]:
    """How the raw elements are really encoded: pydicom records the file meta's claim, which a
    dataset written in implicit VR under an explicit transfer syntax contradicts."""
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, loading deferred values
        elem = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            return elem.is_implicit_VR, elem.is_little_endian
    implicit, little = ds.original_encoding
    return implicit, little


def _check_size(pixel: PixelDescription, max_pixel_bytes: int) -> None:
    # RELIABILITY-SECURITY A7: the decoded size, in Python ints, before anything is decoded.
    if pixel.decoded_bytes > max_pixel_bytes:
        raise InstanceTooLarge(
            f"{pixel.number_of_frames} frame(s) of {pixel.rows}x{pixel.columns}x{pixel.samples_per_pixel} "
            f"at {pixel.bits_allocated} bits decode to {pixel.decoded_bytes} bytes, "
            f"over the limit of {max_pixel_bytes}"
        )


def _decode_pixels(ds: Dataset, out: FileDataset, source: str) -> None:
    """Encapsulated to native: every frame decoded in its stored colour space."""
    decoded: PixelDescription | None = None
    arrays = []
    for arr, decoded in _iter_decoded(ds, source, PixelDescription.from_dataset(ds)):  # noqa: B007 - the last is kept
        arrays.append(arr)
    assert decoded is not None
    value = _native_bytes(arrays, decoded)
    del arrays
    _set_pixel_module(out, decoded)
    vr = "OB" if decoded.bits_allocated <= 8 else "OW"  # PS3.5 8.2: OW above 8 bits
    out[PIXEL_DATA] = DataElement(PIXEL_DATA, vr, value)
    if source in (JPEG_BASELINE, JPEG_EXTENDED) and out.get("LossyImageCompression") != "01":
        # PS3.3 C.7.6.1.1.5: once lossy compressed, always flagged so, also after decompression.
        _mark_lossy(out, _LOSSY_METHODS[source], None)


def _encode_pixels(ds: Dataset, out: FileDataset, source: str, target: str) -> None:
    pixel = PixelDescription.from_dataset(ds)
    frames: list[bytes] = []
    encoded: PixelDescription | None = None
    for arr, decoded in _iter_decoded(ds, source, pixel):
        codestream, encoded = _encode_one(arr, decoded, target)
        frames.append(codestream)
    assert encoded is not None
    _set_pixel_module(out, encoded)
    # PS3.5 A.4: a Basic Offset Table addresses 32-bit offsets; beyond, the Extended one.
    if sum(len(f) + 9 for f in frames) > _MAX_VALUE_LENGTH:
        value, offsets, lengths = encapsulate_extended(frames)
        _put(out, "ExtendedOffsetTable", offsets)
        _put(out, "ExtendedOffsetTableLengths", lengths)
    else:
        value = encapsulate(frames, has_bot=True)
    elem = DataElement(PIXEL_DATA, "OB", value, is_undefined_length=True)
    out[PIXEL_DATA] = elem
    if target in _LOSSY_METHODS:
        ratio = pixel.frame_bytes * len(frames) / max(sum(len(f) for f in frames), 1)
        _mark_lossy(out, _LOSSY_METHODS[target], ratio)


def _iter_decoded(
    ds: Dataset, source: str, stored: PixelDescription
) -> Iterator[tuple[np.ndarray, PixelDescription]]:
    """Each frame as an array in its stored colour space, with the description of that array.

    Bits Allocated stays the dataset's: pydicom sizes arrays by a JPEG 2000 or JPEG-LS
    codestream's precision, which may be narrower.
    """
    if uids.is_encapsulated(source) and not _decodable(source):
        raise NotAcceptable(_missing_decoder(source))
    decoder = get_decoder(source)
    frames = decoder.iter_array(ds, as_rgb=False)
    while True:
        with _decoding(source):
            item = next(frames, None)
        if item is None:
            return
        arr, info = item
        decoded = replace(_normalized(_described(info)), bits_allocated=stored.bits_allocated)
        yield _as_allocated(arr, decoded), decoded


def _decode_one(src: bytes, pixel: PixelDescription, source: str) -> tuple[np.ndarray, PixelDescription]:
    options = pixel.pydicom_options()
    options.update(transfer_syntax_uid=UID(source), pixel_keyword="PixelData", as_rgb=False)
    with _decoding(source):
        arr, info = get_decoder(source).as_array(src, **options)
    decoded = replace(_normalized(_described(info, pixel)), bits_allocated=pixel.bits_allocated)
    return _as_allocated(arr, decoded), decoded


def _as_allocated(arr: np.ndarray, pixel: PixelDescription) -> np.ndarray:
    """Widen an array to Bits Allocated, the cell size native bytes and encoders expect."""
    if pixel.bits_allocated not in (8, 16, 32, 64) or arr.dtype.itemsize * 8 == pixel.bits_allocated:
        return arr
    return arr.astype(f"{'i' if pixel.pixel_representation else 'u'}{pixel.bits_allocated // 8}")


@contextmanager
def _decoding(source: str) -> Iterator[None]:
    """Codec failures become MalformedDicom; codec warnings are logged, not raised."""
    name = uids.transfer_syntax_name(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (MalformedDicom, NotAcceptable, InstanceTooLarge):
            raise
        except MemoryError as exc:
            raise InstanceTooLarge(f"out of memory decoding {name} pixels") from exc
        except Exception as exc:  # pydicom and the codecs raise many types on bad data
            raise MalformedDicom(f"{name} pixel data cannot be decoded: {exc}") from exc
    for warning in caught:
        _LOG.info("decoding %s: %s", source, warning.message)


def _described(info: dict[str, Any], base: PixelDescription | None = None) -> PixelDescription:
    values = base.pydicom_options() if base is not None else {}
    values.update({k: v for k, v in info.items() if k in PixelDescription.__dataclass_fields__})
    values.setdefault("planar_configuration", 0)
    values.setdefault("bits_stored", values.get("bits_allocated"))
    values.setdefault("pixel_representation", 0)
    values.setdefault("number_of_frames", 1)
    return PixelDescription(**values)


def _normalized(pixel: PixelDescription) -> PixelDescription:
    """Describe decoded arrays: interleaved samples, and 4:2:2 chroma already upsampled."""
    photometric = pixel.photometric_interpretation
    if photometric == "YBR_FULL_422":
        # PS3.3 C.7.6.3.1.2: full resolution YCbCr is YBR_FULL; _422 names the subsampled layout.
        photometric = "YBR_FULL"
    return replace(pixel, photometric_interpretation=photometric, planar_configuration=0)


def _native_bytes(arrays: list[np.ndarray], pixel: PixelDescription) -> bytes:
    if pixel.bits_allocated == 1:
        # PS3.5 8.1.1: frames of 1-bit pixels are packed end to end, not byte aligned.
        return pack_bits(np.concatenate([a.ravel() for a in arrays]))
    kind = "i" if pixel.pixel_representation else "u"
    dtype = np.dtype(f"<{kind}{pixel.bits_allocated // 8}")
    value = b"".join(np.ascontiguousarray(a, dtype=dtype).tobytes() for a in arrays)
    if len(value) > _MAX_VALUE_LENGTH:
        raise InstanceTooLarge("decoded pixel data exceeds the 4 GiB a native value can hold")
    return value + b"\x00" if len(value) % 2 else value  # PS3.5 7.1.1: even value length


def _encode_one(arr: np.ndarray, pixel: PixelDescription, target: str) -> tuple[bytes, PixelDescription]:
    profile = _profile(pixel, target)
    encoded = replace(pixel, photometric_interpretation=profile.output or pixel.photometric_interpretation)
    if target == JPEG_EXTENDED and pixel.bits_allocated == 16:
        encoded = replace(encoded, bits_stored=12)  # PS3.5 8.2.1: Process 4 codes 12-bit samples
    name = uids.transfer_syntax_name(target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if target in _JPEG_TARGETS:
                codestream = _encode_jpeg(arr, pixel, encoded, target)
            else:
                codestream = _encode_pydicom(arr, pixel, encoded, target)
        except NotAcceptable:
            raise
        except MemoryError as exc:
            raise InstanceTooLarge(f"out of memory encoding {name}") from exc
        except Exception as exc:  # the encoders raise ValueError, RuntimeError and their own types
            raise NotAcceptable(f"{name} cannot encode these pixels: {exc}") from exc
    for warning in caught:
        _LOG.info("encoding %s: %s", target, warning.message)
    return codestream, encoded


def _profile(pixel: PixelDescription, target: str) -> _Profile:
    if target in (JPEG_2000_LOSSLESS, JPEG_2000) and min(pixel.rows, pixel.columns) < _J2K_MIN_SIDE:
        raise NotAcceptable(
            f"{uids.transfer_syntax_name(target)}: pylibjpeg-openjpeg codes 6 resolution levels, "
            f"which need at least {_J2K_MIN_SIDE} rows and columns, not {pixel.rows}x{pixel.columns}"
        )
    for profile in _PROFILES[target]:
        if (
            pixel.photometric_interpretation in profile.photometrics
            and pixel.bits_allocated in profile.bits_allocated
            and pixel.bits_stored in profile.bits_stored
            and (profile.signed or pixel.pixel_representation == 0)
        ):
            return profile
    raise NotAcceptable(
        f"{uids.transfer_syntax_name(target)} cannot carry {pixel.photometric_interpretation} pixels of "
        f"{pixel.bits_stored} of {pixel.bits_allocated} bits, "
        f"{'signed' if pixel.pixel_representation else 'unsigned'} (PS3.5 8.2)"
    )


def _encode_pydicom(arr: np.ndarray, pixel: PixelDescription, encoded: PixelDescription, target: str) -> bytes:
    options = pixel.pydicom_options()
    # openjpeg applies its colour transform when told the result is YBR_RCT/YBR_ICT.
    options["photometric_interpretation"] = encoded.photometric_interpretation
    if target == JPEG_LS_NEAR_LOSSLESS:
        options["jls_error"] = JPEG_LS_NEAR
    elif target == JPEG_2000:
        # openjpeg measures PSNR against 2**BitsStored - 1; a CT using 2,000 of 65,536 values
        # would lose everything, so the target is raised by the range the frame leaves unused.
        span = max(float(arr.max()) - float(arr.min()), 1.0)
        peak = float((1 << pixel.bits_stored) - 1)
        options["j2k_psnr"] = [JPEG_2000_PSNR + 20 * math.log10(max(peak / span, 1.0))]
    return bytes(get_encoder(target).encode(np.ascontiguousarray(arr), **options))


def _encode_jpeg(arr: np.ndarray, pixel: PixelDescription, encoded: PixelDescription, target: str) -> bytes:
    assert imagecodecs is not None
    precision = encoded.bits_stored
    if arr.dtype.kind == "i" or pixel.bits_stored < arr.dtype.itemsize * 8:
        # PS3.5 8.2.1: samples are coded as unsigned values of Bits Stored bits; signed
        # values keep their two's complement bits, as decoders sign-extend them.
        arr = arr.astype(np.int64) & ((1 << pixel.bits_stored) - 1)
    arr = np.ascontiguousarray(arr, dtype=np.uint8 if pixel.bits_allocated == 8 else np.uint16)
    colour: dict[str, Any] = {}
    if pixel.samples_per_pixel == 3:
        space = "RGB" if pixel.photometric_interpretation == "RGB" else "YCBCR"
        out_space = "YCBCR" if encoded.photometric_interpretation == "YBR_FULL_422" else space
        colour = {"colorspace": space, "outcolorspace": out_space}
        if out_space == "YCBCR" and target == JPEG_BASELINE:
            colour["subsampling"] = "422"
    if target in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        # Selection value 1 is valid for both Process 14 syntaxes (PS3.5 A.4.1).
        return bytes(imagecodecs.jpeg8_encode(arr, lossless=True, predictor=1, bitspersample=precision, **colour))
    return bytes(imagecodecs.jpeg8_encode(arr, level=JPEG_QUALITY, bitspersample=precision, **colour))


def _set_pixel_module(out: Dataset, pixel: PixelDescription) -> None:
    _put(out, "PhotometricInterpretation", pixel.photometric_interpretation)
    _put(out, "BitsStored", pixel.bits_stored)
    _put(out, "HighBit", pixel.bits_stored - 1)
    if pixel.samples_per_pixel > 1:
        _put(out, "PlanarConfiguration", pixel.planar_configuration)


def _mark_lossy(out: Dataset, method: str, ratio: float | None) -> None:
    # PS3.3 C.7.6.1.1.5: ratio and method are multi-valued, one value per lossy step, in order.
    earlier = out.get("LossyImageCompression") == "01"
    methods = list(_values(out, "LossyImageCompressionMethod")) if earlier else []
    ratios = list(_values(out, "LossyImageCompressionRatio")) if earlier else []
    _put(out, "LossyImageCompression", "01")
    if ratio is not None and len(ratios) == len(methods):
        _put(out, "LossyImageCompressionRatio", [*ratios, f"{ratio:.2f}"[:16]])
    _put(out, "LossyImageCompressionMethod", [*methods, method])


def _values(ds: Dataset, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _put(ds: Dataset, keyword: str, value: object) -> None:
    """Replace the element whole: element objects may be shared with the caller's dataset."""
    tag = tag_for_keyword(keyword)
    assert tag is not None
    ds[tag] = DataElement(tag, dictionary_VR(tag), value)


def _fix_nested(out: Dataset, source: str, target: str, big_endian: bool, max_pixel_bytes: int) -> None:
    """Copy, then fix, sequences whose items hold encapsulated pixels or big endian words."""
    for tag in list(out.keys()):
        if not _is_sequence(out, tag):
            continue
        elem = out[tag]  # a raw sequence is parsed here, into ``out`` alone
        if not (big_endian or _has_encapsulated(elem.value)):
            continue
        elem = copy.deepcopy(elem)
        out[tag] = elem
        if uids.is_encapsulated(source) and source != target:
            for item in _walk_items(elem.value):
                _decode_nested(item, source, max_pixel_bytes)


def _is_sequence(ds: Dataset, tag: int) -> bool:
    vr = ds.get_item(tag, keep_deferred=True).VR
    if vr in (None, "UN"):  # implicit VR: the dictionary knows public sequences
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return vr == "SQ"


def _has_encapsulated(items: Sequence) -> bool:
    return any(PIXEL_DATA in item and _undefined_length(item, PIXEL_DATA) for item in _walk_items(items))


def _undefined_length(ds: Dataset, tag: int) -> bool:
    elem = ds.get_item(tag, keep_deferred=True)
    if isinstance(elem, RawDataElement):
        return elem.length == UNDEFINED_LENGTH
    return bool(elem.is_undefined_length)


def _walk_items(items: Sequence) -> Iterator[Dataset]:
    for item in items:
        yield item
        for elem in item:
            if elem.VR == "SQ":
                yield from _walk_items(elem.value)


def _decode_nested(item: Dataset, source: str, max_pixel_bytes: int) -> None:
    """Icon pixels keep a codestream only in the syntax it was made in; native ones fit any."""
    if PIXEL_DATA not in item or not _undefined_length(item, PIXEL_DATA):
        return
    pixel = PixelDescription.from_dataset(item)
    _check_size(pixel, max_pixel_bytes)
    item.file_meta = FileMetaDataset()
    item.file_meta.TransferSyntaxUID = UID(source)
    try:
        arrays, decoded = [], pixel
        for arr, decoded in _iter_decoded(item, source, pixel):  # noqa: B007 - the last is kept
            arrays.append(arr)
    finally:
        del item.file_meta
    _set_pixel_module(item, decoded)
    item[PIXEL_DATA] = DataElement(
        PIXEL_DATA, "OB" if decoded.bits_allocated <= 8 else "OW", _native_bytes(arrays, decoded)
    )


def _swap_to_little_endian(ds: Dataset) -> None:
    """PS3.5 7.3: values of OW, OF, OL, OD and OV are words; big endian words are byte-swapped.

    UN values are left as they are: their words cannot be known without their VR.
    """
    for tag in list(ds.keys()):
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_to_little_endian(item)
            continue
        unit = WORD_WIDTH.get(elem.VR)
        if tag == PIXEL_DATA and not elem.is_undefined_length:
            allocated = int(ds.get("BitsAllocated") or 8)
            # pydicom reads cells of 16 bits or more as big endian wholes, smaller ones by OW word.
            unit = allocated // 8 if allocated >= 16 else unit
        if unit and elem.value:
            ds[tag] = DataElement(tag, elem.VR, swap_bytes(bytes(elem.value), unit))


def _integer(ds: Dataset, keyword: str, low: int, high: int, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise MalformedDicom(f"{keyword} is missing")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedDicom(f"{keyword} {str(value)[:32]!r} is not an integer") from None
    if not low <= number <= high:
        raise MalformedDicom(f"{keyword} {number} is outside {low}..{high}")
    return number
