"""WADO-URI ``anonymize=yes`` (PS3.18 9.1.2.1) and WADO-WS ``Anonymize`` (PS3.18 2017b 6.4): instances,
their metadata and the headers renderings read, de-identified on the fly by the PS3.15 Annex E Basic
Application Level Confidentiality Profile (``dicom/confidentiality``); the stored files are never touched.

One ``Anonymizer`` serves one request: its random key maps every UID the same way in every instance
of the answer, so references between them (Referenced SOP Instance UID, Frame of Reference, the
study and series) stay consistent, while two requests give unrelated UIDs.

The header is rewritten in memory; the pixel data is streamed from the stored file as it lies
(its element header and value, located at ingest), so a large instance never sits in memory. A
Deflated file, an instance asked for in another transfer syntax, or one without pixel data is
read whole instead, within ``max_transcode_bytes``. Pixels are never changed, so an image whose
Burned In Annotation is YES is refused rather than sent with the text in its pixels.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset

from xdsi.dicom import confidentiality, transcode, uids
from xdsi.dicom.confidentiality import UIDMap, apply_profile, deidentify
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.dicom.tags import PIXEL_DATA_TAGS
from xdsi.encoding import native_xml
from xdsi.errors import AnonymizationUnavailable, InstanceTooLarge, MalformedDicom, NotAcceptable
from xdsi.repository.blobs import BlobReader, BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services import metadata
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
        spliced = self.spliced(blobs, instance, syntax, limits)
        if spliced is not None:
            return Body(spliced.chunks(files or blobs), spliced.length, instance.transfer_syntax_uid)
        return self._whole(files or blobs, instance, syntax or instance.transfer_syntax_uid, max_transcode_bytes)

    def spliced(self, blobs: BlobStore, instance: StoredInstance, syntax: str | None, limits: Limits) -> Spliced | None:
        """The de-identified file as its rewritten header around the stored pixel data, when it can be
        sent so (asked as stored, not Deflated, with pixel data); None when it must be rewritten whole."""
        stored = instance.transfer_syntax_uid
        if (syntax in (None, stored) and instance.pixel_data_offset is not None
                and not uids.is_deflated(stored)):
            return self._spliced(blobs, instance, limits)
        return None

    def metadata_xml(self, blobs: BlobStore, instance: StoredInstance, limits: Limits, bulk_data_threshold: int
                     ) -> bytes:
        """The de-identified data set as a PS3.19 Native DICOM Model (no XML declaration).

        A BulkDataURI names the stored, identified instance by its original UIDs: a de-identified
        model cannot carry one. Values up to ``bulk_data_threshold`` bytes are inlined (InlineBinary)
        and larger ones, Pixel Data among them, are left out (``metadata.without_bulk_data``).
        """
        with open_instance(blobs.path(instance.blob_key), limits) as parsed:
            ds = parsed.dataset
            for tag in PIXEL_DATA_TAGS:
                if tag in ds:
                    del ds[tag]  # by tag: the pixel data's value stays unread
            self.dataset(ds)
            elements = metadata.without_bulk_data(ds, bulk_data_threshold, parsed.transfer_syntax)
        return native_xml.dumps_encoded(elements, xml_declaration=False)

    def _spliced(self, blobs: BlobStore, instance: StoredInstance, limits: Limits) -> Spliced:
        """Rewritten header, then the stored Pixel Data element's bytes, then any element after it."""
        with open_instance(blobs.path(instance.blob_key), limits) as parsed:
            pixel = parsed.pixel_data
            if pixel is None:
                raise MalformedDicom(f"stored instance {instance.sop_instance_uid} has lost its pixel data")
            ds = parsed.dataset
            check_pixels(ds, instance)
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
        return Spliced(head.getvalue(), instance.blob_key, start, pixel.end, tail.getvalue())

    def _whole(self, blobs: BlobReader, instance: StoredInstance, syntax: str, max_transcode_bytes: int) -> Body:
        if instance.size > max_transcode_bytes:
            raise InstanceTooLarge(
                f"instance {instance.sop_instance_uid} ({instance.size} bytes) is too large to de-identify in "
                f"{uids.transfer_syntax_name(syntax)} (limit {max_transcode_bytes} bytes); ask for it as stored")
        with blobs.open(instance.blob_key) as source:
            ds = dcmread(source)
            check_pixels(ds, instance)
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


def check_pixels(ds: Dataset, instance: StoredInstance) -> None:
    """AnonymizationUnavailable when the pixels show identifying text: PS3.15 E.1.1 leaves burned-in
    annotation to the Clean Pixel Data Option, which xdsi does not apply."""
    if confidentiality.burned_in(ds):
        raise AnonymizationUnavailable(
            f"instance {instance.sop_instance_uid} has Burned In Annotation YES: its pixels carry identifying "
            f"text that the Basic Profile does not remove, so no de-identified copy of them is made")


@dataclass(frozen=True)
class Spliced:
    """A de-identified file as three pieces: its rewritten header, a byte range of the stored file (the
    Pixel Data element, header and value), and the rewritten elements after it. Small, and read again
    each time ``chunks`` is called, so an answer can go over it twice (a signature, then the wire)."""

    header: bytes
    key: str
    start: int
    end: int
    trailer: bytes

    @property
    def length(self) -> int:
        return len(self.header) + (self.end - self.start) + len(self.trailer)

    def chunks(self, blobs: BlobReader) -> Iterator[bytes]:
        yield self.header
        with blobs.open(self.key) as handle:
            yield from read_range(handle, self.start, self.end - self.start, self.key)
        if self.trailer:
            yield self.trailer
