"""DICOM test data: pydicom's bundled files and small generated instances."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.data import get_charset_files, get_palette_files, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@lru_cache(maxsize=1)
def pydicom_files() -> tuple[Path, ...]:
    """Every regular file pydicom and pydicom-data ship as test, character-set or palette data."""
    found = get_testdata_files() + get_charset_files() + get_palette_files()
    return tuple(sorted({Path(f) for f in found if os.path.isfile(f)}))


def make_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "PAT-1",
    patient_name: str = "Doe^John",
    modality: str = "CT",
    sop_class_uid: str = CT_IMAGE_STORAGE,
    rows: int = 4,
    columns: int = 4,
    frames: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **attributes: object,
) -> Dataset:
    """A small valid image instance; keyword arguments set or override attributes."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-1"
    ds.ReferringPhysicianName = "Smith^Anne"
    ds.StudyID = "S1"
    ds.StudyDescription = "Test study"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = np.arange(rows * columns * frames, dtype=np.uint16).reshape(frames, rows, columns)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def make_instance(**kwargs: object) -> bytes:
    """A PS3.10 file of ``make_dataset(**kwargs)``."""
    return to_bytes(make_dataset(**kwargs))


def without(keyword: str) -> bytes:
    """A PS3.10 file of a small instance lacking ``keyword``."""
    ds = make_dataset()
    delattr(ds, keyword)
    return to_bytes(ds)


def with_raw_uid(tag: int, value: bytes) -> bytes:
    """A file whose UID element holds ``value`` verbatim, bytes that pydicom would refuse to write."""
    from pydicom.dataelem import DataElement

    placeholder = "9" * max(len(value), 5)
    ds = make_dataset()
    ds[tag] = DataElement(tag, "UI", placeholder)
    if tag == 0x00080018:
        ds.file_meta.MediaStorageSOPInstanceUID = placeholder
    data = to_bytes(ds)
    return data.replace(placeholder.encode(), value.ljust(len(placeholder), b"9"))


BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
_IMAGE_PIXEL_MODULE = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                       "SamplesPerPixel", "PhotometricInterpretation", "PixelData")


def make_report(**kwargs: object) -> Dataset:
    """A Basic Text SR instance (no pixel data): a document, where rendering gives text."""
    ds = make_dataset(sop_class_uid=BASIC_TEXT_SR, modality="SR", **kwargs)
    for keyword in _IMAGE_PIXEL_MODULE:
        delattr(ds, keyword)
    ds.ValueType = "CONTAINER"
    return ds
