"""Shared helpers for the encoder tests: the pydicom corpus, bulk data recorder, dataset comparison."""

from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pydicom import dcmread
from pydicom.data import get_charset_files, get_palette_files, get_testdata_files
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.valuerep import AMBIGUOUS_VR, PersonName

from xdsi.dicom.byteorder import WORD_WIDTH, swap_bytes
from xdsi.encoding.bulkdata import BulkDataRef
from xdsi.encoding.model import BINARY_VRS

SCHEMA_PATH = Path("/work/shared/schemas-ref/native-dicom-model/NativeDicomModel.rng")
BULK_THRESHOLD = 64


def _corpus() -> tuple[list[tuple[str, str]], int]:
    """(test id, path) of every file dcmread accepts, and how many candidates it refused."""
    files, refused = [], 0
    for path in sorted(set(get_testdata_files() + get_charset_files() + get_palette_files())):
        if os.path.isdir(path):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            refused += 1
            continue
        files.append((f"{Path(path).parent.name}/{Path(path).name}", path))
    return files, refused


CORPUS, REFUSED = _corpus()


@pytest.fixture(scope="session")
def relax_ng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA_PATH)))


class Token(str):
    """The text of a JSON number, as ``json_tokens`` reads it: a number and a string holding the
    same characters differ by type."""

    def __repr__(self) -> str:
        return f"Token({str(self)!r})"


def json_tokens(data: bytes | str) -> Any:
    """JSON read with every number kept as its exact token text (a ``Token``)."""
    return json.loads(data, parse_float=Token, parse_int=Token)


def read_quietly(path: str, **kwargs: Any) -> Dataset:
    """dcmread for odd corpus files, whose oddities pydicom reports as UserWarnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dcmread(path, **kwargs)


def element_at(ds: Dataset, path: tuple[int, ...]) -> tuple[Dataset, int]:
    """The data set holding the element ``path`` ends at, and its tag."""
    for tag, item in zip(path[:-1:2], path[1::2], strict=True):
        ds = ds[tag].value[item - 1]
    return ds, path[-1]


def value_bytes(ds: Dataset, path: tuple[int, ...]) -> bytes:
    """Little-endian Value Field bytes of the element at ``path``, as a bulk data server sends them."""
    holder, tag = element_at(ds, path)
    raw = holder.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.value is not None and raw.is_little_endian:
        return raw.value
    elem = holder[tag]
    little = not isinstance(raw, RawDataElement) or raw.is_little_endian
    if isinstance(elem.value, bytes):
        return elem.value if little or elem.VR not in WORD_WIDTH else swap_bytes(elem.value, WORD_WIDTH[elem.VR])
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_data_element(fp, elem, holder._character_set)
    return fp.getvalue()[8:]


class BulkRecorder:
    """Callback taking every offered element over the threshold; ``load`` is the matching loader."""

    def __init__(self, ds: Dataset, threshold: int = BULK_THRESHOLD) -> None:
        self.ds, self.threshold = ds, threshold
        self.store: dict[str, tuple[BulkDataRef, bytes]] = {}
        self.offered: list[BulkDataRef] = []
        self.loaded: set[str] = set()

    def __call__(self, ref: BulkDataRef) -> str | None:
        self.offered.append(ref)
        if ref.length is not None and ref.length <= self.threshold:
            return None
        uri = f"https://archive.test/bulk/{len(self.store)}"
        self.store[uri] = (ref, value_bytes(self.ds, ref.path))
        return uri

    def load(self, uri: str, vr: str) -> bytes:
        ref, data = self.store[uri]
        self.loaded.add(uri)
        assert vr == ref.vr, f"{uri}: loader asked for VR {vr}, callback saw {ref.vr}"
        return data


def _model_tags(ds: Dataset) -> list[int]:
    return sorted(int(t) for t in ds.keys() if t.element != 0 and t.group != 0x0002 and t != 0xFFFCFFFC)  # noqa: SIM118 - iterating a Dataset yields elements


def _values(value: Any) -> list[Any]:
    if value is None or value == "" or value == b"":
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _person_name(v: Any) -> str:
    groups = [g.rstrip("^") for g in (v if isinstance(v, PersonName) else PersonName(str(v))).components]
    return "=".join(groups).rstrip("=")


def normalised(elem: DataElement, little_endian: bool) -> list[Any]:
    """Element value in a form equal for equal DICOM content, whatever pydicom type holds it."""
    vr, value = elem.VR, elem.value
    if vr in BINARY_VRS or (vr in AMBIGUOUS_VR and isinstance(value, bytes)):
        data = bytes(value or b"")
        return [data if little_endian or vr not in WORD_WIDTH else swap_bytes(data, WORD_WIDTH[vr])]
    values = _values(value)
    if vr == "PN":
        names = [_person_name(v) for v in values]
        return [] if names == [""] else names  # "^^^^" is an empty name (PS3.5 6.2.1)
    if vr in ("FL", "FD"):
        return [struct.pack("<f" if vr == "FL" else "<d", float(v)) for v in values]
    if vr in ("DS", "IS"):
        return [str(v).strip(" ") for v in values]
    if vr == "AT" or isinstance(value, int):
        return [int(v) for v in values]
    return [str(v) for v in values]


def assert_same_dataset(
    original: Dataset, rebuilt: Dataset, *, little_endian: bool = True, where: str = ""
) -> None:
    """Element-by-element comparison naming the first differing path, e.g. 00540016[1].00181072."""
    expected, got = _model_tags(original), _model_tags(rebuilt)
    missing = [f"{t:08X}" for t in expected if t not in set(got)]
    extra = [f"{t:08X}" for t in got if t not in set(expected)]
    assert not missing and not extra, f"{where or 'top level'}: missing {missing}, extra {extra}"
    for tag in expected:
        here = f"{where}.{tag:08X}" if where else f"{tag:08X}"
        a, b = original[tag], rebuilt[tag]
        if a.VR not in AMBIGUOUS_VR:
            assert a.VR == b.VR, f"{here}: VR {a.VR} became {b.VR}"
        if b.VR == "SQ":
            assert len(a.value) == len(b.value), f"{here}: {len(a.value)} items became {len(b.value)}"
            for n, (item_a, item_b) in enumerate(zip(a.value, b.value, strict=True), 1):
                assert_same_dataset(item_a, item_b, little_endian=little_endian, where=f"{here}[{n}]")
            continue
        va, vb = normalised(a, little_endian), normalised(b, True)
        assert va == vb, f"{here} ({b.VR}): {_short(va)} != {_short(vb)}"
        if tag == 0x7FE00010:
            assert a.is_undefined_length == b.is_undefined_length, f"{here}: undefined length not kept"


def _short(values: list[Any]) -> str:
    text = repr(values)
    return text if len(text) < 300 else text[:300] + "…"
