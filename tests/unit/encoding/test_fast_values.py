"""The raw-bytes fast path of the encoder gives exactly what the pydicom conversion gives."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.dicomfiles import pydicom_files
from xdsi.encoding import walk


def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - a file pydicom cannot read has nothing to compare
            return None


def _pairs(fast: Dataset, slow: Dataset) -> Iterator[tuple[Dataset, Dataset, int]]:
    for tag in sorted(fast.keys()):
        raw = fast.get_item(tag, keep_deferred=True)
        if (isinstance(raw, RawDataElement) and raw.VR == "SQ") or not isinstance(raw, RawDataElement):
            element = fast[tag]
            if element.VR == "SQ":
                for a, b in zip(element.value, slow[tag].value, strict=True):
                    yield from _pairs(a, b)
            continue
        yield fast, slow, tag


FILES = [p for p in pydicom_files() if _read(p) is not None]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fast_values_equal_the_pydicom_conversion(path: Path) -> None:
    fast_ds, slow_ds = _read(path), _read(path)
    assert fast_ds is not None and slow_ds is not None
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fast, slow, tag in _pairs(fast_ds, slow_ds):
            raw = fast.get_item(tag, keep_deferred=True)
            vr = walk._element_vr(raw, fast, (fast,))
            values = walk._fast_values(raw, vr, fast)
            if values is None:
                continue
            quick = walk._inline(fast, tag, raw, vr, None)
            reference = walk._converted(slow, tag, slow.get_item(tag, keep_deferred=True), vr, None)
            assert quick == reference, f"{tag}: {quick} != {reference}"
            compared += 1
    COMPARED[str(path)] = compared


COMPARED: dict[str, int] = {}


def test_the_comparison_covered_most_files() -> None:
    assert len(COMPARED) == len(FILES)
    assert sum(1 for n in COMPARED.values() if n) >= 0.7 * len(FILES)
    assert sum(COMPARED.values()) >= 10_000


def test_the_fast_path_covers_most_elements_of_a_typical_image() -> None:
    from pydicom.data import get_testdata_file

    ds = _read(Path(get_testdata_file("CT_small.dcm")))
    assert ds is not None
    raws = [ds.get_item(t, keep_deferred=True) for t in ds.keys()]  # noqa: SIM118 - iterating a Dataset yields elements
    covered = [r for r in raws if isinstance(r, RawDataElement) and r.VR != "SQ"
               and walk._fast_values(r, r.VR, ds) is not None]
    assert len(covered) >= 0.8 * len(raws)
