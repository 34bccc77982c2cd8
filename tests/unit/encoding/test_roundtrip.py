"""Every DICOM file pydicom ships, through JSON and XML and back, with and without bulk data."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from pydicom import config, dcmread, dcmwrite
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from xdsi.encoding import dicom_json, native_xml
from xdsi.encoding.bulkdata import BulkDataRef
from xdsi.encoding.model import BINARY_VRS

from .conftest import CORPUS, REFUSED, BulkRecorder, assert_same_dataset, read_quietly

MIN_CORPUS = 240


def test_corpus_is_not_shrunk() -> None:
    assert len(CORPUS) >= MIN_CORPUS, f"only {len(CORPUS)} readable files ({REFUSED} refused)"


def _through_json(ds: Dataset, bulk: BulkRecorder | None, _schema: Any) -> Dataset:
    data = dicom_json.dumps_dataset(ds, bulk)
    return dicom_json.loads_dataset(data, bulk.load if bulk else None)


def _through_xml(ds: Dataset, bulk: BulkRecorder | None, schema: etree.RelaxNG) -> Dataset:
    data = native_xml.dumps_dataset(ds, bulk)
    document = etree.fromstring(data)
    assert schema.validate(document), schema.error_log.filter_from_errors()[:3]
    return native_xml.loads_dataset(data, bulk.load if bulk else None)


def _through_json_part(ds: Dataset, bulk: BulkRecorder | None, _schema: Any) -> Dataset:
    """As STOW-RS reads a metadata part: one element at a time."""
    [text] = dicom_json.DatasetTexts(dicom_json.dumps_dataset(ds, bulk), whole_below=0)
    return text.to_dataset(bulk.load if bulk else None)


MODELS: dict[str, Callable[[Dataset, BulkRecorder | None, Any], Dataset]] = {
    "json": _through_json,
    "json-part": _through_json_part,
    "xml": _through_xml,
}


def _written(ds: Dataset, original: Dataset) -> bytes:
    """Native pixel data is written explicit VR little endian; encapsulated keeps its syntax."""
    syntax = original.file_meta.get("TransferSyntaxUID") if hasattr(original, "file_meta") else None
    ds.file_meta = FileMetaDataset()
    compressed = syntax is not None and syntax.is_compressed
    ds.file_meta.TransferSyntaxUID = syntax if compressed else ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def _written_and_read_back(ds: Dataset, original: Dataset) -> Dataset:
    return dcmread(io.BytesIO(_written(ds, original)), force=True)


@pytest.mark.parametrize("path", [p for _, p in CORPUS], ids=[i for i, _ in CORPUS])
def test_a_metadata_part_read_element_by_element_writes_the_file_json_to_dataset_writes(path: str) -> None:
    """The reader STOW-RS uses for metadata parts against the one that parses a data set whole."""
    original = read_quietly(path)
    data = dicom_json.dumps_dataset(original)
    [text] = dicom_json.DatasetTexts(data, whole_below=0)
    assert _written(text.to_dataset(), original) == _written(dicom_json.loads_dataset(data), original)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "inline"])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("path", [p for _, p in CORPUS], ids=[i for i, _ in CORPUS])
def test_round_trip(path: str, model: str, bulk: bool, relax_ng: etree.RelaxNG) -> None:
    original = read_quietly(path)
    little = original.original_encoding[1] is not False
    recorder = BulkRecorder(original) if bulk else None
    rebuilt = MODELS[model](original, recorder, relax_ng)
    assert_same_dataset(original, rebuilt, little_endian=little)
    if recorder is not None:
        assert all(ref.length is None or ref.length > 0 for ref in recorder.offered)
        assert recorder.loaded == set(recorder.store), "every BulkDataURI must have been resolved"
    else:
        # The rebuilt data set must also survive pydicom's writer: strings re-encoded per (0008,0005).
        assert_same_dataset(rebuilt, _written_and_read_back(rebuilt, original))


DEFERRED_FILES = [
    "RG1_UNCR.dcm",  # 7 MB native pixel data
    "emri_small_jpeg_2k_lossless.dcm",  # encapsulated multi-frame, undefined length
    "MR_small_bigendian.dcm",
    "gdcm-US-ALOKA-16.dcm",  # implicit VR: deferred palette OW and a deferred sequence, VR from the dictionary
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # deferred private OB, overlay OW and icon sequence
    "SC_rgb.dcm",  # deferred LT the callback leaves inline
    "rtplan.dcm",  # implicit VR deferred sequences
]


def _take_binary(offered: list[BulkDataRef]) -> Callable[[BulkDataRef], str | None]:
    def callback(ref: BulkDataRef) -> str | None:
        offered.append(ref)
        return f"https://archive.test/{'.'.join(map(str, ref.path))}" if ref.vr in BINARY_VRS else None

    return callback


@pytest.mark.parametrize("name", DEFERRED_FILES)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_deferred_values_taken_as_bulk_data_are_never_read(name: str, model: str) -> None:
    path = get_testdata_file(name)
    ds = dcmread(path, defer_size=256)
    deferred = {
        tag
        for tag, elem in ds._dict.items()
        if isinstance(elem, RawDataElement) and elem.value is None and elem.length
    }
    assert deferred
    offered: list[BulkDataRef] = []
    full_offered: list[BulkDataRef] = []
    dumps = dicom_json.dumps_dataset if model == "json" else native_xml.dumps_dataset
    # Same document as from a fully read file: VRs (implicit ones included) and inline values agree.
    assert dumps(ds, _take_binary(offered)) == dumps(dcmread(path), _take_binary(full_offered))
    assert offered == full_offered
    taken = {ref.path[0] for ref in offered if ref.vr in BINARY_VRS and len(ref.path) == 1}
    for tag in deferred:
        elem = ds._dict[tag]
        # Taken as bulk data: still on disk. Inline: read on purpose, now a converted element.
        still_deferred = isinstance(elem, RawDataElement) and elem.value is None
        assert still_deferred == (tag in taken), f"{tag:08X}"
    if 0x7FE00010 in deferred:
        pixel_data = ds._dict[0x7FE00010]
        (pixel_ref,) = [ref for ref in offered if ref.path == (0x7FE00010,)]
        assert pixel_ref.length == (None if pixel_data.length == 0xFFFFFFFF else pixel_data.length)


# --- properties: any value of these kinds survives both models exactly -----------------------

_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _both_models(ds: Dataset) -> dict[str, Dataset]:
    return {
        "json": dicom_json.loads_dataset(dicom_json.dumps_dataset(ds)),
        "xml": native_xml.loads_dataset(native_xml.dumps_dataset(ds)),
    }


@settings(max_examples=150, deadline=None)
@given(text=_TEXT)
def test_any_unicode_text_survives(text: str) -> None:
    ds = Dataset()
    ds.add(DataElement(0x00204000, "LT", text))
    got = {model: back.get("ImageComments") or "" for model, back in _both_models(ds).items()}
    # XML 1.0 cannot carry C0 controls other than TAB/LF/CR: those become U+FFFD there.
    assert got == {"json": text, "xml": _XML_UNSAFE.sub("\ufffd", text)}


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(
        st.from_regex(
            r"[+-]?(?:[0-9]{1,6}(?:\.[0-9]{0,5})?|\.[0-9]{1,5})(?:[eE][+-]?[0-9]{1,3})?", fullmatch=True
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_decimal_string_keeps_its_exact_text(texts: list[str]) -> None:
    ds = Dataset()
    ds.add(DataElement(0x00280030, "DS", texts, validation_mode=config.IGNORE))
    for model, back in _both_models(ds).items():
        values = back[0x00280030].value
        assert [str(v) for v in (values if len(texts) > 1 else [values])] == texts, model


@settings(max_examples=150, deadline=None)
@given(
    # NaN payload and sign bits are not kept: both models spell every NaN "NaN".
    fl=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4),
    fd=st.lists(st.floats(allow_nan=False), min_size=1, max_size=4),
    sv=st.integers(-(2**63), 2**63 - 1),
    uv=st.integers(0, 2**64 - 1),
)
def test_any_binary_number_keeps_its_bits(fl: list[float], fd: list[float], sv: int, uv: int) -> None:
    ds = Dataset()
    ds.add(DataElement(0x00189352, "FL", fl))
    ds.add(DataElement(0x00460044, "FD", fd))
    ds.add(DataElement(0x00720082, "SV", sv))
    ds.add(DataElement(0x00720083, "UV", uv))
    for model, back in _both_models(ds).items():
        got_fl = back[0x00189352].value if len(fl) > 1 else [back[0x00189352].value]
        got_fd = back[0x00460044].value if len(fd) > 1 else [back[0x00460044].value]
        assert struct.pack(f"<{len(fl)}f", *got_fl) == struct.pack(f"<{len(fl)}f", *fl), model
        assert struct.pack(f"<{len(fd)}d", *got_fd) == struct.pack(f"<{len(fd)}d", *fd), model
        assert (back[0x00720082].value, back[0x00720083].value) == (sv, uv), model
