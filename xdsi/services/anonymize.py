"""``anonymize=yes`` (PS3.18 9.1.2.1 / 8.3.5.1.x): instances de-identified on the fly by the PS3.15 Annex E
Basic Application Level Confidentiality Profile (``dicom/confidentiality``); the stored files are never touched.

One ``Anonymizer`` serves one request: its random key maps every UID the same way in every instance
of the answer, so references between them (Referenced SOP Instance UID, Frame of Reference, the
study and series) stay consistent, while two requests give unrelated UIDs.

The header is rewritten in memory; the pixel data is streamed from the stored file as it lies
(its element header and value, located at ingest), so a large instance never sits in memory. A
Deflated file, an instance asked for in another transfer syntax, or one without pixel data is
read whole instead, within ``max_transcode_bytes``.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset

from xdsi.dicom import transcode, uids
from xdsi.dicom.confidentiality import UIDMap, apply_profile, deidentify
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.errors import InstanceTooLarge, MalformedDicom, NotAcceptable
from xdsi.repository.blobs import BlobReader, BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services.retrieve import Body, read_range

_EXPLICIT_LONG_HEADER = 12  # PS3.5 7.1.2: tag, VR, two reserved bytes, 32-bit length (OB, OW, OF...)
_IMPLICIT_HEADER = 8  # PS3.5 7.1.3: tag, 32-bit length


class Anonymizer:
    """The profile as applied to one answer (one key, so one consistent set of replacement UIDs)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.uid_map = UIDMap(key if key is not None else secrets.token_bytes(32))

    def dataset(self, ds: Dataset) -> Dataset:
        """``ds`` de-identified in place (and returned)."""
        deidentify(ds, self.uid_map)
        return ds

    def instance_body(self, blobs: BlobStore, instance: StoredInstance, syntax: str | None, limits: Limits,
                      max_transcode_bytes: int, files: BlobReader | None = None) -> Body:
        """The instance as a de-identified PS3.10 file in ``syntax`` (None: as stored).

        ``files``, when given, is what the pixel data is streamed from (the answer's pinned files).
        """
        stored = instance.transfer_syntax_uid
        if (syntax in (None, stored) and instance.pixel_data_offset is not None
                and not uids.is_deflated(stored)):
            return self._streamed(blobs, files or blobs, instance, limits)
        return self._whole(files or blobs, instance, syntax or stored, max_transcode_bytes)

    def _streamed(self, blobs: BlobStore, files: BlobReader, instance: StoredInstance, limits: Limits) -> Body:
        """Rewritten header, then the stored Pixel Data element's bytes, then any element after it."""
        with open_instance(blobs.path(instance.blob_key), limits) as parsed:
            pixel = parsed.pixel_data
            if pixel is None:
                raise MalformedDicom(f"stored instance {instance.sop_instance_uid} has lost its pixel data")
            ds = parsed.dataset
            after = Dataset()
            tags = list(ds.keys())  # the pixel data's value stays unread: only its tag is looked at
            for tag in (tag for tag in tags if int(tag) >= pixel.tag):
                if int(tag) != pixel.tag:
                    after.add(ds[tag])
                del ds[tag]
            self.dataset(ds)
            apply_profile(after, self.uid_map)
            implicit = parsed.transfer_syntax == uids.IMPLICIT_VR_LITTLE_ENDIAN
            little = not uids.is_big_endian(parsed.transfer_syntax)
            head = io.BytesIO()
            dcmwrite(head, ds, enforce_file_format=True)
            tail = DicomBytesIO()
            tail.is_little_endian, tail.is_implicit_VR = little, implicit
            write_dataset(tail, after)
        start = pixel.value_offset - (_IMPLICIT_HEADER if implicit else _EXPLICIT_LONG_HEADER)
        header, trailer = head.getvalue(), tail.getvalue()
        length = len(header) + (pixel.end - start) + len(trailer)
        return Body(_joined(files, instance.blob_key, header, start, pixel.end, trailer), length,
                    instance.transfer_syntax_uid)

    def _whole(self, blobs: BlobReader, instance: StoredInstance, syntax: str, max_transcode_bytes: int) -> Body:
        if instance.size > max_transcode_bytes:
            raise InstanceTooLarge(
                f"instance {instance.sop_instance_uid} ({instance.size} bytes) is too large to de-identify in "
                f"{uids.transfer_syntax_name(syntax)} (limit {max_transcode_bytes} bytes); ask for it as stored")
        with blobs.open(instance.blob_key) as source:
            ds = dcmread(source)
            if syntax != instance.transfer_syntax_uid:
                try:
                    ds = transcode.transcode(ds, syntax, max_pixel_bytes=max_transcode_bytes)
                except MalformedDicom as exc:
                    raise NotAcceptable(f"instance {instance.sop_instance_uid} cannot be provided in {syntax}: "
                                        f"{exc}; ask for it as stored") from exc
        self.dataset(ds)
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        data = out.getvalue()
        return Body(iter([data]), len(data), syntax)


def _joined(blobs: BlobReader, key: str, header: bytes, start: int, end: int, trailer: bytes) -> Iterator[bytes]:
    yield header
    with blobs.open(key) as handle:
        yield from read_range(handle, start, end - start, key)
    if trailer:
        yield trailer
