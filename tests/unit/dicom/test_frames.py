"""Frame tables: every pydicom test file against pydicom, O(frame) reads, bit-packed and big endian frames."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit

from tests.dicomfiles import make_dataset, pydicom_files, to_bytes
from xdsi.dicom import uids
from xdsi.dicom.frames import FrameTable, extended_offsets, frame_table, read_frame
from xdsi.dicom.parsing import Limits, ParsedInstance, PixelDataLocation, open_instance
from xdsi.dicom.transcode import PixelDescription
from xdsi.errors import MalformedDicom, NotFound, XdsiError

LIMITS = Limits(max_bytes=1 << 30, max_inflated_bytes=1 << 30, max_deflate_ratio=1000, defer_size=1024)
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
SOI, EOI = b"\xff\xd8", b"\xff\xd9"


@lru_cache(maxsize=1)
def pixel_files() -> tuple[Path, ...]:
    """Every pydicom test file pydicom reads that has top-level Pixel Data."""
    found = []
    for path in pydicom_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(path, defer_size=64)
        except Exception:  # noqa: BLE001 - not DICOM, or not a PS3.10 file pydicom reads
            continue
        if "PixelData" in ds and "TransferSyntaxUID" in getattr(ds, "file_meta", {}):
            found.append(path)
    return tuple(found)


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@contextmanager
def opened(path: Path) -> Iterator[tuple[ParsedInstance, io.BufferedReader]]:
    """The parsed header and the stream its offsets refer to (the inflated one when Deflated)."""
    with open_instance(path, LIMITS) as parsed, open(parsed.dataset.filename, "rb") as fp:
        yield parsed, fp


def table_for(parsed: ParsedInstance, fp: BinaryIO) -> FrameTable:
    ds = parsed.dataset
    pixel = PixelDescription.from_dataset(ds)
    assert parsed.pixel_data is not None
    return frame_table(
        fp,
        parsed.pixel_data,
        rows=pixel.rows,
        columns=pixel.columns,
        samples_per_pixel=pixel.samples_per_pixel,
        bits_allocated=pixel.bits_allocated,
        number_of_frames=pixel.number_of_frames,
        transfer_syntax=parsed.transfer_syntax,
        photometric_interpretation=pixel.photometric_interpretation,
        extended_offsets=extended_offsets(parsed),
    )


def pydicom_reads(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dcmread(path).pixel_array is not None
    except Exception:  # noqa: BLE001 - pydicom's failure, of whatever type, is what is being checked
        return False


def test_the_pydicom_corpus_is_there() -> None:
    files = pixel_files()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some files contradict their transfer syntax, on purpose
        syntaxes = {str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in files}
    assert len(files) >= 140
    assert {ExplicitVRBigEndian, JPEGBaseline8Bit, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"} <= syntaxes


@pytest.mark.parametrize("path", pixel_files(), ids=file_id)
def test_every_frame_matches_pydicom(path: Path) -> None:
    try:
        with opened(path) as (parsed, fp):
            table = table_for(parsed, fp)
            assert FrameTable.from_bytes(table.to_bytes()) == table
            frames = [read_frame(fp, table, n) for n in range(1, table.number_of_frames + 1)]
            ts = parsed.transfer_syntax
    except MalformedDicom:
        # Refused files must be ones pydicom cannot decode either (truncated, '1A' frames, no Rows).
        assert not pydicom_reads(path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
    count = table.number_of_frames
    if uids.is_encapsulated(ts):
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths) if "ExtendedOffsetTable" in ds else None
        expected = [b"".join(f) for f in _pydicom_fragmented(ds.PixelData, count, extended)]
        assert frames == expected
        return
    if ts != ExplicitVRBigEndian and ds.BitsAllocated % 8 == 0:
        size = len(frames[0])
        assert [ds.PixelData[i * size : (i + 1) * size] for i in range(count)] == frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = ds.pixel_array
    arrays = arrays if count > 1 else arrays[np.newaxis]
    for number, frame in enumerate(frames, start=1):
        np.testing.assert_array_equal(native_array(frame, ds), arrays[number - 1], err_msg=f"frame {number}")


def _pydicom_fragmented(value: bytes, count: int, extended: tuple[bytes, bytes] | None) -> list[tuple[bytes, ...]]:
    from pydicom.encaps import generate_fragmented_frames

    return list(generate_fragmented_frames(value, number_of_frames=count, extended_offsets=extended))


def native_array(frame: bytes, ds: object) -> np.ndarray:
    """pydicom's reading of one little endian native frame."""
    pixel = PixelDescription.from_dataset(ds)  # type: ignore[arg-type]
    options = pixel.pydicom_options()
    options.update(number_of_frames=1, transfer_syntax_uid=UID(ExplicitVRLittleEndian), pixel_keyword="PixelData")
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(frame, **options)
    return arr


class CountingReader(io.RawIOBase):
    """A file that counts the bytes handed out, so a test can bound what a read touched."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer) or 0
        self.count += n
        return n


def write_instance(tmp_path: Path, ds: object, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(to_bytes(ds))  # type: ignore[arg-type]
    return path


def table_of(path: Path) -> tuple[FrameTable, CountingReader, PixelDataLocation]:
    with open_instance(path, LIMITS) as parsed:
        pixel = parsed.pixel_data
        assert parsed.dataset is not None  # pydicom reads the header while the file is open
    assert pixel is not None
    fp = CountingReader(open(path, "rb", buffering=0))  # noqa: SIM115 - the caller closes it
    return table_for(parsed, fp), fp, pixel


def test_frame_1999_of_2000_native_reads_one_frame(tmp_path: Path) -> None:
    path = write_instance(tmp_path, make_dataset(rows=4, columns=4, frames=2000))
    table, fp, _ = table_of(path)
    try:
        assert fp.count == 0  # native: pure arithmetic
        frame = read_frame(fp, table, 1999)
        assert fp.count == 32
        assert np.array_equal(np.frombuffer(frame, "<u2"), np.arange(1998 * 16, 1999 * 16))
    finally:
        fp.close()


def fake_codestream(n: int, size: int = 40) -> bytes:
    """A JPEG-looking frame: SOI, unique filler without 0xFF, EOI."""
    body = (struct.pack("<I", n) * size)[:size].replace(b"\xff", b"\x01")
    return SOI + body + EOI


def encapsulated_dataset(
    frames: list[bytes], *, value: bytes, extended: tuple[bytes, bytes] | None = None
) -> object:
    ds = make_dataset(rows=8, columns=8, transfer_syntax=JPEGBaseline8Bit)
    ds.NumberOfFrames = len(frames)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = value
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if extended is not None:
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = extended
    return ds


@pytest.mark.parametrize("layout", ["basic", "none", "extended"])
def test_frame_1999_of_2000_encapsulated_reads_headers_then_one_frame(tmp_path: Path, layout: str) -> None:
    frames = [fake_codestream(n) for n in range(2000)]
    extended = None
    if layout == "extended":
        value, offsets, lengths = encapsulate_extended(frames)
        extended = (offsets, lengths)
    else:
        value = encapsulate(frames, has_bot=layout == "basic")
    path = write_instance(tmp_path, encapsulated_dataset(frames, value=value, extended=extended))
    table, fp, _ = table_of(path)
    try:
        bot = 4 * 2000 if layout == "basic" else 0
        assert fp.count == 8 * 2002 + bot  # BOT item, 2,000 fragment headers, delimiter, BOT values
        fp.count = 0
        assert read_frame(fp, table, 1999) == frames[1998]
        assert fp.count == len(frames[1998])
        assert FrameTable.from_bytes(table.to_bytes()) == table
    finally:
        fp.close()


def location(value: bytes, prefix: int = 0) -> PixelDataLocation:
    return PixelDataLocation(0x7FE00010, "OB", prefix, None, prefix + len(value))


def build(
    value: bytes, frames: int, ts: str = JPEGBaseline8Bit, **kwargs: object
) -> tuple[FrameTable, io.BytesIO]:
    fp = io.BytesIO(b"\x00" * 16 + value)
    table = frame_table(
        fp,
        location(value, 16),
        rows=8,
        columns=8,
        samples_per_pixel=1,
        bits_allocated=8,
        number_of_frames=frames,
        transfer_syntax=ts,
        **kwargs,  # type: ignore[arg-type]
    )
    return table, fp


def test_several_fragments_per_frame_without_offsets_split_at_eoi() -> None:
    frames = [fake_codestream(n, size=60) for n in range(3)]
    value = encapsulate(frames, fragments_per_frame=3, has_bot=False) + DELIMITER
    table, fp = build(value, 3)
    assert [len(pieces) for pieces in table.ranges] == [3, 3, 3]
    assert [read_frame(fp, table, n) for n in (1, 2, 3)] == frames
    pydicom_frames = [b"".join(f) for f in _pydicom_fragmented(value, 3, None)]
    assert pydicom_frames == frames


def test_an_eoi_not_followed_by_a_new_codestream_does_not_end_a_frame() -> None:
    # The first frame's middle fragment happens to end in FFD9; its successor opens no codestream.
    first = [SOI + b"\x01" * 10, b"\x02" * 10 + EOI, b"\x03" * 10 + EOI]
    second = [SOI + b"\x04" * 10 + EOI]
    value = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"".join(_item(f) for f in first + second) + DELIMITER
    table, fp = build(value, 2)
    assert read_frame(fp, table, 1) == b"".join(first)
    assert read_frame(fp, table, 2) == second[0]


def _item(fragment: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(fragment)) + fragment


def test_single_frame_takes_every_fragment() -> None:
    frame = fake_codestream(7, size=90)
    value = encapsulate([frame], fragments_per_frame=4, has_bot=False) + DELIMITER
    table, fp = build(value, 1, ts="1.2.840.10008.1.2.5")
    assert len(table.ranges[0]) == 4
    assert read_frame(fp, table, 1) == frame


def test_extended_offset_lengths_bound_each_frame() -> None:
    frames = [fake_codestream(n, size=41 + n) for n in range(4)]  # odd and even lengths
    value, offsets, lengths = encapsulate_extended(frames)
    table, fp = build(value + DELIMITER, 4, extended_offsets=(offsets, lengths))
    # pydicom records the padded fragment lengths, and reads those.
    pydicom_frames = [b"".join(f) for f in _pydicom_fragmented(value, 4, (offsets, lengths))]
    assert [read_frame(fp, table, n) for n in range(1, 5)] == pydicom_frames
    exact = struct.pack("<4Q", *(len(f) for f in frames))
    table, fp = build(value + DELIMITER, 4, extended_offsets=(offsets, exact))
    assert [read_frame(fp, table, n) for n in range(1, 5)] == frames


@pytest.mark.parametrize("route", ["quick", "pydicom"])
def test_the_extended_offset_table_is_read_as_stored_whichever_route_parsed_the_header(
    tmp_path: Path, route: str
) -> None:
    frames = [fake_codestream(n, size=41 + n) for n in range(3)]
    value, offsets, lengths = encapsulate_extended(frames)
    cases = {"both": (offsets, lengths), "offsets only": (offsets, None), "none": None}
    for case, expected in cases.items():
        ds = encapsulated_dataset(frames, value=value, extended=(offsets, lengths))
        if case == "offsets only":
            del ds.ExtendedOffsetTableLengths  # type: ignore[attr-defined]
        elif case == "none":
            del ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths  # type: ignore[attr-defined]
        if route == "pydicom":
            ds.add_new(0x00091010, "UN", b"\x01\x02")  # type: ignore[attr-defined]  # UN: left to pydicom
        with open_instance(write_instance(tmp_path, ds, f"{case}.dcm"), LIMITS) as parsed:
            assert (parsed.elements is None) == (route == "pydicom")
            assert extended_offsets(parsed) == expected, case
            table = table_for(parsed, parsed.stream)
            padded = [f + b"\0" * (len(f) % 2) for f in frames]  # pydicom's Lengths include the padding
            assert [read_frame(parsed.stream, table, n) for n in (1, 2, 3)] == padded


def test_frame_numbers_outside_the_instance_are_not_found() -> None:
    frames = [fake_codestream(n) for n in range(3)]
    table, fp = build(encapsulate(frames) + DELIMITER, 3)
    for number in (0, 4, -1):
        with pytest.raises(NotFound):
            read_frame(fp, table, number)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bot beyond", "does not point at a fragment"),
        ("bot count", "entries for 3 frames"),
        ("fragment beyond", "beyond the value"),
        ("no delimiter", "without a sequence delimiter"),
        ("too few fragments", "cannot hold 3 frames"),
        ("extended beyond", "does not point at a fragment"),
        ("extended length", "exceeds its fragments"),
        ("markers", "delimit 1 frames, not 3"),
        ("rle without table", "frame boundaries"),
        ("no bot item", "Basic Offset Table item"),
    ],
)
def test_offsets_pointing_beyond_the_data_are_malformed(case: str, message: str) -> None:
    frames = [fake_codestream(n) for n in range(3)]
    value = encapsulate(frames) + DELIMITER
    kwargs: dict[str, object] = {}
    ts, count = JPEGBaseline8Bit, 3
    if case == "bot beyond":
        value = value[:8] + struct.pack("<L", 10_000) + value[12:]
    elif case == "bot count":
        value = b"\xfe\xff\x00\xe0\x04\x00\x00\x00\x00\x00\x00\x00" + value[20:]
    elif case == "fragment beyond":
        value = value[:-8]
        value = value[:24] + struct.pack("<L", 1 << 20) + value[28:]
    elif case == "no delimiter":
        value = value[: -len(DELIMITER)]
    elif case == "too few fragments":
        value = encapsulate(frames[:2], has_bot=False) + DELIMITER
    elif case == "extended beyond":
        value = encapsulate(frames, has_bot=False) + DELIMITER
        kwargs["extended_offsets"] = (struct.pack("<3Q", 0, 50, 1 << 40), None)
    elif case == "extended length":
        value = encapsulate(frames, has_bot=False) + DELIMITER
        offsets = struct.pack("<3Q", 0, 52, 104)
        kwargs["extended_offsets"] = (offsets, struct.pack("<3Q", 44, 44, 4000))
    elif case == "markers":
        value = encapsulate([SOI + b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, b"\x04" * 20 + EOI], has_bot=False)
        value += DELIMITER
    elif case == "rle without table":
        ts = "1.2.840.10008.1.2.5"
        value = encapsulate(frames, fragments_per_frame=2, has_bot=False) + DELIMITER
    elif case == "no bot item":
        value = DELIMITER + value
    with pytest.raises(MalformedDicom, match=message):
        build(value, count, ts=ts, **kwargs)


def native_table(
    fp: io.BytesIO, pixel: PixelDataLocation, *, rows: int, columns: int, bits_allocated: int, frames: int,
    ts: str = ExplicitVRLittleEndian,
) -> FrameTable:
    return frame_table(
        fp,
        pixel,
        rows=rows,
        columns=columns,
        samples_per_pixel=1,
        bits_allocated=bits_allocated,
        number_of_frames=frames,
        transfer_syntax=ts,
    )


def test_native_pixel_data_shorter_than_its_frames_is_malformed() -> None:
    fp = io.BytesIO(b"\x00" * 100)
    pixel = PixelDataLocation(0x7FE00010, "OW", 0, 62, 62)
    with pytest.raises(MalformedDicom, match="need 64 bytes"):
        native_table(fp, pixel, rows=4, columns=4, bits_allocated=16, frames=2)


def test_a_file_truncated_after_indexing_is_malformed_on_read() -> None:
    frames = [fake_codestream(n) for n in range(3)]
    table, fp = build(encapsulate(frames) + DELIMITER, 3)
    short = io.BytesIO(fp.getvalue()[:80])
    with pytest.raises(MalformedDicom, match="file ends"):
        read_frame(short, table, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "Rows 0"),
        ({"bits_allocated": 12}, "Bits Allocated 12"),
        ({"number_of_frames": 2_000_000}, "Number of Frames"),
        ({"transfer_syntax": JPEGBaseline8Bit}, "does not fit transfer syntax"),
    ],
)
def test_impossible_descriptions_are_malformed(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "rows": 4,
        "columns": 4,
        "samples_per_pixel": 1,
        "bits_allocated": 16,
        "number_of_frames": 1,
        "transfer_syntax": ExplicitVRLittleEndian,
    }
    args.update(kwargs)
    pixel = PixelDataLocation(0x7FE00010, "OW", 0, 32, 32)
    with pytest.raises(MalformedDicom, match=message):
        frame_table(io.BytesIO(b"\x00" * 32), pixel, **args)  # type: ignore[arg-type]


def test_bit_packed_frames_are_realigned_to_a_byte_boundary() -> None:
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, size=(5, 3, 3), dtype=np.uint8)  # 9 bits a frame: not byte aligned
    value = pack_bits(bits.ravel())
    fp = io.BytesIO(value)
    pixel = PixelDataLocation(0x7FE00010, "OB", 0, len(value), len(value))
    table = native_table(fp, pixel, rows=3, columns=3, bits_allocated=1, frames=5)
    for number in range(1, 6):
        frame = read_frame(fp, table, number)
        assert frame == pack_bits(bits[number - 1].ravel(), pad=False)
    assert FrameTable.from_bytes(table.to_bytes()) == table


@pytest.mark.parametrize(("bits", "rows"), [(8, 3), (16, 3), (32, 1), (1, 3)])
def test_big_endian_frames_come_back_little_endian(bits: int, rows: int) -> None:
    rng = np.random.default_rng(bits)
    frames = 5
    if bits == 1:
        cells = rng.integers(0, 2, size=frames * rows * 3, dtype=np.uint8)
        little = pack_bits(cells, pad=False)
        expected = [pack_bits(cells[i * rows * 3 : (i + 1) * rows * 3], pad=False) for i in range(frames)]
    else:
        cells = rng.integers(0, 1 << min(bits, 31), size=frames * rows * 3, dtype=np.uint64)
        little = cells.astype(f"<u{bits // 8}").tobytes()
        size = len(little) // frames
        expected = [little[i * size : (i + 1) * size] for i in range(frames)]
    little += b"\x00" * (-len(little) % 8)
    # PS3.5 7.3: OW words are byte-swapped; cells of 32 bits are big endian whole.
    unit = bits // 8 if bits >= 16 else 2
    big = np.frombuffer(little, f"<u{unit}").astype(f">u{unit}").tobytes()
    fp = io.BytesIO(big)
    pixel = PixelDataLocation(0x7FE00010, "OW", 0, len(big), len(big))
    table = native_table(
        fp, pixel, rows=rows, columns=3, bits_allocated=bits, frames=frames, ts=ExplicitVRBigEndian
    )
    assert [read_frame(fp, table, n) for n in range(1, frames + 1)] == expected


def test_table_bytes_round_trip_and_stay_compact() -> None:
    native = FrameTable(False, 2000, tuple(((1000 + 32 * i, 32),) for i in range(2000)), 256, 0)
    data = native.to_bytes()
    assert len(data) == 8 * (6 + 2 * 2000)
    assert FrameTable.from_bytes(data) == native
    mixed = FrameTable(True, 3, (((10, 5),), ((23, 4), (35, 6)), ((49, 1),)))
    assert FrameTable.from_bytes(mixed.to_bytes()) == mixed
    assert len(mixed.to_bytes()) == 8 * (6 + 3 + 2 * 4)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01" * 7, struct.pack("<6Q", 9, 0, 1, 0, 0, 1) + b"\x00" * 16, struct.pack("<6Q", 1, 0, 2, 0, 0, 2)],
    ids=["empty", "odd", "version", "short"],
)
def test_corrupt_table_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        FrameTable.from_bytes(data)


def test_unreadable_pixel_files_are_refused_as_pydicom_refuses_them() -> None:
    refused = []
    for path in pixel_files():
        try:
            with opened(path) as (parsed, fp):
                table_for(parsed, fp)
        except XdsiError:
            refused.append(path.name)
            assert not pydicom_reads(path), path.name
    assert len(refused) < 10
