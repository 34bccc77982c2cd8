"""Encoded elements straight from the raw elements of the quick header route (``dicom.parsing``).

Building pydicom's dataset and walking it costs most of an ingest's CPU; these raw elements
give the same walk for a fraction. The result must equal ``walk.encode_tree`` over
pydicom's dataset of the same file (tests compare both over every test file), so values go
through the same decoder, and what that decoder leaves to pydicom goes through pydicom's own
converter. Whatever this walk does not model yields None, and the caller takes the dataset
route.
"""

from __future__ import annotations

from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag

from xdsi.dicom.parsing import RawElement
from xdsi.dicom.tags import DATA_SET_TRAILING_PADDING, SPECIFIC_CHARACTER_SET
from xdsi.encoding.bulkdata import ASK_ALWAYS, BulkDataCallback, BulkDataRef, beyond_threshold
from xdsi.encoding.model import BINARY_VRS, BULK_DATA_VRS, Encoded, creator_tag
from xdsi.encoding.values import converted, plain_values

# The elements of one series repeat byte for byte from instance to instance (patient, study,
# equipment, acquisition): an element already decoded under the same character sets and private
# creator is taken as it was, which halves the parse of a slice. Only short values are kept
# (Encoded values are never changed once made), and the table starts over once full.
_KEPT_VALUE_BYTES = 256
_KEPT_ELEMENTS = 8192
_kept: dict[tuple[Any, ...], Encoded] = {}
_kept_ids: set[int] = set()


def is_kept(element: Encoded) -> bool:
    """Whether the walk keeps ``element`` to hand back again, so that its serialized form can be kept too."""
    return id(element) in _kept_ids


class _Unmodelled(Exception):
    """Something only the dataset route handles exactly."""


def encode_elements(
    elements: list[RawElement], bulk_data: BulkDataCallback, threshold: int = ASK_ALWAYS
) -> list[Encoded] | None:
    """``encode_tree`` of the data set these elements make, or None to take the dataset route."""
    try:
        return _encode(elements, bulk_data, threshold, (), _charsets(elements))
    except _Unmodelled:
        return None


def uid_value(elements: list[RawElement], tag: int) -> str | None:
    """A top-level UID as pydicom's ``str(ds.get(...,""))`` gives it; None if not a single plain value."""
    element = next((e for e in elements if e.tag == tag), None)
    if element is None:
        return ""
    if element.vr != "UI" or element.value is None or b"\\" in element.value:
        return None
    values = plain_values(element.value, "UI", default_encoding)
    return (values[0] or "") if values else ""


def _charsets(elements: list[RawElement]) -> str | list[str]:
    """What pydicom's ``Dataset._character_set`` is for the top-level data set."""
    element = next((e for e in elements if e.tag == SPECIFIC_CHARACTER_SET), None)
    if element is None:
        return default_encoding
    # pydicom decodes Specific Character Set itself with the default encoding.
    return convert_encodings(_convert(element, default_encoding).value)


def _encode(
    elements: list[RawElement], bulk_data: BulkDataCallback, threshold: int, path: tuple[int, ...],
    charsets: str | list[str],
) -> list[Encoded]:
    if path and any(e.tag == SPECIFIC_CHARACTER_SET for e in elements):
        # pydicom decodes such an item partly with the enclosing set's character set.
        raise _Unmodelled
    charsets_key = charsets if isinstance(charsets, str) else tuple(charsets)
    by_tag: dict[int, RawElement] | None = None
    encoded: list[Encoded] = []
    creators: dict[int, str | None] = {}
    for element in elements:
        tag = element.tag
        # As encode_dataset: no Group Length, no File Meta group, no Data Set Trailing Padding.
        if tag & 0xFFFF == 0 or tag >> 16 == 0x0002 or tag == DATA_SET_TRAILING_PADDING:
            continue
        creator = None
        if tag >> 16 & 1:  # an odd group: maybe private (PS3.5 7.8.1)
            owner = creator_tag(tag)
            if owner is not None:
                if owner not in creators:
                    by_tag = by_tag or {e.tag: e for e in elements}
                    creators[owner] = _creator(by_tag.get(owner), charsets)
                creator = creators[owner]
        vr = element.vr
        if vr == "SQ":
            if not element.items:
                encoded.append(Encoded(tag, vr, creator, "empty", None))
            else:
                walks = [_encode(item, bulk_data, threshold, (*path, tag, n), charsets)
                         for n, item in enumerate(element.items, 1)]
                encoded.append(Encoded(tag, vr, creator, "items", walks))
            continue
        if vr in BULK_DATA_VRS and element.length != 0 and beyond_threshold(tag, element.length, threshold):
            uri = bulk_data(BulkDataRef((*path, tag), vr, element.length))
            if uri is not None:
                encoded.append(Encoded(tag, vr, creator, "uri", uri))
                continue
        value = element.value
        if value is not None and len(value) <= _KEPT_VALUE_BYTES:
            key = (tag, vr, value, creator, charsets_key)
            kept = _kept.get(key)
            encoded.append(kept if kept is not None else _keep(key, _inline(element, creator, charsets)))
        else:
            encoded.append(_inline(element, creator, charsets))
    return encoded


def _creator(element: RawElement | None, charsets: str | list[str]) -> str | None:
    if element is None or element.value is None:
        return None
    # pydicom's conversion only when the plain decoder cannot: it cost 8 us a creator, and a
    # vendor's header names a dozen (PS3.5 7.8.1).
    values = plain_values(element.value, element.vr, charsets)
    value = _convert(element, charsets).value if values is None else values[0] if len(values) == 1 else None
    return value if isinstance(value, str) and value else None


def _keep(key: tuple[Any, ...], element: Encoded) -> Encoded:
    """``element``, kept under ``key`` to be handed back the next time."""
    if len(_kept) >= _KEPT_ELEMENTS:
        _kept.clear()
        _kept_ids.clear()
    _kept[key] = element
    _kept_ids.add(id(element))
    return element


def _inline(element: RawElement, creator: str | None, charsets: str | list[str]) -> Encoded:
    if element.value is None:
        raise _Unmodelled  # Pixel Data left unread that no bulk data reference took
    if element.vr in BINARY_VRS and element.value:
        # A defined-length little-endian Value Field is the InlineBinary as it is (PS3.18 F.2.7).
        return Encoded(element.tag, element.vr, creator, "inline", element.value)
    values = plain_values(element.value, element.vr, charsets)
    if values is None:
        return converted(_convert(element, charsets), element.vr, creator, little=True)
    if not values or values == [None]:
        return Encoded(element.tag, element.vr, creator, "empty", None)
    return Encoded(element.tag, element.vr, creator, "values", values)


def _convert(element: RawElement, charsets: Any) -> DataElement:
    raw = RawDataElement(BaseTag(element.tag), element.vr, element.length or 0, element.value, 0, False, True)
    try:
        return convert_raw_data_element(raw, encoding=charsets)
    except Exception as exc:  # the dataset route words the refusal
        raise _Unmodelled from exc
