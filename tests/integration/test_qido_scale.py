"""QIDO-RS with 10,000 indexed instances reads the index only: no file is opened, none needs to exist."""

from __future__ import annotations

import importlib.machinery
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from tests.conftest import make_settings
from tests.live import LiveServer
from xdsi.dicom.names import person_name_keys
from xdsi.repository import db
from xdsi.repository.models import Instance, InstanceMetadata, Patient, Series, Study
from xdsi.services.search import SearchLimits, search

STUDIES, SERIES, INSTANCES = 500, 2, 10
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Python opens its own code as it runs: a module imported on first use, or source lines read for a
# traceback (pytest formats one when an earlier test's garbage is finalized in the middle of a
# search). Such files are no part of the archive; every other file opened is.
PYTHON_CODE = tuple(importlib.machinery.all_suffixes())


def _fill(database_url: str) -> None:
    """Index rows as the store would write them, for instances whose files were never written."""
    engine = db.create_engine_for(database_url)
    names = ["Smith^Anna", "Jones^Bo", "Müller^Jürgen", "Núñez^José", "Collins^Jennifer"]
    patients, studies, series, instances, fragments = [], [], [], [], []
    for p in range(STUDIES // 2):
        keys = person_name_keys(names[p % len(names)])
        patients.append({"id": p + 1, "patient_id": f"P{p:05d}", "issuer_of_patient_id": "",
                         "patient_name": names[p % len(names)], "birth_date": "19700101", "sex": "F",
                         **{f"name_{k}": v for k, v in keys.__dict__.items()}})
    empty_referring = {f"referring_{k}": v for k, v in person_name_keys("").__dict__.items()}
    for s in range(STUDIES):
        modality = ("CT", "MR")[s % 2]
        studies.append({"id": s + 1, "study_uid": f"2.25.1{s}", "patient_fk": s // 2 + 1,
                        "study_date": f"20{10 + s % 15:02d}{1 + s % 12:02d}{1 + s % 28:02d}", "study_time": "101500",
                        "study_time_key": "101500.000000", "study_datetime_utc": "", "timezone_offset": "",
                        "accession_number": f"A{s:05d}", "referring_physician_name": "", "study_id": f"S{s}",
                        "study_description": "scale", "modalities_in_study": modality,
                        "sop_classes_in_study": "1.2.840.10008.5.1.4.1.1.2", "number_of_series": SERIES,
                        "number_of_instances": SERIES * INSTANCES, "updated_at": NOW, **empty_referring})
        for e in range(SERIES):
            series_id = s * SERIES + e + 1
            series.append({"id": series_id, "series_uid": f"2.25.2{s}.{e}", "study_fk": s + 1, "modality": modality,
                           "series_number": e + 1, "series_description": "", "performed_start_date": "",
                           "performed_start_time": "", "performed_start_time_key": "",
                           "number_of_instances": INSTANCES, "updated_at": NOW})
            for i in range(INSTANCES):
                instance_id = (series_id - 1) * INSTANCES + i + 1
                instances.append({"id": instance_id, "sop_instance_uid": f"2.25.3{s}.{e}.{i}",
                                  "series_fk": series_id, "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
                                  "instance_number": i + 1, "rows": 512, "columns": 512, "bits_allocated": 16,
                                  "number_of_frames": None, "specific_character_set": "ISO_IR 192",
                                  "transfer_syntax_uid": "1.2.840.10008.1.2.1", "size": 1, "sha256": "0" * 64,
                                  "blob_key": f"00/00/{instance_id:064x}.{0:016x}.dcm", "pixel_data_offset": None,
                                  "pixel_data_length": None, "received_at": NOW})
                fragments.append({"instance_fk": instance_id, "series_fk": series_id, "xml": b"<x/>",
                                  "json": json.dumps({"00180050": {"vr": "DS", "Value": [1.25]}}).encode()})
    with engine.begin() as connection:
        for model, rows in ((Patient, patients), (Study, studies), (Series, series), (Instance, instances),
                            (InstanceMetadata, fragments)):
            for start in range(0, len(rows), 2000):
                connection.execute(insert(model), rows[start:start + 2000])
    engine.dispose()


def test_qido_over_ten_thousand_instances_touches_only_the_index(database_url: str, tmp_path: Path) -> None:
    _fill(database_url)
    storage = tmp_path / "never-written"
    settings = make_settings(database_url, storage)
    control = tmp_path / "control.dcm"
    control.write_bytes(b"")
    opened: list[str] = []
    listening = [False]

    def audit(event: str, args: tuple) -> None:
        # Audit hooks cannot be removed, so this one only records while the searches run.
        if listening[0] and event == "open" and not str(args[0]).endswith(PYTHON_CODE):
            opened.append(str(args[0]))

    from xdsi.services.archive import Archive

    archive = Archive.open(settings)
    limits = SearchLimits(max_results=1000, max_offset=100_000)
    root = "http://archive.test/dicom-web"
    queries = [
        ("study", [], STUDIES),
        ("study", [("PatientID", "P00042")], 2),
        ("study", [("PatientName", "Mü*")], STUDIES // 5),
        ("study", [("StudyDate", "20120101-20141231")], None),
        ("study", [("ModalitiesInStudy", "MR")], STUDIES // 2),
        ("series", [("Modality", "CT")], STUDIES // 2 * SERIES),
        ("instance", [("includefield", "SliceThickness"), ("SeriesInstanceUID", "2.25.27.1")], INSTANCES),
        ("instance", [("limit", "1000")], 1000),
    ]
    with archive.sessions() as session:
        search(session, "study", [("limit", "1")], root=root, limits=limits)  # warm up imports and connections
        sys.addaudithook(audit)
        listening[0] = True
        try:
            answers = [search(session, level, params, root=root, limits=limits) for level, params, _ in queries]
            recorded = list(opened)
            control.read_bytes()  # the control: an open the hook must see
        finally:
            listening[0] = False
        assert opened[len(recorded):] == [str(control)]
    archive.close()
    assert recorded == [], f"files opened while searching: {recorded[:5]}"
    assert not storage.exists()
    for (_level, params, expected), answer in zip(queries, answers, strict=True):
        if expected is not None:
            assert len(answer.results) == expected, params
    assert answers[3].results and all("20120101" <= r["00080020"]["Value"][0] <= "20141231" for r in answers[3].results)
    assert all(r["00180050"]["Value"] == [1.25] for r in json.loads(answers[6].json()))
    assert answers[7].warnings == ["There are 9000 additional results that can be requested"]


def test_the_same_over_http_with_an_empty_store(database_url: str, tmp_path: Path) -> None:
    _fill(database_url)
    server = LiveServer(database_url, tmp_path / "store")
    try:
        reply = server.request("GET", "/dicom-web/studies", headers={"Accept": "application/dicom+json"})
        assert reply.status == 200 and len(json.loads(reply.body)) == STUDIES
        reply = server.request("GET", "/dicom-web/instances?limit=10&offset=9990")
        assert [r["00080018"]["Value"][0] for r in json.loads(reply.body)][-1] == "2.25.3499.1.9"
        # WADO-RS metadata too is answered from the index's cached fragments, never from a file.
        reply = server.request("GET", "/dicom-web/studies/2.25.17/metadata")
        assert reply.status == 200
        answer = json.loads(reply.body)
        assert len(answer) == SERIES * INSTANCES and all(o["00180050"]["Value"] == [1.25] for o in answer)
        assert not any((tmp_path / "store" / "objects").iterdir())
    finally:
        server.stop()
