"""Legacy UIDs (a zero-led component, as old equipment wrote them) through every edge, over real HTTP.

Safety never rests on UID syntax (blob names are hashes of the UIDs), so a legacy UID is
stored, found and served like any other; what stays refused is what no UID can be.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pydicom
import pytest
from pydicom import config
from pydicom.data import get_testdata_file
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.encaps import generate_frames
from pydicom.filewriter import dcmwrite

from tests.conftest import make_settings
from tests.integration.test_cli import run_xdsi
from tests.integration.test_stow_rs import dicom_parts, post, values
from tests.integration.test_wado_rs import AS_STORED, DICOM, OCTETS, get, parts
from tests.live import LiveServer
from xdsi.repository import index
from xdsi.services.archive import Archive
from xdsi.services.store import Status

JSON = "application/dicom+json"
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def with_legacy_uids(name: str) -> tuple[bytes, dict[str, str]]:
    """A real pydicom file whose Study, Series and SOP Instance UIDs get zero-led components."""
    stamp = str(uuid.uuid4().int)[:12]
    legacy = {
        "StudyInstanceUID": f"999.999.2.{stamp}.083000",
        "SeriesInstanceUID": f"999.999.2.{stamp}.083000.01",
        "SOPInstanceUID": f"999.999.2.{stamp}.083000.01.001",
    }
    ds = pydicom.dcmread(get_testdata_file(name))
    for keyword, value in legacy.items():
        tag = tag_for_keyword(keyword)
        # pydicom refuses (warns about) such values when set the usual way; old equipment wrote them anyway.
        ds[tag] = DataElement(tag, "UI", value, validation_mode=config.IGNORE)
    ds.file_meta[0x00020003] = DataElement(0x00020003, "UI", legacy["SOPInstanceUID"], validation_mode=config.IGNORE)
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue(), legacy


def _path(legacy: dict[str, str]) -> str:
    return (f"/dicom-web/studies/{legacy['StudyInstanceUID']}/series/{legacy['SeriesInstanceUID']}"
            f"/instances/{legacy['SOPInstanceUID']}")


def _found(live: LiveServer, path: str, tag: str) -> list[str]:
    reply = get(live, path, JSON)
    assert reply.status == 200, reply.body
    return [values(item, tag)[0] for item in json.loads(reply.body)]


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_rle_2frame.dcm"])
def test_a_legacy_uid_round_trips_through_stow_qido_and_wado(live: LiveServer, name: str) -> None:
    data, legacy = with_legacy_uids(name)
    study, series, sop = (legacy[k] for k in UID_KEYWORDS)

    # STOW-RS: stored, not failed; the Warning header says which UID and why.
    reply = post(live, dicom_parts(data))
    assert reply.status == 200, reply.body
    answer = json.loads(reply.body)
    assert "00081198" not in answer and "0008119A" not in answer
    [item] = values(answer, "00081199")
    assert values(item, "00081155") == [sop]
    assert values(item, "00081190") == [live.root + _path(legacy)[len("/dicom-web"):]]
    assert "00081196" not in item  # no Warning Reason of PS3.18 Table I.2-1 fits a legacy UID
    said = reply.headers.get_all("Warning") or []
    assert len(said) == 3  # Study, Series and SOP Instance UID are each named
    assert all(text.startswith(f"299 {live.root}: {sop}: ") and "starts with a zero" in text for text in said)
    assert any(f"StudyInstanceUID (0020,000D) {study}: component '083000'" in text for text in said)

    # A study-targeted STOW-RS names the study by its legacy UID (the identical instance again: a success).
    assert post(live, dicom_parts(data), path=f"/dicom-web/studies/{study}").status == 200

    # QIDO-RS: as a matching key (alone and in a list) and in every path.
    assert _found(live, f"/dicom-web/studies?StudyInstanceUID={study}", "0020000D") == [study]
    assert _found(live, f"/dicom-web/instances?SOPInstanceUID=1.2.3,{sop}", "00080018") == [sop]
    assert _found(live, f"/dicom-web/series?SeriesInstanceUID={series}", "0020000E") == [series]
    assert _found(live, f"/dicom-web/studies/{study}/series", "0020000E") == [series]
    assert _found(live, f"/dicom-web/studies/{study}/instances", "00080018") == [sop]
    assert _found(live, f"/dicom-web/studies/{study}/series/{series}/instances", "00081190") == [
        live.root + _path(legacy)[len("/dicom-web"):]]

    # WADO-RS: the instance as stored, byte for byte, and in the default syntax with the same UIDs.
    [(_headers, body)] = parts(get(live, _path(legacy), AS_STORED))
    assert body == data
    [(_headers, body)] = parts(get(live, f"/dicom-web/studies/{study}", DICOM))
    served = pydicom.dcmread(io.BytesIO(body))
    assert [str(served[k].value) for k in UID_KEYWORDS] == [study, series, sop]
    original = pydicom.dcmread(io.BytesIO(data))
    assert np.array_equal(served.pixel_array, original.pixel_array)

    # Metadata at every level, and its BulkDataURI answers.
    for path in (f"/dicom-web/studies/{study}", f"/dicom-web/studies/{study}/series/{series}", _path(legacy)):
        [meta] = json.loads(get(live, path + "/metadata", JSON).body)
        assert [values(meta, tag) for tag in ("0020000D", "0020000E", "00080018")] == [[study], [series], [sop]]
    pixel_uri = meta["7FE00010"]["BulkDataURI"]
    assert pixel_uri.startswith(live.root + _path(legacy)[len("/dicom-web"):])
    assert parts(get(live, pixel_uri, OCTETS + "; transfer-syntax=*"))

    # Frames as stored.
    frames = int(original.get("NumberOfFrames", 1))
    expected = (list(generate_frames(original.PixelData, number_of_frames=frames))
                if original.file_meta.TransferSyntaxUID.is_encapsulated else [original.PixelData])
    got = parts(get(live, _path(legacy) + "/frames/1", OCTETS + "; transfer-syntax=*"))
    assert [body for _h, body in got] == expected[:1]


BAD_UIDS = ["1.2.", ".1.2", "1..2", "1.2a", "1.2.３", "1.2 3", "1" * 65]


@pytest.mark.parametrize("bad", BAD_UIDS)
def test_what_no_uid_can_be_stays_refused_at_every_edge(live: LiveServer, bad: str) -> None:
    quoted = quote(bad, safe="")
    asked = [
        (f"/dicom-web/studies/{quoted}/series", JSON),  # QIDO-RS paths and keys
        (f"/dicom-web/studies/1.2.3/series/{quoted}/instances", JSON),
        (f"/dicom-web/studies?StudyInstanceUID={quoted}", JSON),
        (f"/dicom-web/instances?SOPInstanceUID=1.2.3,{quoted}", JSON),
        (f"/dicom-web/studies/{quoted}/metadata", JSON),  # WADO-RS paths
        (f"/dicom-web/studies/1.2.3/series/{quoted}", DICOM),
        (f"/dicom-web/studies/1.2.3/series/4.5/instances/{quoted}", DICOM),
    ]
    for path, accept in asked:
        reply = get(live, path, accept)
        assert reply.status == 400, (path, reply.status, reply.body)
        assert b"not a valid UID" in reply.body
    data, _legacy = with_legacy_uids("CT_small.dcm")
    reply = post(live, dicom_parts(data), path=f"/dicom-web/studies/{quoted}")
    assert reply.status == 400 and b"not a valid UID" in reply.body


def test_import_stores_a_legacy_uid_and_names_it(database_url: str, tmp_path: Path) -> None:
    data, legacy = with_legacy_uids("CT_small.dcm")
    source = tmp_path / "old-equipment.dcm"
    source.write_bytes(data)
    storage = tmp_path / "store"
    result = run_xdsi("import", "--no-progress", "--database-url", database_url, "--storage", str(storage),
                      str(source))
    assert result.returncode == 0, result.stderr
    assert "stored 1, duplicate 0, failed 0" in result.stdout
    warned = [line for line in result.stderr.splitlines() if line.startswith(f"warning: {source}: ")]
    assert len(warned) == 3 and all("starts with a zero" in line for line in warned)
    archive = Archive.open(make_settings(database_url, storage))
    try:
        with archive.sessions() as session:
            found = index.find_instance(session, legacy["SOPInstanceUID"])
            assert found is not None and found.sha256
    finally:
        archive.close()


def test_a_stored_legacy_uid_is_logged_as_a_warning(archive: Archive, caplog: pytest.LogCaptureFixture) -> None:
    data, legacy = with_legacy_uids("CT_small.dcm")
    with caplog.at_level(logging.WARNING, logger="xdsi.services.store"):
        [outcome] = archive.store.store([io.BytesIO(data)])
    assert outcome.status is Status.STORED
    assert len(outcome.warnings) == 3
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(legacy["SOPInstanceUID"] in text and legacy["StudyInstanceUID"] in text and "zero" in text
               for text in logged)
