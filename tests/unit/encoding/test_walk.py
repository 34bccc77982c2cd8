"""The walk's bulk data threshold: the callback is spared the values it would keep inline, and nothing changes."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest

from tests.dicomfiles import pydicom_files
from xdsi.dicom.parsing import Limits, ParsedInstance, open_instance
from xdsi.encoding.bulkdata import ASK_ALWAYS, BulkDataCallback, BulkDataRef, beyond_threshold
from xdsi.encoding.model import Encoded
from xdsi.encoding.walk import encode_instance
from xdsi.errors import XdsiError

THRESHOLD = 64
LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)


def _walk(parsed: ParsedInstance, threshold: int) -> tuple[list[Encoded], list[BulkDataRef]]:
    asked: list[BulkDataRef] = []

    def bulk_data_for(_placing: tuple[str, str, str]) -> BulkDataCallback:
        def bulk(ref: BulkDataRef) -> str | None:
            asked.append(ref)
            return "bulk" if beyond_threshold(ref.path[-1], ref.length, THRESHOLD) else None

        return bulk

    return encode_instance(parsed, bulk_data_for, threshold), asked


@pytest.mark.parametrize("route", ["quick", "dataset"])
@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_a_threshold_spares_the_callback_the_values_it_keeps_inline_and_changes_nothing(path: Path, route: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_instance(path, LIMITS) as parsed:
                if route == "dataset":
                    parsed = dataclasses.replace(parsed, elements=None)
                spared, asked = _walk(parsed, THRESHOLD)
                every, asked_always = _walk(parsed, ASK_ALWAYS)
        except XdsiError:
            return  # refused by the bounded parser: nothing to walk
    assert spared == every
    assert asked == [ref for ref in asked_always if beyond_threshold(ref.path[-1], ref.length, THRESHOLD)]

