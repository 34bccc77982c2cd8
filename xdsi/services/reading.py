"""The parse work of one spooled instance: index keys, metadata, frames, or why it is refused.

Module-level and free of archive state, so that the store's parser processes can run it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xdsi.dicom import uids
from xdsi.dicom.attributes import IndexKeys, index_keys
from xdsi.dicom.frames import FrameTable, extended_offsets, frame_table
from xdsi.dicom.parsing import Limits, ParsedInstance, open_instance
from xdsi.errors import InstanceRejected, MalformedDicom, StudyMismatch, UnsupportedSOPClass
from xdsi.services.metadata import EncodedAttributes, encode_parsed, fragment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadInstance:
    """What parsing a spooled file yields: all that indexing needs, small enough to pass between processes."""

    keys: IndexKeys
    transfer_syntax: str
    pixel_offset: int | None
    pixel_length: int | None
    frame_table: bytes | None
    metadata_json: bytes


def read_instance(path: str, limits: Limits, bulk_data_threshold: int, study_uid: str | None) -> ReadInstance:
    """Parse a spooled file within ``limits``: its index keys, frames and metadata, or why it is refused.

    """
    with open_instance(Path(path), limits) as parsed, malformed_on_error():
        if parsed.meta.get("MediaStorageSOPClassUID") == uids.MEDIA_STORAGE_DIRECTORY:
            # Named plainly: "StudyInstanceUID is missing" would send the user hunting.
            raise UnsupportedSOPClass(
                "a DICOMDIR (Media Storage Directory) lists files, it is not an instance to store",
                sop_class_uid=uids.MEDIA_STORAGE_DIRECTORY,
            )
        elements = encode_parsed(parsed, bulk_data_threshold)
        keys = index_keys(EncodedAttributes(elements))
        instance = keys.instance
        if not uids.is_storage_sop_class(instance.sop_class_uid):
            raise UnsupportedSOPClass(
                f"SOP Class {instance.sop_class_uid} is not a storage SOP class this archive accepts",
                sop_class_uid=instance.sop_class_uid,
                sop_instance_uid=instance.sop_instance_uid,
            )
        if study_uid is not None and keys.study.study_uid != study_uid:
            raise StudyMismatch(
                f"Study Instance UID {keys.study.study_uid} differs from the study {study_uid} of the request",
                sop_class_uid=instance.sop_class_uid,
                sop_instance_uid=instance.sop_instance_uid,
            )
        metadata_json = fragment(elements)
        pixel = parsed.pixel_data
        # Offsets into an inflated stream are not file offsets: frames there are found by inflating.
        located = pixel is not None and not uids.is_deflated(parsed.transfer_syntax)
        table = frame_table_of(parsed, keys) if located else None
    return ReadInstance(
        keys=keys,
        transfer_syntax=parsed.transfer_syntax,
        pixel_offset=pixel.value_offset if located and pixel else None,
        pixel_length=pixel.length if located and pixel else None,
        frame_table=table.to_bytes() if table is not None else None,
        metadata_json=metadata_json,
    )


def frame_table_of(parsed: ParsedInstance, keys: IndexKeys) -> FrameTable | None:
    """Frame byte ranges for images (None for other objects), found once at ingest.

    Pixel data whose layout contradicts its own attributes is still stored as received; its
    frames are then refused when asked for, with the reason. An Extended Offset Table that
    contradicts the fragments is left out: the items still locate the frames, as they did before.
    """
    instance = keys.instance
    if parsed.pixel_data is None or not (instance.rows and instance.columns and instance.bits_allocated):
        return None
    for extended in dict.fromkeys((extended_offsets(parsed), None)):
        try:
            return frame_table(
                parsed.stream,
                parsed.pixel_data,
                rows=instance.rows,
                columns=instance.columns,
                samples_per_pixel=instance.samples_per_pixel or 1,
                bits_allocated=instance.bits_allocated,
                number_of_frames=instance.number_of_frames or 1,
                transfer_syntax=parsed.transfer_syntax,
                photometric_interpretation=instance.photometric_interpretation,
                extended_offsets=extended,
            )
        except MalformedDicom as exc:
            how = "through its Extended Offset Table" if extended else "indexed"
            log.info("instance %s: frames not %s: %s", instance.sop_instance_uid, how, exc)
    return None

@contextlib.contextmanager
def malformed_on_error() -> Iterator[None]:
    """pydicom raises many exception types while converting odd values; name them all malformed."""
    try:
        yield
    except InstanceRejected:
        raise
    except Exception as exc:
        raise MalformedDicom(f"dataset cannot be read: {type(exc).__name__}: {exc}") from exc
