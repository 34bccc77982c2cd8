"""pydicom's files that a conforming archive must accept: one per SOP Instance UID, hierarchy consistent."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.dataset import Dataset

from tests.dicomfiles import pydicom_files

UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*", re.ASCII)
KNOWN_SYNTAXES = {str(u) for u in pydicom.uid.AllTransferSyntaxes}


@dataclass
class Corpus:
    """The files a conforming archive must accept, one per SOP Instance UID, hierarchy consistent."""

    datasets: list[Dataset] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)  # SOP Instance UID -> file
    sent: dict[str, bytes] = field(default_factory=dict)  # SOP Instance UID -> bytes the server received
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
        except Exception as exc:  # noqa: BLE001 - any failure of pydicom marks the file unusable here
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
        corpus.paths[ds.SOPInstanceUID] = path
    return corpus
