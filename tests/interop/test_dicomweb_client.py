"""The real dicomweb-client against xdsi under gunicorn: store pydicom's files, then search them.

Every expected answer is computed here from the files themselves, not from the server.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom._uid_dict import UID_dictionary
from pydicom.dataset import Dataset

from tests.conftest import DATABASES
from tests.dicomfiles import pydicom_files
from tests.live import LiveServer

UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*", re.ASCII)
KNOWN_SYNTAXES = {str(u) for u in pydicom.uid.AllTransferSyntaxes}


@dataclass
class Corpus:
    """The files a conforming archive must accept, one per SOP Instance UID, hierarchy consistent."""

    datasets: list[Dataset] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def studies(self) -> dict[str, list[Dataset]]:
        found: dict[str, list[Dataset]] = defaultdict(list)
        for ds in self.datasets:
            found[ds.StudyInstanceUID].append(ds)
        return found


def _storable(path: Path) -> tuple[Dataset | None, str]:
    raw = path.read_bytes()
    if raw[128:132] != b"DICM":
        return None, "not PS3.10"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            ds = pydicom.dcmread(path)
            ds.PixelData if "PixelData" in ds else None  # noqa: B018 - reading it proves the file is whole
        except Exception as exc:
            return None, f"pydicom: {exc}"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        value = str(ds.get(keyword, ""))
        if not (UID.fullmatch(value) and len(value) <= 64):
            return None, f"{keyword} {value!r}"
    entry = UID_dictionary.get(ds.SOPClassUID)
    if entry is None or entry[1] != "SOP Class" or "Storage" not in entry[0] or "Directory" in entry[0]:
        return None, "not a storage SOP class"
    if str(ds.file_meta.get("TransferSyntaxUID", "")) not in KNOWN_SYNTAXES:
        return None, "unknown transfer syntax"
    return ds, ""


def build_corpus() -> Corpus:
    corpus = Corpus()
    seen: set[str] = set()
    study_patient: dict[str, tuple[str, str]] = {}
    series_study: dict[str, str] = {}
    for path in pydicom_files():
        ds, why = _storable(path)
        if ds is None:
            corpus.skipped[path.name] = why
            continue
        patient = (str(ds.get("PatientID", "")), str(ds.get("IssuerOfPatientID", "")))
        if ds.SOPInstanceUID in seen:
            corpus.skipped[path.name] = "SOP Instance UID already taken by another file"
            continue
        if study_patient.setdefault(ds.StudyInstanceUID, patient) != patient:
            corpus.skipped[path.name] = "study of another patient"
            continue
        if series_study.setdefault(ds.SeriesInstanceUID, ds.StudyInstanceUID) != ds.StudyInstanceUID:
            corpus.skipped[path.name] = "series of another study"
            continue
        seen.add(ds.SOPInstanceUID)
        corpus.datasets.append(ds)
    return corpus


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus()


@pytest.fixture(scope="module", params=DATABASES)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           corpus: Corpus) -> Iterator[DICOMwebClient]:
    folder = tmp_path_factory.mktemp(f"interop-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    server = LiveServer(url, folder / "store")
    web = DICOMwebClient(url=server.root)
    try:
        for start in range(0, len(corpus.datasets), 40):
            answer = web.store_instances(corpus.datasets[start:start + 40])
            stored = {item.ReferencedSOPInstanceUID for item in answer.get("ReferencedSOPSequence", [])}
            assert stored == {ds.SOPInstanceUID for ds in corpus.datasets[start:start + 40]}, (
                [(item.ReferencedSOPInstanceUID, item.FailureReason) for item in answer.get("FailedSOPSequence", [])])
            assert "FailedSOPSequence" not in answer
        yield web
    finally:
        server.stop()


def test_the_corpus_is_large(corpus: Corpus) -> None:
    assert len(corpus.datasets) >= 140, corpus.skipped


def _values(results: list[dict], tag: str) -> set[str]:
    return {r[tag]["Value"][0] for r in results if "Value" in r.get(tag, {})}


def test_every_instance_is_found_where_it_was_stored(client: DICOMwebClient, corpus: Corpus) -> None:
    for study_uid, members in corpus.studies().items():
        series = _values(client.search_for_series(study_uid), "0020000E")
        assert series == {ds.SeriesInstanceUID for ds in members}
        for series_uid in series:
            found = _values(client.search_for_instances(study_uid, series_uid), "00080018")
            assert found == {ds.SOPInstanceUID for ds in members if ds.SeriesInstanceUID == series_uid}


def test_single_value_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    by_patient: dict[str, set[str]] = defaultdict(set)
    for ds in corpus.datasets:
        if ds.get("PatientID"):
            by_patient[str(ds.PatientID)].add(ds.StudyInstanceUID)
    assert len(by_patient) >= 10
    for patient_id, studies in sorted(by_patient.items())[:25]:
        if "*" in patient_id or "?" in patient_id or "\\" in patient_id:
            continue
        found = _values(client.search_for_studies(search_filters={"PatientID": patient_id}), "0020000D")
        assert found == studies, patient_id


def test_list_of_uid_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    wanted = sorted(corpus.studies())[:5]
    found = _values(client.search_for_studies(search_filters={"StudyInstanceUID": ",".join(wanted)}), "0020000D")
    assert found == set(wanted)


def test_wildcard_person_name_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    names: dict[str, set[str]] = defaultdict(set)
    for ds in corpus.datasets:
        family = str(ds.get("PatientName", "")).split("=")[0].split("^")[0]
        if family[:3].isalpha():
            names[family[:3]].add(ds.StudyInstanceUID)
    assert len(names) >= 5
    for prefix in sorted(names)[:15]:
        expected = {
            ds.StudyInstanceUID for ds in corpus.datasets
            if fnmatch.fnmatchcase(str(ds.get("PatientName", "")).split("=")[0].split("^")[0].casefold(),
                                   prefix.casefold() + "*")
        }
        found = _values(client.search_for_studies(search_filters={"PatientName": prefix + "*"}), "0020000D")
        assert found == expected, prefix


def test_non_ascii_names_decoded_per_character_set(client: DICOMwebClient, corpus: Corpus) -> None:
    decoded = [ds for ds in corpus.datasets if not str(ds.get("PatientName", "")).isascii()]
    assert len(decoded) >= 5
    for ds in decoded:
        family = str(ds.PatientName).split("=")[0].split("^")[0]
        if not family:
            continue
        results = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
        assert results[0]["00100010"]["Value"][0]["Alphabetic"] == str(ds.PatientName).split("=")[0]
        found = _values(client.search_for_studies(search_filters={"PatientName": family + "*"}), "0020000D")
        assert ds.StudyInstanceUID in found


def test_date_range_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    dates = sorted({str(ds.StudyDate) for ds in corpus.datasets if len(str(ds.get("StudyDate", ""))) == 8})
    assert len(dates) >= 5
    low, high = dates[len(dates) // 4], dates[3 * len(dates) // 4]
    expected = {ds.StudyInstanceUID for ds in corpus.datasets if low <= str(ds.get("StudyDate", "")) <= high}
    found = _values(client.search_for_studies(search_filters={"StudyDate": f"{low}-{high}"}), "0020000D")
    assert found == expected
    before = {ds.StudyInstanceUID for ds in corpus.datasets if "" < str(ds.get("StudyDate", "")) <= low}
    assert _values(client.search_for_studies(search_filters={"StudyDate": f"-{low}"}), "0020000D") == before


def test_modality_matching_at_series_and_study_level(client: DICOMwebClient, corpus: Corpus) -> None:
    modalities = {str(ds.Modality) for ds in corpus.datasets if ds.get("Modality")}
    for modality in sorted(modalities):
        series = {ds.SeriesInstanceUID for ds in corpus.datasets if ds.get("Modality") == modality}
        assert _values(client.search_for_series(search_filters={"Modality": modality}), "0020000E") == series
        studies = {ds.StudyInstanceUID for ds in corpus.datasets if ds.get("Modality") == modality}
        found = _values(client.search_for_studies(search_filters={"ModalitiesInStudy": modality}), "0020000D")
        assert found == studies, modality


def test_instance_level_attribute_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    sop_class = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    expected = {ds.SOPInstanceUID for ds in corpus.datasets if ds.SOPClassUID == sop_class}
    found = _values(client.search_for_instances(search_filters={"SOPClassUID": sop_class}), "00080018")
    assert found == expected and expected


def test_fuzzy_matching(client: DICOMwebClient, corpus: Corpus) -> None:
    ds = next(d for d in corpus.datasets if str(d.get("PatientName", "")).split("^")[0].isalpha()
              and len(str(d.PatientName).split("^")[0]) > 4)
    family = str(ds.PatientName).split("^")[0]
    misspelt = family[0] + family[1:].replace("a", "e", 1).replace("o", "u", 1)
    found = _values(client.search_for_studies(search_filters={"PatientName": misspelt}, fuzzymatching=True),
                    "0020000D")
    assert ds.StudyInstanceUID in found


def test_paging_covers_everything_once(client: DICOMwebClient, corpus: Corpus) -> None:
    total = len(corpus.studies())
    seen: list[str] = []
    for offset in range(0, total, 7):
        page = client.search_for_studies(limit=7, offset=offset)
        seen += [r["0020000D"]["Value"][0] for r in page]
    assert sorted(seen) == sorted(corpus.studies())


def test_includefield(client: DICOMwebClient, corpus: Corpus) -> None:
    ds = next(d for d in corpus.datasets if d.get("StudyDescription"))
    [result] = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID},
                                         fields=["StudyDescription", "00080062"])
    assert result["00081030"]["Value"] == [ds.StudyDescription]
    assert ds.SOPClassUID in result["00080062"]["Value"]
