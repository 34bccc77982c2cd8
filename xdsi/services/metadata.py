"""Instance metadata without bulk data, serialized once at ingest as DICOM JSON and PS3.19 XML.

Bulk data becomes a BulkDataURI relative to the DICOMweb root (``/studies/…/bulkdata/…``).
A response makes it absolute with one bytes replace of the attribute's opening text:
``"BulkDataURI":"`` in JSON and ``<BulkData uri="`` in XML can only occur as markup, since
the serializers escape quotes and angle brackets inside values.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.encoding import dicom_json, native_xml
from xdsi.encoding.bulkdata import BulkDataRef, encode_tree

PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
JSON_URI_OPENING = b'"BulkDataURI":"'
XML_URI_OPENING = b'<BulkData uri="'


def instance_path(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """The instance resource path relative to the DICOMweb root (PS3.18 10.4.1)."""
    return f"/studies/{study_uid}/series/{series_uid}/instances/{sop_instance_uid}"


def bulk_data_path(path: tuple[int, ...]) -> str:
    """'7FE00010' or '00540016/1/00181072': tags as 8 hex digits, items 1-based."""
    return "/".join(f"{part:08X}" if index % 2 == 0 else str(part) for index, part in enumerate(path))


def parse_bulk_data_path(text: str) -> tuple[int, ...] | None:
    """The inverse of ``bulk_data_path``; None if ``text`` is not one."""
    parts = text.split("/")
    if len(parts) % 2 == 0:
        return None
    result = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            if len(part) != 8 or not all(c in "0123456789ABCDEFabcdef" for c in part):
                return None
            result.append(int(part, 16))
        else:
            if not part.isdigit() or part.startswith("0") or len(part) > 9:
                return None
            result.append(int(part))
    return tuple(result)


def instance_fragments(
    ds: Dataset,
    study_uid: str,
    series_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    threshold: int,
) -> tuple[bytes, bytes]:
    """(JSON, XML) of one instance, bulk values as relative BulkDataURIs."""
    base = instance_path(study_uid, series_uid, sop_instance_uid) + "/bulkdata/"

    def bulk(ref: BulkDataRef) -> str | None:
        if ref.path[-1] in PIXEL_DATA_TAGS or ref.length is None or ref.length > threshold:
            return base + bulk_data_path(ref.path)
        return None

    # PS3.18 10.6.3 / F.2: Available Transfer Syntax UID tells a viewer what frames are stored as.
    ds.AvailableTransferSyntaxUID = transfer_syntax_uid or EXPLICIT_VR_LITTLE_ENDIAN
    elements = encode_tree(ds, bulk)
    return dicom_json.dumps_encoded(elements), native_xml.dumps_encoded(elements, xml_declaration=False)


def absolute_json(fragments: Iterable[bytes], root: str) -> bytes:
    """A JSON array of fragments with BulkDataURIs made absolute under ``root``."""
    opening = JSON_URI_OPENING + root.encode()
    return b"[" + b",".join(fragments).replace(JSON_URI_OPENING, opening) + b"]"


def absolute_xml(fragment: bytes, root: str) -> bytes:
    return fragment.replace(XML_URI_OPENING, XML_URI_OPENING + root.encode())
