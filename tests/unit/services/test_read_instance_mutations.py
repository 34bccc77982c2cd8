"""Corrupted headers are refused with a reason, never answered with an unexpected error.

Seeded mutations (overwritten bytes and words, cut runs) of real files of several shapes go
through both header routes; each must parse or raise an InstanceRejected.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from xdsi.dicom.parsing import Limits
from xdsi.errors import InstanceRejected
from xdsi.services.reading import read_instance

LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)
SOURCES = ["CT_small.dcm", "MR_small.dcm", "examples_ybr_color.dcm", "JPEG2000.dcm", "waveform_ecg.dcm",
           "rtplan.dcm", "SC_rgb_rle.dcm"]


def _mutated(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(132, min(len(out), 4000))  # after the preamble, inside the header
        kind = rng.random()
        if kind < 0.5:
            out[at] = rng.randrange(256)
        elif kind < 0.75:
            out[at : at + 4] = rng.randrange(1 << 32).to_bytes(4, "little")
        else:
            del out[at : at + rng.randint(1, 40)]
    return bytes(out)


@pytest.mark.parametrize("name", SOURCES)
def test_mutated_headers_parse_or_are_refused(tmp_path: Path, name: str) -> None:
    data = Path(get_testdata_file(name)).read_bytes()
    rng = random.Random(name)
    outcomes = {"parsed": 0, "refused": 0}
    path = tmp_path / "mutated.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(120):
            path.write_bytes(_mutated(data, rng))
            try:
                read_instance(str(path), LIMITS, 1024, None)
                outcomes["parsed"] += 1
            except InstanceRejected as exc:
                assert str(exc)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 0  # the mutations do reach the checks
