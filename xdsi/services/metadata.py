"""Instance metadata without bulk data, serialized once at ingest as DICOM JSON.

PS3.19 XML is rendered from that JSON when asked for (``xml_of``): storing it too doubled the
bytes ingest wrote to the index and cost a fifth of its parse time, for a form few clients use.

Bulk data becomes a BulkDataURI relative to the DICOMweb root (``/studies/…/bulkdata/…``).
A response makes it absolute with one bytes replace of the attribute's opening text:
``"BulkDataURI":"`` in JSON and ``<BulkData uri="`` in XML can only occur as markup, since
the serializers escape quotes and angle brackets inside values.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from xdsi.dicom.attributes import Attributes, as_integer
from xdsi.dicom.parsing import ParsedInstance
from xdsi.dicom.tags import AVAILABLE_TRANSFER_SYNTAX_UID
from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.encoding import dicom_json, native_xml
from xdsi.encoding.bulkdata import BulkDataCallback, BulkDataRef, beyond_threshold
from xdsi.encoding.model import Encoded
from xdsi.encoding.values import join_person_name
from xdsi.encoding.walk import BulkDataFor, encode_instance, encode_tree

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


def encode_parsed(parsed: ParsedInstance, threshold: int) -> list[Encoded]:
    """One walk of the header, with the Available Transfer Syntax UID of the stored file."""
    return _with_available_syntax(encode_instance(parsed, _bulk_data(threshold), threshold), parsed.transfer_syntax)


def _bulk_data(threshold: int) -> BulkDataFor:
    """Bulk values become BulkDataURIs relative to the DICOMweb root."""

    def bulk_data_for(placing: tuple[str, str, str]) -> BulkDataCallback:
        base = instance_path(*placing) + "/bulkdata/"

        def bulk(ref: BulkDataRef) -> str | None:
            return base + bulk_data_path(ref.path) if _is_bulk(ref, threshold) else None

        return bulk

    return bulk_data_for


def _is_bulk(ref: BulkDataRef, threshold: int) -> bool:
    return beyond_threshold(ref.path[-1], ref.length, threshold)


_LEFT_OUT = "left out"  # the walk's placeholder URI for a value then dropped


def without_bulk_data(ds: Dataset, threshold: int, transfer_syntax_uid: str) -> list[Encoded]:
    """The walk of ``ds`` with the values ``encode_parsed`` would make BulkDataURIs left out, the
    smaller ones inline: for a data set no URI may point into (a de-identified copy, whose stored
    original the URI would name by its real UIDs)."""
    walked = encode_tree(ds, lambda ref: _LEFT_OUT if _is_bulk(ref, threshold) else None, threshold)
    return _with_available_syntax(_without_uris(walked), transfer_syntax_uid)


def _without_uris(elements: list[Encoded]) -> list[Encoded]:
    return [e._replace(payload=[_without_uris(item) for item in e.payload]) if e.kind == "items" else e
            for e in elements if e.kind != "uri"]


def _with_available_syntax(elements: list[Encoded], transfer_syntax_uid: str) -> list[Encoded]:
    """PS3.18 10.6.3 / F.2: Available Transfer Syntax UID tells a viewer what frames are stored as."""
    entry = Encoded(AVAILABLE_TRANSFER_SYNTAX_UID, "UI", None, "values",
                    [transfer_syntax_uid or EXPLICIT_VR_LITTLE_ENDIAN])
    at = bisect.bisect_left([e.tag for e in elements], AVAILABLE_TRANSFER_SYNTAX_UID)
    replaced = at < len(elements) and elements[at].tag == AVAILABLE_TRANSFER_SYNTAX_UID
    return [*elements[:at], entry, *elements[at + replaced:]]


def fragment(elements: list[Encoded]) -> bytes:
    """The DICOM JSON of one instance, for the metadata cache."""
    return dicom_json.dumps_encoded(elements)


def xml_of(fragment: bytes) -> bytes:
    """The PS3.19 XML of a cached fragment (no declaration); the same bytes as rendering the
    instance's own walk, since JSON keeps every value and the private creators are elements."""
    return native_xml.dumps_encoded(dicom_json.encoded_from_json(fragment), xml_declaration=False)


class EncodedAttributes:
    """``dicom.attributes.Attributes`` over an encoded walk, so index keys cost no second conversion."""

    def __init__(self, elements: Iterable[Encoded]) -> None:
        self.by_tag = {e.tag: e for e in elements}

    def _element(self, keyword: str) -> Encoded | None:
        return self.by_tag.get(_tag(keyword))

    def text(self, keyword: str) -> str:
        element = self._element(keyword)
        if element is None or element.kind != "values":
            return ""
        values = [_plain(element.vr, v) for v in element.payload]
        return values[0].strip() if len(values) == 1 else "\\".join(values)

    def integer(self, keyword: str) -> int | None:
        element = self._element(keyword)
        if element is None or element.kind != "values" or not element.payload:
            return None
        return as_integer(element.payload[0])

    def items(self, keyword: str) -> list[Attributes]:
        element = self._element(keyword)
        if element is None or element.kind != "items":
            return []
        return [EncodedAttributes(item) for item in element.payload]


@lru_cache(maxsize=256)
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def _plain(vr: str, value: Any) -> str:
    if value is None:
        return ""
    if vr == "PN":
        return join_person_name(value) or ""
    return str(value)


def absolute_json_part(joined: bytes, root: str) -> bytes:
    """Whole fragments (and the separators between them) with BulkDataURIs made absolute under
    ``root``; a fragment is never cut, so no opening is split between two parts."""
    return joined.replace(JSON_URI_OPENING, JSON_URI_OPENING + root.encode())


def absolute_xml(fragment: bytes, root: str) -> bytes:
    return fragment.replace(XML_URI_OPENING, XML_URI_OPENING + root.encode())
