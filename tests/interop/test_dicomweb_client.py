"""The real dicomweb-client against xdsi under gunicorn: store pydicom's files, then search them.

Every expected answer is computed here from the files themselves, not from the server.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict

from dicomweb_client.api import DICOMwebClient

from tests.interop.corpus import Corpus


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
