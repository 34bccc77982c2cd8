"""STOW-RS instances assembled from metadata plus bulk data (PS3.18 10.5.1.1.2): DICOM JSON or XML
data sets whose BulkDataURIs name parts of the same request, turned into PS3.10 files for the store.

Bulk parts keep their media type: ``application/octet-stream`` is native (little endian)
data; a compressed image or video type (image/jpeg, image/jls, image/jp2, image/jpx,
image/dicom-rle, video/mpeg, video/mp4, …) becomes encapsulated Pixel Data (one fragment per
part, PS3.5 A.4) with its transfer syntax (declared, read from a JPEG frame header, or the
type's default), unchanged; any other type (e.g.
application/pdf for an Encapsulated Document) is taken as the value's bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite

from xdsi.config import Settings
from xdsi.dicom import jpeg, uids
from xdsi.encoding import dicom_json, native_xml
from xdsi.errors import (
    InstanceRejected,
    InvalidRequest,
    MalformedDicom,
    MissingAttribute,
    RequestTooLarge,
    StorageFull,
)
from xdsi.repository.blobs import SPACE_ERRORS, BlobStore, Readable
from xdsi.services.memory_budget import Claim, MemoryBudget
from xdsi.services.store import InstanceStore, Outcome

# Metadata is read and claimed from the budget in pieces of this size.
_PIECE = 1 << 20


@dataclass(frozen=True)
class MetadataPart:
    """One part of a metadata-and-bulk-data request, its headers already read by the protocol layer."""

    media_type: str
    transfer_syntax: str | None  # the transfer-syntax parameter of its media type
    location: str | None  # Content-Location: what a BulkDataURI names it by
    body: Readable


class StowAssembler:
    """Stores the instances that metadata parts and the bulk data parts they reference describe.

    The metadata parts of all requests of this process draw on one budget
    (``stow_metadata_budget_bytes``): each is held as the text it came in until its instances
    are built, one at a time, after the bulk data parts have arrived.
    """

    def __init__(self, settings: Settings, blobs: BlobStore, store: InstanceStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self.store = store
        self.budget = MemoryBudget(settings.effective_stow_metadata_budget, "STOW-RS metadata")

    def store_metadata(self, parts: Iterable[MetadataPart], root_type: str, study_uid: str | None) -> list[Outcome]:
        """PS3.18 10.5.1.1.2: metadata parts (of ``root_type``) first, then the bulk data parts they reference."""
        with self.budget.claim() as claim:
            # In a call of its own, so that all it held is freed before the claim ends (and the heap is trimmed).
            return self._store_claimed(parts, root_type, study_uid, claim)

    def _store_claimed(
        self, parts: Iterable[MetadataPart], root_type: str, study_uid: str | None, claim: Claim
    ) -> list[Outcome]:
        settings = self.settings
        documents: list[dicom_json.DatasetTexts | bytes] = []
        bulk: dict[str, BulkPart] = {}
        try:
            for number, part in enumerate(parts, 1):
                if part.media_type == root_type:
                    payload = _read_metadata(part.body, settings.max_metadata_bytes, claim, number)
                    # PS3.19 A.1: an XML part is one data set; a JSON part an array of them.
                    documents.append(payload if part.media_type == XML else dicom_json.DatasetTexts(payload))
                    del payload  # a JSON part is now held once, as text
                    continue
                if not part.location:
                    raise InvalidRequest(f"bulk data part {number} ({part.media_type}) has no Content-Location")
                path, size = self.blobs.scratch(part.body, settings.max_instance_bytes)
                bulk[part.location] = BulkPart(part.media_type, part.transfer_syntax, path, size)
            instances = build_instances(_datasets(documents), bulk, self.blobs.tmp, settings.max_instance_bytes)
            return self.store.store(instances, study_uid=study_uid)
        finally:
            remove(bulk.values())


XML = "application/dicom+xml"


def _read_metadata(body: Readable, limit: int, claim: Claim, number: int) -> bytes:
    """One metadata part, each piece claimed from the budget before it is kept."""
    pieces = []
    size = 0
    while piece := body.read(_PIECE):
        size += len(piece)
        if size > limit:
            raise RequestTooLarge(f"metadata part {number} exceeds {limit} bytes")
        claim.take(len(piece))
        pieces.append(piece)
    return b"".join(pieces)


def _datasets(documents: list[dicom_json.DatasetTexts | bytes]) -> Iterator[bytes | dicom_json.DatasetText]:
    """Each data set in turn: an XML document as its bytes, a JSON one as its text, read only when built."""
    for document in documents:
        if isinstance(document, bytes):
            yield document
        else:
            yield from document


@dataclass(frozen=True)
class BulkPart:
    """One bulk data part, spooled to disk: its media type, declared transfer syntax and file."""

    media_type: str
    transfer_syntax: str | None
    path: Path
    size: int


def build_instances(
    datasets: Iterable[bytes | dicom_json.DatasetText],
    bulk: dict[str, BulkPart],
    spool_dir: Path,
    max_bytes: int,
) -> Iterator[BinaryIO | InstanceRejected]:
    """A PS3.10 file per data set, or the reason it has none.

    Each file is open for reading until the next is asked for (the store has read it by then),
    or until the store stops early; closing it deletes it.
    """
    for document in datasets:
        try:
            handle = _instance(document, bulk, spool_dir, max_bytes)
        except InstanceRejected as exc:
            yield exc
            continue
        except InvalidRequest as exc:
            sop_class, sop_instance = (None, None) if isinstance(document, bytes) else document.identity()
            yield MalformedDicom(f"metadata cannot be turned into an instance: {exc}",
                                 sop_class_uid=sop_class, sop_instance_uid=sop_instance)
            continue
        with handle:
            yield handle


def _instance(
    document: bytes | dicom_json.DatasetText, bulk: dict[str, BulkPart], spool_dir: Path, max_bytes: int
) -> BinaryIO:
    syntax: list[str] = []
    loader = _loader(bulk, syntax)
    ds = native_xml.loads_dataset(document, loader) if isinstance(document, bytes) else document.to_dataset(loader)
    sop_class, sop_instance = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    if not sop_class or not sop_instance:
        raise MissingAttribute("the metadata lacks SOPClassUID (0008,0016) or SOPInstanceUID (0008,0018)",
                               sop_class_uid=sop_class, sop_instance_uid=sop_instance)
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax[0] if syntax else meta.get("TransferSyntaxUID", uids.EXPLICIT_VR_LITTLE_ENDIAN)
    meta.ImplementationClassUID = uids.IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = uids.IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    # Open past this function on purpose: the store reads it, and closing deletes it.
    handle = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115
    try:
        dcmwrite(handle, ds, enforce_file_format=True)
    except Exception as exc:  # pydicom raises many types for values it cannot encode
        handle.close()
        cause = _first_cause(exc)
        if isinstance(cause, OSError) and cause.errno in SPACE_ERRORS:
            raise StorageFull(f"blob store is out of space: {cause.strerror}") from exc
        raise MalformedDicom(f"the instance cannot be encoded: {cause}", sop_class_uid=str(sop_class),
                             sop_instance_uid=str(sop_instance)) from exc
    handle.seek(0)
    return handle


def _first_cause(exc: BaseException) -> BaseException:
    """The error pydicom wrapped: its wrapper's text carries a traceback with server paths, and
    a full disk arrives as a bare OSError whose errno only the wrapped error keeps."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _loader(bulk: dict[str, BulkPart], syntax: list[str]) -> Callable[[str, str], bytes]:
    def load(uri: str, vr: str) -> bytes:
        part = bulk.get(uri)
        if part is None:
            raise InvalidRequest(f"no bulk data part has Content-Location {uri!r}")
        data = part.path.read_bytes()
        compressed = _compressed_syntax(uri, part, data)
        if compressed is not None:
            # PS3.5 A.4: one fragment per frame, behind a Basic Offset Table.
            syntax.append(compressed)
            return encapsulate([data], has_bot=True)
        return data + b"\0" * (len(data) & 1)

    return load


def _compressed_syntax(uri: str, part: BulkPart, data: bytes) -> str | None:
    """The transfer syntax a compressed part is stored under; None for any other media type."""
    carried = uids.COMPRESSED_MEDIA_TYPES.get(part.media_type)
    if carried is None:
        return None
    if part.transfer_syntax is not None:
        if part.transfer_syntax not in carried:
            raise InvalidRequest(f"bulk data part {uri!r}: transfer syntax {part.transfer_syntax} is not one "
                                 f"{part.media_type} carries ({', '.join(carried)})")
        return part.transfer_syntax
    if part.media_type != "image/jpeg":
        return carried[0]
    found = jpeg.transfer_syntax_of(data)
    if found is None:
        raise InvalidRequest(f"bulk data part {uri!r} is not a JPEG codestream of a process DICOM carries "
                             "(baseline, extended or lossless); name its transfer-syntax if it is one")
    return found


def remove(parts: Iterable[BulkPart]) -> None:
    for part in parts:
        part.path.unlink(missing_ok=True)
