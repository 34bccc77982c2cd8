"""Seeded synthetic DICOM corpus for the benchmarks, cloned from pydicom's bundled test images.

Makes --studies studies of --series series of --instances instances (CT, MR, colour US, CT and MR
mixed), two studies per patient, and one multi-frame study (an uncompressed multi-frame secondary
capture, pydicom's 30-frame JPEG Baseline ultrasound). Every UID (2.25 form), name, date and pixel
shift derives from --seed: the same arguments give the same files, byte for byte, and the same
manifest.json, from which bench/dicomweb.py derives every expected answer. Only --out is written.

Examples:
  .venv/bin/python bench/corpus.py --out bench/corpus          # 1,202 instances, about 330 MB
  .venv/bin/python bench/corpus.py --out bench/corpus-10k --studies 500 --series 2 --instances 10 --pixel-scale 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

SOURCES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm", "US": "examples_rgb_color.dcm"}
# The series modalities of each kind of study; a kind listed twice is drawn twice as often.
STUDY_KINDS = (("CT",), ("CT",), ("MR",), ("MR",), ("CT", "MR"), ("US",))
DESCRIPTIONS = {"CT": ("CT THORAX", "CT ABDOMEN WITH CONTRAST", "CT HEAD"),
                "MR": ("MR BRAIN", "MR KNEE", "MR SPINE"), "US": ("US ABDOMEN", "US NECK")}
FAMILY = ("Abbott", "Baxter", "Carlsen", "Dimitrov", "Eriksen", "Fontaine", "Gallo", "Hughes", "Ivanova", "Jansen",
          "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Santos", "Tanaka")
GIVEN = ("Ada", "Bruno", "Clara", "Diego", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca")
NON_ASCII = ("Bjørnstad^Åsa", "Đorđević^Zoran", "Łukasiewicz^Józef", "Müller^Jürgen")  # UTF-8, ISO_IR 192
# Manifest keys of a study and of a series, and the attributes that carry them.
STUDY_ATTRIBUTES = {"patient_name": "PatientName", "patient_id": "PatientID", "birth_date": "PatientBirthDate",
                    "sex": "PatientSex", "study_uid": "StudyInstanceUID", "study_id": "StudyID",
                    "study_date": "StudyDate", "study_time": "StudyTime", "accession": "AccessionNumber",
                    "description": "StudyDescription", "referring": "ReferringPhysicianName"}
SERIES_ATTRIBUTES = {"series_uid": "SeriesInstanceUID", "number": "SeriesNumber", "modality": "Modality",
                     "description": "SeriesDescription"}
FIRST_DAY = dt.date(2008, 1, 1)


def derived_uid(seed: int, *path: object) -> str:
    """A 2.25 UID (PS3.5 B.2) whose integer is a hash of the seed and the path, so reruns agree."""
    return "2.25." + str(int.from_bytes(hashlib.sha256(repr((seed, *path)).encode()).digest()[:16], "big"))


def load_source(name: str, scale: int = 1) -> tuple[Dataset, np.ndarray | None]:
    """A bundled file ready to take a new identity, and its pixels, enlarged SCALE times if it is a
    single-frame uncompressed image (CT and MR at realistic sizes)."""
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    for tag in (0xFFFCFFFC, 0x00101002, 0x00080201):  # trailing padding, other patient IDs, timezone offset
        ds.pop(tag, None)
    ds.file_meta.pop(0x00020013, None)  # Implementation Version Name: pydicom writes these files
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet, ds.InstitutionName = "ISO_IR 192", "xdsi benchmark"
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return ds, None
    pixels = ds.pixel_array
    if scale > 1 and pixels.ndim == 2:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [round(float(v) / scale, 6) for v in ds.PixelSpacing]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds, pixels


def save(ds: Dataset, study: dict[str, Any], series: dict[str, Any], sop_uid: str, out: Path, relative: str) -> None:
    """Gives DS the identity of the manifest records, writes it and lists it in SERIES."""
    for records, attributes in ((study, STUDY_ATTRIBUTES), (series, SERIES_ATTRIBUTES)):
        for key, keyword in attributes.items():
            setattr(ds, keyword, records[key])
    number = len(series["instances"]) + 1
    ds.SeriesDate, ds.InstanceNumber = study["study_date"], number
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out / relative, enforce_file_format=True)
    series["instances"].append({
        "sop_uid": sop_uid, "sop_class": ds.SOPClassUID, "number": number, "path": relative,
        "size": (out / relative).stat().st_size, "frames": int(ds.get("NumberOfFrames", 1)),
        "transfer_syntax": ds.file_meta.TransferSyntaxUID})


def image_studies(args: argparse.Namespace, rng: random.Random) -> list[dict[str, Any]]:
    sources = {m: load_source(name, args.pixel_scale) for m, name in SOURCES.items()}
    studies: list[dict[str, Any]] = []
    for s in range(args.studies):
        if s % 2 == 0:  # a new patient every second study
            p = s // 2
            name = NON_ASCII[p // 13 % len(NON_ASCII)] if p % 13 == 6 else f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
            birth = FIRST_DAY - dt.timedelta(days=rng.randrange(18 * 365, 90 * 365))
            patient = {"patient_id": f"PAT{p:06d}", "patient_name": name, "birth_date": birth.strftime("%Y%m%d"),
                       "sex": rng.choice("FM")}
        kind = rng.choice(STUDY_KINDS)
        day = FIRST_DAY + dt.timedelta(days=rng.randrange(18 * 365))
        hour, minute = divmod(rng.randrange(7 * 60, 20 * 60), 60)
        study = {**patient, "study_uid": derived_uid(args.seed, "study", s), "study_id": str(s + 1),
                 "study_date": day.strftime("%Y%m%d"), "study_time": f"{hour:02d}{minute:02d}00",
                 "accession": f"A{s:07d}", "description": rng.choice(DESCRIPTIONS[kind[-1]]),
                 "referring": f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}", "series": []}
        for m in range(args.series):
            modality = kind[m % len(kind)]
            series = {"series_uid": derived_uid(args.seed, "series", s, m), "number": m + 1,
                      "modality": modality, "description": f"{modality} series {m + 1}", "instances": []}
            ds, pixels = sources[modality]
            for k in range(args.instances):
                if modality != "US":
                    ds.FrameOfReferenceUID = derived_uid(args.seed, "frame-of-reference", s, m)
                    ds.SliceLocation = position = round(2.5 * k - 50, 2)
                    ds.ImagePositionPatient = [-120.0, -120.0, position]
                ds.PixelData = np.roll(pixels, 3 * k + m, axis=1).tobytes()  # pixels of its own, seeded by place
                save(ds, study, series, derived_uid(args.seed, "instance", s, m, k), args.out,
                     f"study{s:05d}/series{m:02d}/{k:04d}.dcm")
            study["series"].append(series)
        studies.append(study)
    return studies


def multiframe_study(args: argparse.Namespace) -> dict[str, Any]:
    """One study with an uncompressed multi-frame image and a JPEG Baseline multi-frame clip."""
    study = {"patient_id": "PATMF0001", "patient_name": "Multiframe^Study", "birth_date": "19700101", "sex": "O",
             "study_uid": derived_uid(args.seed, "study", "multiframe"), "study_id": "MF", "study_date": "20200229",
             "study_time": "120000", "accession": "AMF0001", "description": "MULTI-FRAME", "referring": "",
             "series": []}
    plain, pixels = load_source(SOURCES["MR"])
    plain.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
    plain.NumberOfFrames, plain.FrameIncrementPointer, plain.FrameTime = args.frames, 0x00181063, 40.0
    plain.PixelData = np.stack([np.roll(pixels, 4 * f, axis=0) for f in range(args.frames)]).tobytes()
    for number, (modality, ds) in enumerate((("OT", plain), ("US", load_source("examples_ybr_color.dcm")[0])), 1):
        series = {"series_uid": derived_uid(args.seed, "series", "multiframe", number), "number": number,
                  "modality": modality, "description": f"{modality} multi-frame", "instances": []}
        save(ds, study, series, derived_uid(args.seed, "instance", "multiframe", number), args.out,
             f"multiframe/{number}.dcm")
        study["series"].append(series)
    return study


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created; its files are replaced)")
    for flag, default, text in (("--studies", 20, "studies"), ("--series", 3, "series per study"),
                                ("--instances", 20, "instances per series"),
                                ("--pixel-scale", 4, "enlarge CT and MR images this many times per side (4: CT "
                                 "512x512, about 513 KB; MR 256x256, about 129 KB; 1: the originals)"),
                                ("--frames", 16, "frames of the uncompressed multi-frame image"),
                                ("--seed", 1, "every UID, name, date and pixel shift derives from it")):
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    args = parser.parse_args(argv)
    if min(args.studies, args.series, args.instances, args.pixel_scale, args.frames) < 1:
        parser.error("--studies, --series, --instances, --pixel-scale and --frames must be at least 1")
    studies = image_studies(args, random.Random(args.seed)) + [multiframe_study(args)]
    sizes = [i["size"] for st in studies for se in st["series"] for i in se["instances"]]
    totals = {"patients": len({st["patient_id"] for st in studies}), "studies": len(studies),
              "instances": len(sizes), "bytes": sum(sizes)}
    manifest = {"format": "xdsi-bench-corpus/1", "params": {k: v for k, v in vars(args).items() if k != "out"},
                "totals": totals, "studies": studies}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"{totals['instances']} instances in {totals['studies']} studies, {totals['bytes'] / 1e6:.1f} MB: {args.out}")


def ensure(folder: Path, extra: str = "") -> None:
    """Generates a corpus into FOLDER, with EXTRA arguments, unless FOLDER already holds one."""
    if not (folder / "manifest.json").is_file():
        main(["--out", str(folder), *shlex.split(extra)])


if __name__ == "__main__":
    main()
