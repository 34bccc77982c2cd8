"""STOW-RS limits and out-of-space answers over real HTTP: what a sender sees and what stays stored."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.dicomfiles import make_instance
from tests.integration.test_stow_rs import dicom_parts, indexed, post, values
from tests.live import LiveServer

PART_LIMIT = 3


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("limited")
    server = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", workers=1,
                        max_request_parts=str(PART_LIMIT))
    yield server
    server.stop()


def test_parts_past_the_limit_are_a_failure_and_the_parts_before_it_are_stored(limited: LiveServer) -> None:
    """One part over ``max_request_parts``: 202, the first three stored, the fourth not stored."""
    payloads = [make_instance() for _ in range(PART_LIMIT + 1)]
    sops = [pydicom.dcmread(io.BytesIO(p)).SOPInstanceUID for p in payloads]
    reply = post(limited, dicom_parts(*payloads))
    assert reply.status == 202, reply.body
    answer = json.loads(reply.body)
    assert [values(item, "00081155")[0] for item in values(answer, "00081199")] == sops[:PART_LIMIT]
    # PS3.18 Table I.1-1: the break names no instance, so it is an Other Failures item (0xA700).
    assert [values(item, "00081197") for item in values(answer, "0008119A")] == [[0xA700]]
    assert f"more than {PART_LIMIT} parts" in reply.header("Warning")
    assert [indexed(limited, sop) for sop in sops] == [True] * PART_LIMIT + [False]


def test_parts_up_to_the_limit_are_all_stored(limited: LiveServer) -> None:
    reply = post(limited, dicom_parts(*(make_instance() for _ in range(PART_LIMIT))))
    assert reply.status == 200, reply.body
    assert len(values(json.loads(reply.body), "00081199")) == PART_LIMIT
