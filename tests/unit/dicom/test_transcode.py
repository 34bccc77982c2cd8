"""Transcoding every pydicom test file to every producible syntax, and the frame codecs."""

from __future__ import annotations

import io
import math
import tracemalloc
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filewriter import dcmwrite
from pydicom.pixels import convert_color_space, get_decoder, get_encoder
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
)

from tests.dicomfiles import make_dataset, pydicom_files, to_bytes
from tests.unit.dicom.test_frames import file_id, opened, pixel_files, table_for
from xdsi.dicom import transcode as tc
from xdsi.dicom import uids
from xdsi.dicom.frames import read_frame
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.dicom.transcode import (
    PixelDescription,
    can_transcode,
    decode_frame,
    encode_frame,
    frame_media_type,
    target_syntaxes,
    transcode,
)
from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable

MAX_PIXELS = 512 << 20  # RELIABILITY-SECURITY limits table: decoded pixels per instance
SAMPLED_FRAMES = 3  # multi-frame files keep their first, middle and last frames
# Stated error bounds of the lossy targets, measured against the source's decoded pixels
# (RGB for colour); PSNR's peak is the source's own value range.
MIN_PSNR = {uids.JPEG_BASELINE: 30.0, uids.JPEG_EXTENDED: 35.0, uids.JPEG_2000: 40.0}
MAX_ABS_ERROR = {uids.JPEG_LS_NEAR_LOSSLESS: tc.JPEG_LS_NEAR}
LOSSY_METHOD = {
    uids.JPEG_BASELINE: "ISO_10918_1",
    uids.JPEG_EXTENDED: "ISO_10918_1",
    uids.JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1",
    uids.JPEG_2000: "ISO_15444_1",
}
# Refusals where pydicom's encoding profiles would allow the pixels but a codec here cannot.
CODEC_LIMITS = (
    "resolution levels",  # pylibjpeg-openjpeg's 6 DWT levels need 32 rows and columns
    "destination buffer is too small",  # pyjpegls on 3x3 images
    "supported range of pixel values when performing lossy JPEG-LS",  # pydicom's NEAR bound for signed
)


@dataclass(frozen=True)
class Pair:
    target: str
    outcome: str  # lossless | lossy | refused | malformed
    note: str = ""
    problem: str = ""


def read(path: Path | bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # several test files contradict themselves on purpose
        return dcmread(io.BytesIO(path) if isinstance(path, bytes) else path)


def decoded(ds: Dataset, as_rgb: bool) -> tuple[np.ndarray, dict[str, object]]:
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = list(decoder.iter_array(ds, as_rgb=as_rgb))
    return np.stack([arr for arr, _ in frames]), frames[0][1]


def sampled(ds: Dataset) -> Dataset:
    """Keep every file but only three frames of a long one, to bound the suite's time."""
    try:
        count = int(ds.get("NumberOfFrames") or 1)
    except ValueError:  # badVR.dcm says '1A'
        return ds
    if count <= SAMPLED_FRAMES + 1:
        return ds
    keep = [0, count // 2, count - 1]
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        ds.PixelData = encapsulate([frames[i] for i in keep])
    else:
        size = len(ds.PixelData) // count
        ds.PixelData = b"".join(ds.PixelData[i * size : (i + 1) * size] for i in keep)
    ds.NumberOfFrames = len(keep)
    return ds


def values(ds: Dataset, keyword: str) -> list[object]:
    value = ds.get(keyword)
    return [] if value is None else [value] if isinstance(value, str | float) else list(value)


def psnr(source: np.ndarray, result: np.ndarray) -> float:
    a, b = source.astype(np.float64), result.astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    peak = max(float(a.max() - a.min()), 1.0)
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def pydicom_allows(stored: dict[str, object], ds: Dataset, target: str) -> bool:
    """pydicom's own table of PS3.5 8.2 encoding profiles, as an independent oracle."""
    photometric = str(stored["photometric_interpretation"]).replace("YBR_FULL_422", "YBR_FULL")
    outputs = {photometric}
    if photometric in ("RGB", "YBR_FULL"):
        outputs |= {"YBR_FULL_422", "YBR_RCT", "YBR_ICT"}
    for name, spp, representations, allocated, stored_bits in ENCODING_PROFILES[UID(target)]:
        if (
            name in outputs
            and spp == ds.SamplesPerPixel
            and ds.PixelRepresentation in representations
            and ds.BitsAllocated in allocated
            and ds.BitsStored in stored_bits
        ):
            return True
    return False


def legitimate_refusal(message: str, stored: dict[str, object] | None, ds: Dataset, target: str) -> bool:
    if any(limit in message for limit in CODEC_LIMITS):
        return True
    if "cannot carry" not in message or stored is None:
        return False
    if target in (uids.JPEG_LOSSLESS, uids.JPEG_LOSSLESS_SV1) and "YBR_FULL" in message:
        return True  # documented: pylibjpeg-libjpeg misdecodes libjpeg-turbo's lossless YCbCr
    if target in (uids.JPEG_2000_LOSSLESS, uids.JPEG_2000) and ds.BitsStored > 24:
        return True  # documented: pylibjpeg-openjpeg encodes at most 24 bits
    return not pydicom_allows(stored, ds, target)


@cache
def run_file(path: Path) -> tuple[Pair, ...]:
    """Every target for one file: transcode, write, read back, decode, compare."""
    ds = sampled(read(path))
    source = str(ds.file_meta.TransferSyntaxUID)
    sop_uid = ds.get("SOPInstanceUID")
    try:
        source_raw, stored = decoded(ds, as_rgb=False)
        source_rgb = source_raw if ds.SamplesPerPixel == 1 else decoded(ds, as_rgb=True)[0]
    except Exception:  # noqa: BLE001 - pydicom cannot decode it: the file is broken
        source_raw = source_rgb = None
        stored = None
    pairs = []
    for target in sorted(target_syntaxes()):
        try:
            out = transcode(ds, target, max_pixel_bytes=MAX_PIXELS)
        except NotAcceptable as exc:
            ok = legitimate_refusal(str(exc), stored, ds, target)
            pairs.append(Pair(target, "refused", str(exc), "" if ok else f"unexplained refusal: {exc}"))
            continue
        except MalformedDicom as exc:
            problem = "" if source_raw is None else f"decodable source called malformed: {exc}"
            pairs.append(Pair(target, "malformed", str(exc), problem))
            continue
        pairs.append(check_output(ds, source, target, out, sop_uid, source_raw, source_rgb))
    assert str(ds.file_meta.TransferSyntaxUID) == source, "the caller's dataset was changed"
    return tuple(pairs)


def check_output(
    ds: Dataset,
    source: str,
    target: str,
    out: Dataset,
    sop_uid: object,
    source_raw: np.ndarray | None,
    source_rgb: np.ndarray | None,
) -> Pair:
    buffer = io.BytesIO()
    dcmwrite(buffer, out)  # as the source: some test files lack the SOP UIDs a file meta needs
    back = read(buffer.getvalue())
    if str(back.file_meta.TransferSyntaxUID) != target or back.get("SOPInstanceUID") != sop_uid:
        return Pair(target, "lossless", problem="transfer syntax or SOP Instance UID wrong after writing")
    if source_raw is None:
        # A broken source may still change native encoding; its pixel bytes must pass untouched.
        same = source != ExplicitVRBigEndian and back.PixelData[: len(ds.PixelData)] == ds.PixelData
        return Pair(target, "lossless", "undecodable source, bytes kept", "" if same else "pixel bytes changed")
    assert source_rgb is not None
    lossy = target in LOSSY_METHOD and target != source  # the same syntax passes pixels through
    try:
        result, _ = decoded(back, as_rgb=lossy)
    except Exception as exc:  # noqa: BLE001 - any failure is the test's verdict on the output
        return Pair(target, "lossy" if lossy else "lossless", problem=f"output does not decode: {exc}")
    expected = source_rgb if lossy else source_raw
    if result.shape != expected.shape:
        return Pair(target, "lossless", problem=f"shape {result.shape} != {expected.shape}")
    if not lossy:
        same = np.array_equal(result, expected)
        return Pair(target, "lossless", problem="" if same else "pixels differ after a lossless transcode")
    if back.get("LossyImageCompression") != "01" or values(back, "LossyImageCompressionMethod")[-1:] != [
        LOSSY_METHOD[target]
    ]:
        return Pair(target, "lossy", problem="lossy attributes not recorded (PS3.3 C.7.6.1.1.5)")
    if target in MAX_ABS_ERROR:
        raw, _ = decoded(back, as_rgb=False)
        error = int(np.max(np.abs(raw.astype(np.int64) - source_raw.astype(np.int64))))
        ok = error <= MAX_ABS_ERROR[target]
        return Pair(target, "lossy", f"max error {error}", "" if ok else f"max error {error}")
    value = psnr(expected, result)
    ok = value >= MIN_PSNR[target]
    return Pair(target, "lossy", f"PSNR {value:.1f} dB", "" if ok else f"PSNR {value:.1f} dB below bound")


@pytest.mark.parametrize("path", pixel_files(), ids=file_id)
def test_every_file_to_every_target(path: Path) -> None:
    problems = [f"{pair.target}: {pair.problem}" for pair in run_file(path) if pair.problem]
    assert not problems


def test_pair_counts() -> None:
    """All (file, target) pairs, lossless, lossy, refused (with reason) or malformed; none skipped."""
    files = pixel_files()
    counts: Counter[str] = Counter()
    for path in files:
        pairs = run_file(path)
        assert len(pairs) == len(target_syntaxes())
        counts.update(pair.outcome for pair in pairs)
    print(f"\n{len(files)} files x {len(target_syntaxes())} targets: {dict(counts)}")
    assert sum(counts.values()) == len(files) * len(target_syntaxes())
    assert counts["lossless"] > 1000 and counts["lossy"] > 200 and counts["refused"] > 0
    assert counts["malformed"] < 5 * len(target_syntaxes())


def test_producible_syntaxes() -> None:
    produced = target_syntaxes()
    assert {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian} <= produced
    assert {RLELossless, JPEGLSLossless, uids.JPEG_LS_NEAR_LOSSLESS} <= produced
    assert {uids.JPEG_2000_LOSSLESS, uids.JPEG_2000} <= produced
    assert {uids.JPEG_BASELINE, uids.JPEG_EXTENDED, uids.JPEG_LOSSLESS, uids.JPEG_LOSSLESS_SV1} <= produced
    assert ExplicitVRBigEndian not in produced


def test_can_transcode() -> None:
    assert can_transcode(ExplicitVRBigEndian, ExplicitVRLittleEndian)
    assert can_transcode(uids.JPEG_BASELINE, RLELossless)
    assert can_transcode("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.201")  # same: passed through
    assert can_transcode("1.2.840.10008.1.2.4.201", ExplicitVRLittleEndian)  # openjpeg decodes HTJ2K
    assert not can_transcode(ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.201")  # nothing encodes HTJ2K
    assert not can_transcode("1.2.840.10008.1.2.4.100", ExplicitVRLittleEndian)  # MPEG-2: no decoder
    assert not can_transcode(ExplicitVRLittleEndian, ExplicitVRBigEndian)
    assert not can_transcode(ExplicitVRLittleEndian, "1.2.3")


def pydicom_file(name: str) -> Path:
    return next(p for p in pydicom_files() if p.name == name)


@pytest.mark.parametrize(
    ("big", "little"),
    [
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm"),
        ("liver_expb.dcm", "liver.dcm"),
        ("SC_rgb_expb_32bit_2frame.dcm", "SC_rgb_32bit_2frame.dcm"),
        ("SC_rgb_expb_2frame.dcm", "SC_rgb_2frame.dcm"),
    ],
)
def test_big_endian_to_explicit_little_endian_equals_the_little_endian_twin(big: str, little: str) -> None:
    out = transcode(read(pydicom_file(big)), ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    back, twin = read(to_bytes(out)), read(pydicom_file(little))
    assert back.PixelData == twin.PixelData
    for keyword in ("RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "Rows", "BitsStored"):
        assert back.get(keyword) == twin.get(keyword)


def test_deflated_to_explicit_little_endian_keeps_every_element() -> None:
    path = pydicom_file("image_dfl.dcm")
    source = read(path)
    out = transcode(source, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    data = to_bytes(out)
    back = read(data)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert b"\x08\x00\x16\x00UI" in data  # SOP Class UID in the clear: not deflated
    assert [e.tag for e in back] == [e.tag for e in source]
    assert all(back[e.tag].value == e.value for e in source)


def test_transcoding_a_parsed_instance_reads_its_deferred_pixels(tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    limits = Limits(max_bytes=1 << 30, max_inflated_bytes=1 << 30, max_deflate_ratio=1000, defer_size=1024)
    with open_instance(path, limits) as parsed:
        out = transcode(parsed.dataset, RLELossless, max_pixel_bytes=MAX_PIXELS)
        data = to_bytes(out)
    np.testing.assert_array_equal(read(data).pixel_array, read(path).pixel_array)


def test_lossy_output_records_ratio_and_method_and_leaves_the_source_alone() -> None:
    source = read(pydicom_file("US1_UNCR.dcm"))
    before = repr(source)
    out = transcode(source, uids.JPEG_BASELINE, max_pixel_bytes=MAX_PIXELS)
    assert out.PhotometricInterpretation == "YBR_FULL_422"  # PS3.5 8.2.1
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(out.LossyImageCompressionRatio) > 5
    assert repr(source) == before
    again = transcode(read(to_bytes(out)), uids.JPEG_2000, max_pixel_bytes=MAX_PIXELS)
    assert list(again.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    assert len(again.LossyImageCompressionRatio) == 2
    assert again.PhotometricInterpretation == "YBR_FULL"  # stays YCbCr, now without subsampling


def test_lossless_targets_keep_lossy_compression_unset() -> None:
    out = transcode(read(pydicom_file("CT_small.dcm")), uids.JPEG_2000_LOSSLESS, max_pixel_bytes=MAX_PIXELS)
    assert "LossyImageCompression" not in out or out.LossyImageCompression == "00"


def test_decompressing_lossy_jpeg_flags_it_lossy() -> None:
    source = read(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"))
    del source.LossyImageCompression  # as a careless sender would
    out = transcode(source, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    assert out.LossyImageCompression == "01"
    assert out.PhotometricInterpretation == "YBR_FULL"


def test_a_syntax_nothing_installed_encodes_is_not_acceptable() -> None:
    ds = read(pydicom_file("CT_small.dcm"))
    for target, named in (
        ("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000"),
        ("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2"),
        (ExplicitVRBigEndian, "retired"),
        ("1.2.3.4", "not a transfer syntax"),
    ):
        with pytest.raises(NotAcceptable, match=named):
            transcode(ds, target, max_pixel_bytes=MAX_PIXELS)


def test_without_imagecodecs_jpeg_targets_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "imagecodecs", None)
    tc._jpeg_ready.cache_clear()
    tc._target_syntaxes.cache_clear()
    try:
        assert uids.JPEG_BASELINE not in target_syntaxes()
        assert not can_transcode(ExplicitVRLittleEndian, uids.JPEG_LOSSLESS_SV1)
        with pytest.raises(NotAcceptable, match="requires imagecodecs"):
            transcode(read(pydicom_file("CT_small.dcm")), uids.JPEG_LOSSLESS_SV1, max_pixel_bytes=MAX_PIXELS)
    finally:
        monkeypatch.undo()
        tc._jpeg_ready.cache_clear()
        tc._target_syntaxes.cache_clear()
    assert uids.JPEG_BASELINE in target_syntaxes()


def test_an_undecodable_source_is_not_acceptable() -> None:
    ds = make_dataset(transfer_syntax="1.2.840.10008.1.2.4.100")
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" * 4])
    with pytest.raises(NotAcceptable, match="MPEG2"):
        transcode(ds, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)


def test_a_forged_pixel_bomb_is_refused_without_allocating() -> None:
    ds = make_dataset(rows=4, columns=4, transfer_syntax=JPEGLSLossless)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"] * 1000)
    tracemalloc.start()
    try:
        for target in (ExplicitVRLittleEndian, RLELossless):
            with pytest.raises(InstanceTooLarge, match="over the limit"):
                transcode(ds, target, max_pixel_bytes=MAX_PIXELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    pixel = PixelDescription.from_dataset(ds)
    assert pixel.decoded_bytes == 65535 * 65535 * 2 * 1000  # Python ints: no overflow
    with pytest.raises(InstanceTooLarge):
        decode_frame(b"\xff\xd8\xff\xd9", pixel, JPEGLSLossless, max_pixel_bytes=MAX_PIXELS)


def test_broken_pixel_descriptions_are_malformed() -> None:
    ds = make_dataset(transfer_syntax=JPEGLSLossless)
    ds.PixelData = encapsulate([b"\xff\xd8garbage\xff\xd9"])
    with pytest.raises(MalformedDicom, match="cannot be decoded"):
        transcode(ds, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    ds.BitsAllocated = 12
    with pytest.raises(MalformedDicom, match="Bits Allocated 12"):
        transcode(ds, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(MalformedDicom, match="Transfer Syntax UID"):
        transcode(ds, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)


def test_encapsulated_icons_become_native(tmp_path: Path) -> None:
    icon = make_dataset(rows=8, columns=8)
    ds = make_dataset(rows=64, columns=64)
    item = Dataset()
    for keyword in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelData",
    ):
        setattr(item, keyword, icon.get(keyword))
    ds.IconImageSequence = [item]
    compressed = transcode(ds, JPEGLSLossless, max_pixel_bytes=MAX_PIXELS)
    options = PixelDescription.from_dataset(icon).pydicom_options()
    icon_stream = get_encoder(JPEGLSLossless).encode(icon.pixel_array, **options)
    compressed.IconImageSequence[0].PixelData = encapsulate([icon_stream])
    compressed.IconImageSequence[0]["PixelData"].is_undefined_length = True
    stored = read(to_bytes(compressed))
    out = transcode(stored, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)
    back = read(to_bytes(out))
    assert not back.IconImageSequence[0]["PixelData"].is_undefined_length
    assert back.IconImageSequence[0].PixelData == icon.PixelData
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    assert stored.IconImageSequence[0]["PixelData"].is_undefined_length  # the source is untouched


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "emri_small.dcm", "CT_small.dcm", "SC_rgb_16bit_2frame.dcm"])
def test_frames_encode_and_decode_one_at_a_time(name: str) -> None:
    """/frames: native frames from the frame table, to each compressed target and back."""
    path = pydicom_file(name)
    with opened(path) as (parsed, fp):
        table = table_for(parsed, fp)
        pixel = PixelDescription.from_dataset(parsed.dataset)
        frames = [read_frame(fp, table, n) for n in range(1, table.number_of_frames + 1)]
    expected = read(path).pixel_array
    expected = expected if table.number_of_frames > 1 else expected[np.newaxis]
    ran = 0
    for target in sorted(t for t in target_syntaxes() if UID(t).is_encapsulated):
        for number, frame in enumerate(frames):
            try:
                codestream, encoded = encode_frame(frame, pixel, target, max_pixel_bytes=MAX_PIXELS)
            except NotAcceptable as exc:
                assert "cannot carry" in str(exc)
                break
            assert frame_media_type(target) in ("image/jpeg", "image/jls", "image/jp2", "image/dicom-rle")
            native, described = decode_frame(codestream, encoded, target, max_pixel_bytes=MAX_PIXELS)
            dtype = f"<{'i' if described.pixel_representation else 'u'}{described.bits_allocated // 8}"
            shape = expected.shape[1:]
            arr = np.frombuffer(native, dtype)[: math.prod(shape)].reshape(shape)
            if described.photometric_interpretation == "YBR_FULL":
                arr = convert_color_space(arr, "YBR_FULL", "RGB")
            if target in LOSSY_METHOD:
                assert psnr(expected[number], arr) >= 30
            else:
                np.testing.assert_array_equal(arr, expected[number])
            ran += 1
    assert ran >= len(frames) * 4


def test_encode_frame_takes_an_array_and_checks_its_shape() -> None:
    ds = read(pydicom_file("US1_UNCR.dcm"))
    pixel = PixelDescription.from_dataset(ds)
    codestream, encoded = encode_frame(ds.pixel_array, pixel, uids.JPEG_2000_LOSSLESS, max_pixel_bytes=MAX_PIXELS)
    assert codestream[:2] == b"\xff\x4f" and encoded.photometric_interpretation == "YBR_RCT"
    with pytest.raises(ValueError, match="shape"):
        encode_frame(ds.pixel_array[:10], pixel, RLELossless, max_pixel_bytes=MAX_PIXELS)
    with pytest.raises(NotAcceptable, match="native frames"):
        encode_frame(ds.pixel_array, pixel, ExplicitVRLittleEndian, max_pixel_bytes=MAX_PIXELS)


def test_frame_media_types() -> None:
    assert frame_media_type(RLELossless) == "image/dicom-rle"
    assert frame_media_type(ImplicitVRLittleEndian) == "application/octet-stream"
    assert frame_media_type("1.2.840.10008.1.2.4.203") == "image/jphc"
    with pytest.raises(NotAcceptable):
        frame_media_type("1.2.840.10008.1.2.4.102")
