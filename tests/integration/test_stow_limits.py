"""STOW-RS limits and out-of-space answers over real HTTP: what a sender sees and what stays stored."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.dicomfiles import make_instance
from tests.integration.test_stow_rs import JSON, _jpeg_metadata, dicom_parts, indexed, multipart, post, values
from tests.live import LiveServer

PART_LIMIT = 3


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("limited")
    server = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", workers=1,
                        max_request_parts=str(PART_LIMIT), delete_enabled="true")
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


@contextmanager
def tiny_filesystem(folder: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs) at ``folder``: writes past it fail with ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _native_metadata(rows: int, columns: int) -> dict[str, dict[str, object]]:
    """8-bit monochrome pixels of ``rows`` x ``columns`` bytes, sent as the part urn:test:pixels."""
    meta = _jpeg_metadata()
    meta.update({"00280010": {"vr": "US", "Value": [rows]}, "00280011": {"vr": "US", "Value": [columns]},
                 "7FE00010": {"vr": "OB", "BulkDataURI": "urn:test:pixels"}})
    return meta


# 600 KB: the bulk part fits the 1 MiB store, the instance built from it does not;
# 1,500 KB: the bulk part itself does not fit.
@pytest.mark.parametrize("rows", [600, 1500])
def test_a_full_store_during_a_json_stow_answers_503_a700(tmp_path: Path, rows: int) -> None:
    """PS3.18 Table I.2-2: out of resources is 0xA700, and 503 tells the sender to retry."""
    with tiny_filesystem(tmp_path / "store", "1m") as store:
        server = LiveServer(f"sqlite:///{tmp_path / 'xdsi.db'}", store, workers=1)
        try:
            meta = _native_metadata(rows, 1000)
            body = multipart([({"Content-Type": JSON}, json.dumps([meta]).encode()),
                              ({"Content-Type": "application/octet-stream", "Content-Location": "urn:test:pixels"},
                               bytes(rows * 1000))])
            reply = post(server, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
            assert reply.status == 503, reply.body
            assert reply.header("Retry-After")
            if rows == 600:  # refused while the instance is built: a Store Instances Response says 0xA700
                [failure] = values(json.loads(reply.body), "0008119A")
                assert values(failure, "00081197") == [0xA700]
                assert "out of space" in reply.header("Warning")
            else:  # refused while the body is received, before the request reaches the application
                assert b"out of space" in reply.body
            assert not indexed(server, meta["00080018"]["Value"][0])
        finally:
            server.stop()


def test_no_error_answer_shows_a_traceback_or_a_server_path(limited: LiveServer) -> None:
    """Bad requests of every service; ``LiveServer.request`` checks each 4xx/5xx answer it gets."""
    out_of_range = _native_metadata(8, 8)
    out_of_range["00280010"] = {"vr": "US", "Value": [70000]}
    json_type = 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary'
    uid = generate_uid()
    requests = [
        ("POST", "/dicom-web/studies", multipart([({"Content-Type": JSON}, json.dumps([out_of_range]).encode()),
                                                 ({"Content-Type": "application/octet-stream",
                                                   "Content-Location": "urn:test:pixels"}, bytes(64))]),
         {"Content-Type": json_type, "Accept": JSON}),
        ("POST", "/dicom-web/studies", b"--xdsi-test-boundary\r\nbroken", {"Content-Type": json_type}),
        ("POST", "/dicom-web/studies", b"not dicom", {"Content-Type": "application/dicom"}),
        ("POST", "/dicom-web/studies/1..2", b"", {"Content-Type": "application/dicom"}),
        ("GET", "/dicom-web/studies?StudyDate=notadate", None, {}),
        ("GET", "/dicom-web/studies?limit=-1&00100010=%00", None, {}),
        ("GET", f"/dicom-web/studies/{uid}/metadata", None, {}),
        ("GET", f"/dicom-web/studies/{uid}", None, {"Accept": "text/html"}),
        ("GET", "/dicom-web/studies/x/series/y/instances/z/frames/0", None, {}),
        ("DELETE", f"/dicom-web/studies/{uid}", None, {}),
        ("DELETE", "/dicom-web/studies/not-a-uid", None, {}),
        ("PUT", "/dicom-web/studies", b"", {}),
    ]
    statuses = [limited.request(method, path, body, headers).status for method, path, body, headers in requests]
    assert all(status >= 400 for status in statuses[1:]), statuses
    assert statuses[0] == 409  # the one instance failed, its reason in the Warning header
