"""Bounded parsing: structure walk, capped inflate, header-first read."""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tests.dicomfiles import make_dataset, make_instance, pydicom_files, to_bytes
from xdsi.dicom import parsing
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.errors import InstanceTooLarge, MalformedDicom, MissingAttribute, NotDicom, UnsupportedTransferSyntax

LIMITS = Limits(max_bytes=1 << 30, max_inflated_bytes=64 << 20, max_deflate_ratio=200, defer_size=1024)
META_END_MARKER = b"\x02\x00\x10\x00UI"  # (0002,0010) Transfer Syntax UID, explicit VR LE


def write(tmp_path: Path, data: bytes, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def deflated_file(dataset_bytes: bytes) -> bytes:
    """A PS3.10 file whose dataset is the raw deflate of ``dataset_bytes`` (PS3.5 A.5)."""
    head = to_bytes(make_dataset(transfer_syntax=DeflatedExplicitVRLittleEndian))
    meta_length = struct.unpack("<L", head[140:144])[0]
    prefix = head[: 144 + meta_length]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return prefix + compressor.compress(dataset_bytes) + compressor.flush()


def element(tag: int, vr: bytes, value: bytes, *, length: int | None = None) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    size = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2s2xL", group, elem, vr, size) + value
    return struct.pack("<HH2sH", group, elem, vr, size) + value


def test_every_pydicom_file_is_parsed_or_refused_with_a_domain_error(tmp_path: Path) -> None:
    parsed = 0
    for path in pydicom_files():
        try:
            with open_instance(path, LIMITS) as instance:
                assert instance.transfer_syntax
                parsed += 1
        except (NotDicom, MalformedDicom, MissingAttribute, UnsupportedTransferSyntax) as exc:
            assert str(exc)
    assert parsed >= 240


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_other_encodings_parse(tmp_path: Path, syntax: str) -> None:
    ds = make_dataset(transfer_syntax=syntax, rows=64, columns=64)
    with open_instance(write(tmp_path, to_bytes(ds)), LIMITS) as instance:
        assert instance.dataset.SOPInstanceUID == ds.SOPInstanceUID
        assert instance.pixel_data is not None and instance.pixel_data.length == 64 * 64 * 2


def test_pixel_data_is_located_not_read(tmp_path: Path) -> None:
    ds = make_dataset(rows=256, columns=256)
    data = to_bytes(ds)
    with open_instance(write(tmp_path, data), LIMITS) as instance:
        pixel = instance.pixel_data
        assert pixel is not None
        assert data[pixel.value_offset : pixel.value_offset + pixel.length] == ds.PixelData
        raw = instance.dataset.get_item(0x7FE00010, keep_deferred=True)
        assert raw.value is None and raw.length == len(ds.PixelData)


@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_the_quick_route_finds_what_the_element_walk_finds(path: Path) -> None:
    """Where the quick route reads a file, its pixel data and element tree match the general route."""
    try:
        with open_instance(path, LIMITS) as instance:
            if instance.elements is None:
                return
            walked = parsing._Walker(instance.stream, implicit=False, little=True)
            _, start = parsing._read_meta(instance.stream, instance.size)
            assert instance.pixel_data == walked.walk(start, instance.size)
            quick = _raw_tree(instance.elements)
            reference = _dataset_tree(instance.dataset)
    except (NotDicom, MalformedDicom, MissingAttribute, UnsupportedTransferSyntax):
        return
    assert quick == reference


Tree = list[tuple[int, "list[Tree] | None"]]


def _raw_tree(elements: list[parsing.RawElement]) -> Tree:
    """Tags in order, with the items of each sequence, as the quick route read them."""
    return [(e.tag, None if e.items is None else [_raw_tree(item) for item in e.items]) for e in elements]


def _dataset_tree(ds: Dataset) -> Tree:
    """The same shape from pydicom's dataset (sequences converted; other values left deferred)."""
    tree: Tree = []
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        items = [_dataset_tree(item) for item in ds[tag].value] if raw.VR == "SQ" else None
        tree.append((int(tag), items))
    return tree


def _value_at(data: bytes, at: int) -> bytes:
    (length,) = struct.unpack("<H", data[at + 6 : at + 8])
    return data[at + 8 : at + 8 + length]


@pytest.mark.parametrize(
    "forge",
    [
        lambda data, at: (
            data[:at] + element(0x0020000D, b"UN", _value_at(data, at)) + data[at + 8 + len(_value_at(data, at)):]
        ),
        lambda data, at: data[:at] + element(0x00100010, b"PN", b"Later^Tag ") + data[at:],  # tag order
    ],
    ids=["UN", "out-of-order"],
)
def test_the_quick_route_leaves_what_it_does_not_model_to_pydicom(tmp_path: Path, forge: object) -> None:
    data = make_instance()
    at = data.index(b"\x20\x00\x0d\x00UI")  # Study Instance UID
    with open_instance(write(tmp_path, forge(data, at)), LIMITS) as instance:  # type: ignore[operator]
        assert instance.elements is None
        assert instance.dataset.StudyInstanceUID


def test_not_dicom(tmp_path: Path) -> None:
    with pytest.raises(NotDicom, match="DICM"), open_instance(write(tmp_path, b"%PDF-1.7\n" * 100), LIMITS):
        pass


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.99])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    # Fixed UIDs fix the layout: with random ones a cut could land on an element boundary, which
    # leaves a shorter but well-formed data set.
    data = make_instance(rows=32, columns=32, study_uid="1.2.826.0.1.3680043.2.1", series_uid="1.2.826.0.1.3680043.2.2",
                         sop_uid="1.2.826.0.1.3680043.2.3")
    cut = data[: int(len(data) * fraction)]
    with pytest.raises((NotDicom, MalformedDicom)), open_instance(write(tmp_path, cut), LIMITS):
        pass


def test_declared_length_of_four_gigabytes_is_refused_without_allocation(tmp_path: Path) -> None:
    data = make_instance(rows=2, columns=2)
    position = data.index(b"\xe0\x7f\x10\x00OW")
    forged = data[: position + 8] + struct.pack("<L", 0xFFFFFFF0) + data[position + 12 :]
    with (
        pytest.raises(MalformedDicom, match="declares 4294967280 bytes"),
        open_instance(write(tmp_path, forged), LIMITS),
    ):
        pass


def test_nested_item_longer_than_the_file(tmp_path: Path) -> None:
    data = make_instance()
    sequence = element(0x00081115, b"SQ", struct.pack("<HHL", 0xFFFE, 0xE000, 10_000) + b"\0" * 8)
    position = data.index(b"\x08\x00\x16\x00")  # before SOP Class UID, keeping tag order
    with (
        pytest.raises(MalformedDicom, match="item declares 10000 bytes"),
        open_instance(write(tmp_path, data[:position] + sequence + data[position:]), LIMITS),
    ):
        pass


def test_sequences_nested_too_deep(tmp_path: Path) -> None:
    item_end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    sequence_end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    body = b""
    for _ in range(64):
        body = (element(0x00081115, b"SQ", b"", length=0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
                + body + item_end + sequence_end)
    data = make_instance()
    position = data.index(b"\x08\x00\x16\x00")
    with (
        pytest.raises(MalformedDicom, match="nested deeper"),
        open_instance(write(tmp_path, data[:position] + body + data[position:]), LIMITS),
    ):
        pass


def test_missing_transfer_syntax(tmp_path: Path) -> None:
    data = make_instance()
    position = data.index(META_END_MARKER)
    length = struct.unpack("<H", data[position + 6 : position + 8])[0]
    without = data[:position] + data[position + 8 + length :]
    group_length = struct.unpack("<L", without[140:144])[0] - (8 + length)
    without = without[:140] + struct.pack("<L", group_length) + without[144:]
    with pytest.raises(MissingAttribute, match="Transfer Syntax UID"), open_instance(write(tmp_path, without), LIMITS):
        pass


def test_unknown_transfer_syntax(tmp_path: Path) -> None:
    data = make_instance().replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.1\0", 1)
    with (
        pytest.raises(UnsupportedTransferSyntax, match=re.escape("1.2.3.4.5.6.7.8.9.1")),
        open_instance(write(tmp_path, data), LIMITS),
    ):
        pass


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    small = Limits(max_bytes=1000, max_inflated_bytes=1 << 20, max_deflate_ratio=200, defer_size=1024)
    with (
        pytest.raises(InstanceTooLarge, match="exceeds the limit of 1000 bytes"),
        open_instance(write(tmp_path, make_instance(rows=64, columns=64)), small),
    ):
        pass


def test_deflate_bomb_is_stopped_by_the_ratio(tmp_path: Path) -> None:
    zeros = element(0x7FE00010, b"OB", b"", length=1 << 30)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    body = compressor.compress(zeros) + b"".join(compressor.compress(block) for _ in range(1024)) + compressor.flush()
    head = to_bytes(make_dataset(transfer_syntax=DeflatedExplicitVRLittleEndian))
    meta_length = struct.unpack("<L", head[140:144])[0]
    path = write(tmp_path, head[: 144 + meta_length] + body)
    assert path.stat().st_size < 2 << 20
    with pytest.raises(InstanceTooLarge, match="deflate bomb"), open_instance(path, LIMITS):
        pass


def test_deflated_dataset_over_the_inflate_cap(tmp_path: Path) -> None:
    noise = bytes(range(256)) * (1 << 14)  # 4 MiB that deflate cannot shrink much
    cap = Limits(max_bytes=1 << 30, max_inflated_bytes=1 << 20, max_deflate_ratio=200, defer_size=1024)
    path = write(tmp_path, deflated_file(element(0x7FE00010, b"OB", noise)))
    with pytest.raises(InstanceTooLarge, match="inflates beyond the limit of 1048576 bytes"), open_instance(path, cap):
        pass


def test_corrupt_deflate_stream(tmp_path: Path) -> None:
    head = to_bytes(make_dataset(transfer_syntax=DeflatedExplicitVRLittleEndian))
    meta_length = struct.unpack("<L", head[140:144])[0]
    path = write(tmp_path, head[: 144 + meta_length] + b"\xff\xff\xff\xff garbage")
    with pytest.raises(MalformedDicom, match="deflate"), open_instance(path, LIMITS):
        pass


def bare(syntax: str, **attributes: object) -> tuple[Dataset, bytes]:
    """A data set written alone in ``syntax``: no preamble, no 'DICM', no File Meta Information."""
    ds = make_dataset(**attributes)
    del ds.file_meta
    out = io.BytesIO()
    implicit = syntax == ImplicitVRLittleEndian
    dcmwrite(out, ds, implicit_vr=implicit, little_endian=syntax != ExplicitVRBigEndian)
    return ds, out.getvalue()


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_a_data_set_without_file_meta_becomes_a_ps310_file(tmp_path: Path, syntax: str) -> None:
    ds, data = bare(syntax, rows=16, columns=16)
    with open(write(tmp_path, data), "rb") as fp:
        found = parsing.read_bare_dataset(fp, len(data))
    assert found == parsing.BareDataset(syntax, ds.SOPClassUID, ds.SOPInstanceUID)
    header = parsing.file_meta_header(found, "1.2.3.4", "TEST_1")
    with open_instance(write(tmp_path, header + data, "with-meta.dcm"), LIMITS) as instance:
        assert instance.transfer_syntax == syntax
        assert instance.meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert instance.meta.ImplementationClassUID == "1.2.3.4"
        assert instance.dataset.PatientName == ds.PatientName
        pixel = instance.pixel_data
        assert pixel is not None and pixel.value_offset - len(header) == data.index(ds.PixelData[:64])
    assert pydicom.dcmread(io.BytesIO(header + data)).file_meta.FileMetaInformationGroupLength == len(header) - 144


def test_every_pydicom_file_without_the_prefix_is_read_as_pydicom_reads_it(tmp_path: Path) -> None:
    """pydicom (force=True) is the reference: same encoding and UIDs, or no data set at all."""
    encodings = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                 (False, False): ExplicitVRBigEndian}
    outcomes = {"bare": 0, "not DICOM": 0}
    for path in pydicom_files():
        with open(path, "rb") as fp:
            if fp.read(132)[128:] == b"DICM":
                assert parsing.read_bare_dataset(fp, path.stat().st_size) is None
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    reference = pydicom.dcmread(path, force=True)
                readable = "SOPInstanceUID" in reference and "SOPClassUID" in reference
            except Exception:  # noqa: BLE001 - whatever pydicom refuses is simply not readable
                readable = False
            if not readable:
                with pytest.raises(NotDicom, match="nor a data set without File Meta Information"):
                    parsing.read_bare_dataset(fp, path.stat().st_size)
                outcomes["not DICOM"] += 1
                continue
            found = parsing.read_bare_dataset(fp, path.stat().st_size)
        expected = encodings[reference.original_encoding]
        assert found == parsing.BareDataset(expected, reference.SOPClassUID, reference.SOPInstanceUID), path.name
        outcomes["bare"] += 1
    assert outcomes["bare"] >= 4 and outcomes["not DICOM"] >= 10


def _without_sop_class() -> bytes:
    _ds, data = bare(ExplicitVRLittleEndian)
    return data.replace(b"\x08\x00\x16\x00", b"\x08\x00\x19\x00", 1)  # (0008,0016) becomes (0008,0019)


def _first_element_of_four_gigabytes() -> bytes:
    _ds, data = bare(ImplicitVRLittleEndian)
    return data[:4] + struct.pack("<L", 0xFFFFFFF0) + data[8:]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", "too few"),
        (lambda: b"Insert the CD and run VIEWER.EXE\n", "no valid SOP Class UID"),
        (lambda: b"\x89PNG\r\n\x1a\n" + bytes(64), "no valid SOP Class UID"),
        (lambda: bytes(64), "out of order"),
        (lambda: make_instance()[132:], "group 0002"),
        (_first_element_of_four_gigabytes, "declares 4294967280 bytes"),
        (_without_sop_class, "no valid SOP Class UID"),
    ],
    ids=["empty", "text", "png", "zeros", "file-meta-without-preamble", "four-gigabytes", "no-sop-class"],
)
def test_what_is_no_data_set_is_not_dicom(tmp_path: Path, make: object, reason: str) -> None:
    data = make()  # type: ignore[operator]
    with open(write(tmp_path, data), "rb") as fp, pytest.raises(NotDicom, match=reason):
        parsing.read_bare_dataset(fp, len(data))


def test_a_huge_data_set_is_identified_from_its_first_elements(tmp_path: Path) -> None:
    """A 4 GiB file (sparse: pixel data declared, not written) is identified reading a few elements."""
    _ds, data = bare(ExplicitVRLittleEndian, rows=2, columns=2)
    at = data.index(b"\xe0\x7f\x10\x00OW")
    path = write(tmp_path, data[:at] + element(0x7FE00010, b"OW", b"", length=(4 << 30) - 16))
    with open(path, "r+b") as fp:
        fp.truncate(at + 12 + (4 << 30) - 16)
    tracemalloc.start()
    try:
        with open(path, "rb") as fp:
            found = parsing.read_bare_dataset(fp, path.stat().st_size)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found is not None and found.transfer_syntax == ExplicitVRLittleEndian
    assert peak < 256 << 10
