"""DICOM test data: pydicom's bundled files and small generated instances."""

from __future__ import annotations

import io
import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.data import get_charset_files, get_palette_files, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
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
    ds = make_dataset(**{"sop_class_uid": BASIC_TEXT_SR, "modality": "SR", **kwargs})
    for keyword in _IMAGE_PIXEL_MODULE:
        delattr(ds, keyword)
    ds.ValueType = "CONTAINER"
    return ds


ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_CDA_STORAGE = "1.2.840.10008.5.1.4.1.1.104.2"
VIDEO_ENDOSCOPIC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
ENHANCED_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22"

# A one-page PDF of odd length: stored, it gains a pad byte the answer must not carry.
SMALL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def make_document(document: bytes, *, sop_class_uid: str = ENCAPSULATED_PDF_STORAGE,
                  mime_type: str = "application/pdf", **kwargs: object) -> Dataset:
    """An Encapsulated PDF (or CDA) instance holding ``document`` (PS3.3 A.45)."""
    ds = make_dataset(sop_class_uid=sop_class_uid, modality="DOC", **kwargs)
    for keyword in _IMAGE_PIXEL_MODULE:
        delattr(ds, keyword)
    ds.MIMETypeOfEncapsulatedDocument = mime_type
    ds.EncapsulatedDocument = document + b"\0" * (len(document) & 1)
    ds.EncapsulatedDocumentLength = len(document)
    ds.BurnedInAnnotation = "YES"
    return ds


def make_video(fragments: list[bytes], transfer_syntax: str, **kwargs: object) -> Dataset:
    """A video instance whose pixel data holds ``fragments`` (a bitstream split as PS3.5 8.2.5 allows)."""
    ds = make_dataset(sop_class_uid=VIDEO_ENDOSCOPIC_IMAGE_STORAGE, modality="ES", rows=8, columns=8,
                      transfer_syntax=transfer_syntax, **kwargs)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.NumberOfFrames, ds.FrameTime = 25, 40.0
    ds.PixelData = _encapsulated_fragments(fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


# A video transfer syntax -> the container and encoder its bitstream is made with here
# (PS3.5 8.2.5: an MPEG-2 Program Stream; 8.2.7, 8.2.8: H.264 and HEVC elementary streams).
VIDEO_CODERS = {
    "1.2.840.10008.1.2.4.100": ("mpeg", "mpeg2video"),
    "1.2.840.10008.1.2.4.102": ("h264", "libx264"),
    "1.2.840.10008.1.2.4.107": ("hevc", "libx265"),
}


def video_stream(frames: list[np.ndarray], transfer_syntax: str, rate: int = 25, container_format: str | None = None) -> bytes:
    """RGB frames (rows x columns x 3, uint8, even sizes) encoded by PyAV in near-lossless quality, in the
    transfer syntax's usual container unless ``container_format`` names another (e.g. mpegts)."""
    import av

    usual_format, codec = VIDEO_CODERS[transfer_syntax]
    container_format = container_format or usual_format
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg2video":
            stream.codec_context.qmin = stream.codec_context.qmax = 1
        else:
            stream.options = {"crf": "4", "x265-params": "log-level=error"} if codec == "libx265" else {"crf": "4"}
        for number, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = number
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def make_coded_video(frames: list[np.ndarray], transfer_syntax: str, fragment_bytes: int = 4000,
                     **kwargs: object) -> Dataset:
    """A Video Endoscopic instance of ``frames`` encoded in ``transfer_syntax``'s codec, its
    bitstream split into fragments of ``fragment_bytes`` (PS3.5 A.4 allows any split)."""
    stream = video_stream(frames, transfer_syntax)
    ds = make_video([stream[at:at + fragment_bytes] for at in range(0, len(stream), fragment_bytes)],
                    transfer_syntax, **kwargs)
    ds.Rows, ds.Columns = frames[0].shape[:2]
    ds.NumberOfFrames = len(frames)
    return ds


def _encapsulated_fragments(fragments: list[bytes]) -> bytes:
    """An empty Basic Offset Table item and one item per fragment (PS3.5 A.4; pydicom writes the delimiter)."""
    out = struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    for fragment in fragments:
        fragment += b"\0" * (len(fragment) & 1)
        out += struct.pack("<HHL", 0xFFFE, 0xE000, len(fragment)) + fragment
    return out


def make_two_halves(dark: int, light: int, size: int, **kwargs: object) -> Dataset:
    """An 8-bit MONOCHROME2 square image, left half ``dark``, right half ``light``, whose own window
    (centre 127.5, width 256) shows each stored value as that gray level."""
    ds = make_dataset(rows=size, columns=size, BitsAllocated=8, BitsStored=8, HighBit=7,
                      WindowCenter=127.5, WindowWidth=256, **kwargs)
    pixels = np.full((size, size), dark, dtype=np.uint8)
    pixels[:, size // 2:] = light
    ds.PixelData = pixels.tobytes()
    return ds


GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"


def dataset_of(**values: object) -> Dataset:
    """A data set (a sequence item) of the attributes given by keyword."""
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def make_presentation_state(image: Dataset, **top: object) -> Dataset:
    """A GSPS referencing ``image``: a window, rotation 90, horizontal flip, a displayed area, a polyline.

    It is a storable instance of the image's study, in a series of its own."""
    ds = Dataset()
    ds.SOPClassUID = GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = image.StudyInstanceUID, generate_uid()
    ds.PatientID, ds.PatientName = image.PatientID, image.PatientName
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "PR", 99, 1
    ds.ContentLabel, ds.PresentationCreationDate, ds.PresentationCreationTime = "VIEW", "20240101", "120000"
    ref = dataset_of(ReferencedSOPClassUID=image.SOPClassUID, ReferencedSOPInstanceUID=image.SOPInstanceUID)
    ds.ReferencedSeriesSequence = Sequence([dataset_of(SeriesInstanceUID=image.SeriesInstanceUID,
                                                  ReferencedImageSequence=Sequence([ref]))])
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.SoftcopyVOILUTSequence = Sequence([dataset_of(WindowCenter=40, WindowWidth=400)])
    ds.PresentationLUTShape = "IDENTITY"
    ds.ImageRotation = 90
    ds.ImageHorizontalFlip = "Y"
    ds.DisplayedAreaSelectionSequence = Sequence([dataset_of(
        DisplayedAreaTopLeftHandCorner=[11, 21], DisplayedAreaBottomRightHandCorner=[110, 100],
        PresentationSizeMode="SCALE TO FIT", PresentationPixelAspectRatio=[1, 1])])
    ds.GraphicLayerSequence = Sequence([dataset_of(GraphicLayer="MARKS", GraphicLayerOrder=1,
                                              GraphicLayerRecommendedDisplayGrayscaleValue=0xFFFF)])
    polyline = dataset_of(GraphicAnnotationUnits="PIXEL", GraphicDimensions=2, NumberOfGraphicPoints=2,
                     GraphicData=[20.5, 30.5, 20.5, 80.5], GraphicType="POLYLINE", GraphicFilled="N")
    ds.GraphicAnnotationSequence = Sequence([dataset_of(GraphicLayer="MARKS",
                                                   GraphicObjectSequence=Sequence([polyline]))])
    for key, value in top.items():
        setattr(ds, key, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds
