"""Retrieve instances, frames and bulk data (WADO-RS, WADO-URI, RAD-69), streamed from the store.

What may be sent in which form is decided in ``plans``; this module reads and produces the bytes.

An instance asked for in its stored transfer syntax is streamed from its file in large
chunks, never read whole. Transcoding needs the whole instance decoded, so it is bounded by
``max_transcode_bytes``. Metadata comes from the per-instance cache, never from the files.
"""

from __future__ import annotations

import hashlib
import io
import resource
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_data_element
from sqlalchemy.orm import Session, sessionmaker

from xdsi.dicom import transcode, uids
from xdsi.dicom.byteorder import WORD_WIDTH, swap_bytes
from xdsi.dicom.frames import FrameTable, frame_table, read_frame
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.dicom.tags import PIXEL_DATA_TAGS, UNDEFINED_LENGTH
from xdsi.dicom.transcode import PixelDescription
from xdsi.dicom.uids import validate_uid
from xdsi.errors import InstanceTooLarge, InvalidRequest, MalformedDicom, NotAcceptable, NotFound
from xdsi.repository import index
from xdsi.repository.blobs import BlobReader, BlobStore, OpenedBlobs
from xdsi.repository.index import StoredInstance
from xdsi.services.metadata import absolute_json_part, absolute_xml, xml_of

CHUNK = 4 << 20  # large writes keep loopback retrieval near the socket's own speed


@dataclass(frozen=True)
class Target:
    """Which resource: a study, one of its series, or one instance."""

    study_uid: str
    series_uid: str | None = None
    sop_instance_uid: str | None = None

    @classmethod
    def checked(cls, study_uid: str, series_uid: str | None = None, sop_instance_uid: str | None = None,
                *, where: str = "") -> Target:
        """A target from UIDs a client typed or sent; InvalidUID names the first malformed one."""
        for uid, name in ((study_uid, "Study"), (series_uid, "Series"), (sop_instance_uid, "SOP")):
            if uid is not None:
                validate_uid(uid, f"{name} Instance UID{where}")
        return cls(study_uid, series_uid, sop_instance_uid)

    def describe(self) -> str:
        if self.sop_instance_uid:
            return f"instance {self.sop_instance_uid} of series {self.series_uid} of study {self.study_uid}"
        if self.series_uid:
            return f"series {self.series_uid} of study {self.study_uid}"
        return f"study {self.study_uid}"


@dataclass
class Body:
    """One representation to send: its bytes as chunks, and its length when known in advance."""

    chunks: Iterator[bytes]
    length: int | None
    transfer_syntax: str


def instances(session: Session, target: Target) -> list[StoredInstance]:
    """The target's instances, or NotFound naming what is missing."""
    found = index.stored_instances(session, target.study_uid, target.series_uid, target.sop_instance_uid)
    if not found:
        raise NotFound(f"{target.describe()} is not in the archive")
    return found


def opened_files(blobs: BlobStore, found: Sequence[StoredInstance]) -> OpenedBlobs:
    """The files of ``found``, opened now: an answer planned from the index stays whole if a
    delete commits while it streams. A file already gone was deleted since the index was read."""
    try:
        return OpenedBlobs(blobs, (instance.blob_key for instance in found), _pinned_files())
    except FileNotFoundError as exc:
        raise NotFound("the requested instances were deleted while the answer was prepared") from exc


@lru_cache(maxsize=1)
def _pinned_files() -> int:
    """Files one answer may hold open: 512, fewer where descriptors are scarce, so that the
    8 threads of a worker (the default) all pinning at once take at most half the process's limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 512 if soft == resource.RLIM_INFINITY else max(16, min(512, soft // 16))


def instance_body(blobs: BlobReader, instance: StoredInstance, syntax: str | None, max_transcode_bytes: int) -> Body:
    """The instance as a PS3.10 file in ``syntax`` (None: as stored)."""
    if syntax is None or syntax == instance.transfer_syntax_uid:
        return Body(_file_chunks(blobs, instance.blob_key), instance.size, instance.transfer_syntax_uid)
    if instance.size > max_transcode_bytes:
        raise InstanceTooLarge(
            f"instance {instance.sop_instance_uid} ({instance.size} bytes) is too large to transcode "
            f"(limit {max_transcode_bytes} bytes); ask for it as stored with transfer-syntax=*"
        )
    with blobs.open(instance.blob_key) as source:
        ds = dcmread(source)
        try:
            converted = transcode.transcode(ds, syntax, max_pixel_bytes=max_transcode_bytes)
        except MalformedDicom as exc:
            # The stored pixel data cannot be decoded here: it can be sent only as it is.
            raise NotAcceptable(
                f"instance {instance.sop_instance_uid} cannot be provided in {syntax}: {exc}; "
                f"ask for it as stored with transfer-syntax=*"
            ) from exc
    out = io.BytesIO()
    dcmwrite(out, converted, enforce_file_format=True)
    data = out.getvalue()
    return Body(iter([data]), len(data), syntax)


def _file_chunks(blobs: BlobReader, key: str) -> Iterator[bytes]:
    with blobs.open(key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class _Pipe(io.RawIOBase):
    """A write-only file whose writes are collected until drained: zipfile's sink for streaming."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def zip_chunks(blobs: BlobReader, found: Sequence[StoredInstance]) -> Iterator[bytes]:
    """A ZIP of the instances as stored (``study/series/instance.dcm``), written as it is sent.

    The sink cannot seek, so zipfile writes data descriptors after each entry (APPNOTE 4.3.9)
    instead of going back to the local headers: nothing but the current chunk is in memory.
    """
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for instance in found:
            name = f"{instance.study_uid}/{instance.series_uid}/{instance.sop_instance_uid}.dcm"
            stamp = instance.received_at.timetuple()[:6]
            entry = zipfile.ZipInfo(name, date_time=(max(stamp[0], 1980), *stamp[1:]))
            with archive.open(entry, "w", force_zip64=instance.size >= 1 << 31) as target:
                for chunk in _file_chunks(blobs, instance.blob_key):
                    target.write(chunk)
                    yield pipe.drain()
        yield pipe.drain()
    yield pipe.drain()


def open_file(blobs: BlobReader, instance: StoredInstance) -> BinaryIO:
    """The stored file, for a single-part answer the WSGI server may send with sendfile."""
    return blobs.open(instance.blob_key)


# Fragments read from the index per batch: about a megabyte of JSON, whatever the study's size.
METADATA_BATCH = 200


@dataclass(frozen=True)
class Metadata:
    """A metadata answer: its instances' cached fragments, read in batches as the answer is sent,
    and what validates a cached copy of it. The ETag is weak (RFC 9110 8.8.1): it is derived from
    what the answer is made of (the instances, when they last changed, the public URL of their
    bulk data), not from its bytes, which are not all known before they are sent."""

    sessions: sessionmaker[Session]
    instance_ids: tuple[int, ...]
    root: str
    etag: str
    last_modified: datetime

    def fragments(self) -> Iterator[bytes]:
        """Each instance's fragment, in order; an instance deleted meanwhile is left out. Every batch
        is read in a session of its own, since the answer is sent after the request's has closed."""
        for start in range(0, len(self.instance_ids), METADATA_BATCH):
            batch = self.instance_ids[start:start + METADATA_BATCH]
            with self.sessions() as session:
                found = index.metadata_of(session, batch)
            yield from (found[instance_id] for instance_id in batch if instance_id in found)

    def json_chunks(self) -> Iterator[bytes]:
        """One DICOM JSON array, BulkDataURIs made absolute under ``root``, a batch per chunk."""
        separator = b"["
        batch: list[bytes] = []
        for fragment in self.fragments():
            batch.append(separator)
            batch.append(fragment)
            separator = b","
            if len(batch) >= 2 * METADATA_BATCH:
                yield absolute_json_part(b"".join(batch), self.root)
                batch = []
        batch.append(b"]" if separator == b"," else b"[]")
        yield absolute_json_part(b"".join(batch), self.root)

    def xml_documents(self) -> Iterator[bytes]:
        """One PS3.19 document per instance."""
        for fragment in self.fragments():
            yield absolute_xml(xml_of(fragment), self.root)


def metadata(session: Session, sessions: sessionmaker[Session], target: Target, root: str) -> Metadata:
    """The target's metadata, from the fragments cached at ingest: NotFound when it has none."""
    ids, changed = index.metadata_listing(session, target.study_uid, target.series_uid, target.sop_instance_uid)
    if not ids or changed is None:
        raise NotFound(f"{target.describe()} is not in the archive")
    stamp = changed if changed.tzinfo else changed.replace(tzinfo=UTC)
    validator = hashlib.sha256(f"{root}\n{stamp.isoformat()}\n{','.join(map(str, ids))}".encode())
    return Metadata(sessions, tuple(ids), root, validator.hexdigest()[:32], stamp)


def instance_metadata_xml(session: Session, target: Target, root: str) -> bytes:
    """One instance's metadata as a PS3.19 document (small: read in the caller's session)."""
    ids, _changed = index.metadata_listing(session, target.study_uid, target.series_uid, target.sop_instance_uid)
    found = index.metadata_of(session, ids[:1])
    if not ids or ids[0] not in found:
        raise NotFound(f"{target.describe()} is not in the archive")
    return absolute_xml(xml_of(found[ids[0]]), root)


@dataclass(frozen=True)
class BulkValue:
    """The bytes of one bulk data value: a range of the stored file, or (after a byte swap or
    inflate) bytes in memory. Always little endian, as PS3.18 8.7.3.3.2 sends bulk data."""

    key: str
    offset: int
    length: int
    data: bytes | None = None

    def chunks(self, blobs: BlobStore, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of the value, streamed."""
        end = self.length if end is None else end
        if self.data is not None:
            yield self.data[start:end]
            return
        with blobs.open(self.key) as handle:
            yield from read_range(handle, self.offset + start, end - start, self.key)


def read_range(handle: BinaryIO, offset: int, length: int, key: str) -> Iterator[bytes]:
    """``length`` bytes of an open stored file from ``offset``, in large chunks; a file shorter
    than the index says is MalformedDicom, not a silently short answer."""
    handle.seek(offset)
    while length > 0:
        chunk = handle.read(min(CHUNK, length))
        if not chunk:
            raise MalformedDicom(f"stored file {key} is shorter than its index says")
        length -= len(chunk)
        yield chunk


def bulk_value(blobs: BlobStore, instance: StoredInstance, path: tuple[int, ...], limits: Limits) -> BulkValue:
    """Locate the value a BulkDataURI names (tags and 1-based item numbers), or NotFound."""
    if (len(path) == 1 and path[0] in PIXEL_DATA_TAGS and instance.pixel_data_offset is not None
            and instance.pixel_data_length is not None and not uids.is_big_endian(instance.transfer_syntax_uid)):
        return BulkValue(instance.blob_key, instance.pixel_data_offset, instance.pixel_data_length)
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        ds: Dataset = parsed.dataset
        where = ""
        for position in range(0, len(path) - 1, 2):
            tag, number = path[position], path[position + 1]
            where += f"{tag:08X}/{number}/"
            element = ds.get(tag)
            if element is None or element.VR != "SQ" or not 0 < number <= len(element.value):
                raise NotFound(f"bulk data {where.rstrip('/')} does not exist in {instance.sop_instance_uid}")
            ds = element.value[number - 1]
        tag = path[-1]
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None:
            raise NotFound(f"bulk data {where}{tag:08X} does not exist in {instance.sop_instance_uid}")
        # Only a top-level value's position is a file offset: pydicom parses a sequence from a
        # copy of its bytes, and an inflated dataset lives in a temporary copy.
        in_file = len(path) == 1 and not uids.is_deflated(parsed.transfer_syntax)
        if isinstance(raw, RawDataElement):
            if raw.value is None and raw.length not in (0, UNDEFINED_LENGTH) and in_file and raw.is_little_endian:
                return BulkValue(instance.blob_key, raw.value_tell, raw.length)
            undefined = raw.length == UNDEFINED_LENGTH
        else:  # a value pydicom has read already
            undefined = raw.is_undefined_length
        if undefined:
            raise NotFound(f"bulk data {where}{tag:08X} is encapsulated: ask for its frames")
        element = ds[tag]
        if element.VR == "SQ":
            raise NotFound(f"{where}{tag:08X} is a sequence, not bulk data")
        data = _little_endian_bytes(element, ds, uids.is_big_endian(parsed.transfer_syntax))
        return BulkValue(instance.blob_key, 0, len(data), data)




def _little_endian_bytes(element: DataElement, ds: Dataset, big_endian: bool) -> bytes:
    """The value field as a little-endian file would hold it."""
    if big_endian and element.VR in WORD_WIDTH:
        return swap_bytes(bytes(element.value), WORD_WIDTH[element.VR])
    if isinstance(element.value, bytes | bytearray):
        return bytes(element.value) + b"\0" * (len(element.value) & 1)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_data_element(buffer, element, ds._character_set)
    return buffer.getvalue()[8:]  # after the implicit VR header: tag and 32-bit length


@dataclass(frozen=True)
class Frame:
    """One frame to send: its bytes and the transfer syntax they are in."""

    data: bytes
    transfer_syntax: str


def frame_numbers(text: str, limit: int) -> list[int]:
    """'1,3,5' as frame numbers (PS3.18 10.4.1.1.5): 1-based, at most ``limit`` of them."""
    parts = text.split(",")
    if len(parts) > limit:
        raise InvalidRequest(f"at most {limit} frames can be asked for at once")
    numbers = []
    for part in parts:
        part = part.strip()
        if not part.isdigit() or not part.isascii() or len(part) > 9:
            raise InvalidRequest(f"frame number {part[:20]!r} is not a positive integer")
        number = int(part)
        if number < 1:
            raise InvalidRequest("frame numbers start at 1")
        numbers.append(number)
    return numbers


def frames(
    blobs: BlobStore, instance: StoredInstance, numbers: Sequence[int], syntax: str, limits: Limits,
    max_pixel_bytes: int,
) -> Iterator[Frame]:
    """The frames in ``syntax``: as stored when it is the stored syntax, else decoded and re-encoded.

    Each frame is read alone through the frame table kept at ingest, one at a time.
    """
    with blobs.open(instance.blob_key) as handle:
        table, pixel, stream_source = _frame_source(blobs, instance, handle, limits, numbers)
        for number in numbers:
            if number > table.number_of_frames:
                raise NotFound(f"frame {number} is beyond the last frame ({table.number_of_frames}) of "
                               f"{instance.sop_instance_uid}")
        stored = instance.transfer_syntax_uid
        for number in numbers:
            data = read_frame(stream_source, table, number)
            if syntax == stored or (not uids.is_encapsulated(stored) and not uids.is_encapsulated(syntax)):
                # Native frames come out of read_frame little endian whatever the file's order.
                yield Frame(data, stored if uids.is_encapsulated(stored) else uids.EXPLICIT_VR_LITTLE_ENDIAN)
                continue
            pixel = pixel or _describe(blobs, instance, limits)
            if uids.is_encapsulated(stored):
                data, decoded = transcode.decode_frame(data, pixel, stored, max_pixel_bytes=max_pixel_bytes)
            else:
                decoded = pixel
            if uids.is_encapsulated(syntax):
                data, _ = transcode.encode_frame(data, decoded, syntax, max_pixel_bytes=max_pixel_bytes)
            yield Frame(data, syntax)


def _frame_source(
    blobs: BlobStore, instance: StoredInstance, handle: BinaryIO, limits: Limits, numbers: Sequence[int]
) -> tuple[FrameTable, PixelDescription | None, BinaryIO]:
    """The frame table (kept, or found now), the pixel description if already read, and the stream.

    A Deflated file is inflated to find its frames; those of ``numbers`` are kept, in memory.
    """
    if instance.frame_table is not None and not uids.is_deflated(instance.transfer_syntax_uid):
        return FrameTable.from_bytes(instance.frame_table), None, handle
    if instance.pixel_data_offset is None and not uids.is_deflated(instance.transfer_syntax_uid):
        raise NotFound(f"instance {instance.sop_instance_uid} has no frames")
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        pixel_location = parsed.pixel_data
        if pixel_location is None:
            raise NotFound(f"instance {instance.sop_instance_uid} has no frames")
        description = PixelDescription.from_dataset(parsed.dataset)
        table = frame_table(
            parsed.stream, pixel_location, rows=description.rows, columns=description.columns,
            samples_per_pixel=description.samples_per_pixel, bits_allocated=description.bits_allocated,
            number_of_frames=description.number_of_frames, transfer_syntax=parsed.transfer_syntax,
            photometric_interpretation=description.photometric_interpretation,
        )
        # A Deflated file's frames lie in its inflated copy: read those asked for while it exists.
        wanted = sorted({n for n in numbers if 1 <= n <= table.number_of_frames})
        frames = [read_frame(parsed.stream, table, n) for n in wanted]
    # Each frame kept where it lies in the joined bytes: compressed frames differ in size.
    # A frame not asked for keeps an empty range.
    at, offset = {}, 0
    for n, frame in zip(wanted, frames, strict=True):
        at[n] = (offset, len(frame))
        offset += len(frame)
    ranges = tuple((at.get(n, (0, 0)),) for n in range(1, table.number_of_frames + 1))
    frame_bits = 0 if table.encapsulated or not frames else len(frames[0]) * 8
    found = FrameTable(table.encapsulated, table.number_of_frames, ranges, frame_bits)
    return found, description, io.BytesIO(b"".join(frames))


def _describe(blobs: BlobStore, instance: StoredInstance, limits: Limits) -> PixelDescription:
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        return PixelDescription.from_dataset(parsed.dataset)
