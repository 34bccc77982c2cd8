"""The walk of a data set into Encoded elements, the one form both encodings render.

Two routes give the same elements: over pydicom's dataset (any header), and over the raw
elements of the quick header route (``raw_elements``), which costs a fraction. ``encode_instance``
picks the route; tests compare both over every sample file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.hooks import hooks
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR

from xdsi.dicom.parsing import ParsedInstance, RawElement
from xdsi.dicom.tags import (
    DATA_SET_TRAILING_PADDING,
    SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID,
    STUDY_INSTANCE_UID,
    UNDEFINED_LENGTH,
)
from xdsi.encoding import raw_elements
from xdsi.encoding.bulkdata import ASK_ALWAYS, BulkDataCallback, BulkDataRef, beyond_threshold
from xdsi.encoding.model import BULK_DATA_VRS, Encoded, creator_tag, keyword
from xdsi.encoding.values import converted, plain_values

# The UIDs that place an instance, as BulkDataURIs name them: Study, Series, SOP Instance.
PLACING_UIDS = (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID)
# Given the placing UIDs of an instance, the callback that turns its bulk data into URIs.
BulkDataFor = Callable[[tuple[str, str, str]], BulkDataCallback]


def encode_instance(parsed: ParsedInstance, bulk_data_for: BulkDataFor, threshold: int = ASK_ALWAYS) -> list[Encoded]:
    """One walk of a parsed header: from the quick route's raw elements when it read them and
    they hold nothing only pydicom models, else over pydicom's dataset.

    ``threshold``: a callback that keeps every value ``beyond_threshold`` rejects inline is not
    asked about those (most of a header's elements; a call each cost 0.1 ms per CT at ingest).
    """
    if parsed.elements is not None:
        encoded = _by_raw_elements(parsed.elements, bulk_data_for, threshold)
        if encoded is not None:
            return encoded
    return _by_dataset(parsed.dataset, bulk_data_for, threshold)


def _by_raw_elements(elements: list[RawElement], bulk_data_for: BulkDataFor, threshold: int) -> list[Encoded] | None:
    found = [raw_elements.uid_value(elements, tag) for tag in PLACING_UIDS]
    if None in found:
        return None
    study, series, instance = found
    return raw_elements.encode_elements(elements, bulk_data_for((study or "", series or "", instance or "")),
                                        threshold)


def _by_dataset(ds: Dataset, bulk_data_for: BulkDataFor, threshold: int) -> list[Encoded]:
    study, series, instance = (str(ds.get(keyword(tag), "")) for tag in PLACING_UIDS)
    return encode_tree(ds, bulk_data_for((study, series, instance)), threshold)


def encode_dataset(
    ds: Dataset,
    bulk_data: BulkDataCallback | None,
    path: tuple[int, ...] = (),
    ancestors: tuple[Dataset, ...] = (),
    threshold: int = ASK_ALWAYS,
) -> Iterator[Encoded]:
    """Walk ``ds`` in tag order without loading a deferred value the callback turns into a URI;
    the callback is asked only about values ``beyond_threshold`` (see ``encode_instance``)."""
    chain = (ds, *ancestors)
    for tag in sorted(ds.keys()):
        # PS3.18 F.2.2 / PS3.19 A.1.5: no Group Length; the File Meta group is not data set content;
        # PS3.10 7.2: Data Set Trailing Padding carries nothing.
        if tag.element == 0 or tag.group == 0x0002 or tag == DATA_SET_TRAILING_PADDING:
            continue
        raw = ds.get_item(tag, keep_deferred=True)
        vr = _element_vr(raw, ds, chain)
        here = (*path, int(tag))
        creator = _private_creator(ds, tag)
        if vr == "SQ":
            items = ds[tag].value
            if not items:
                yield Encoded(int(tag), vr, creator, "empty", None)
            else:
                walks = [encode_dataset(item, bulk_data, (*here, n), chain, threshold)
                         for n, item in enumerate(items, 1)]
                yield Encoded(int(tag), vr, creator, "items", walks)
            continue
        if bulk_data is not None and vr in BULK_DATA_VRS:
            length = _stored_length(raw, vr, ds)
            # A zero-length element has no Value Field to reference (PS3.18 F.2.5 keeps it empty).
            if length != 0 and beyond_threshold(int(tag), length, threshold):
                uri = bulk_data(BulkDataRef(here, vr, length))
                if uri is not None:
                    yield Encoded(int(tag), vr, creator, "uri", uri)
                    continue
        yield _inline(ds, tag, raw, vr, creator)


def encode_tree(ds: Dataset, bulk_data: BulkDataCallback | None, threshold: int = ASK_ALWAYS) -> list[Encoded]:
    """``encode_dataset`` materialized, so JSON and XML can be rendered from one walk of the dataset."""
    return _materialize(encode_dataset(ds, bulk_data, threshold=threshold))


def _materialize(walk: Iterable[Encoded]) -> list[Encoded]:
    return [
        e._replace(payload=[_materialize(item) for item in e.payload]) if e.kind == "items" else e
        for e in walk
    ]


def _element_vr(raw: DataElement | RawDataElement, ds: Dataset, chain: tuple[Dataset, ...]) -> str:
    if isinstance(raw, RawDataElement):
        found: dict[str, Any] = {}
        hooks.raw_element_vr(raw, found, encoding=None, ds=ds, **hooks.raw_element_kwargs)
        vr = found["VR"]
        # pydicom keeps an explicit UN of 64 KiB or more (PS3.5 6.2.2); the hook only sees that
        # once the value is read, which a deferred element must not be.
        if raw.VR == "UN" and raw.value is None and raw.length >= 0xFFFF and not raw.tag.is_private:
            vr = "UN"
        implicit, undefined = raw.is_implicit_VR, raw.length == UNDEFINED_LENGTH
    else:
        vr = raw.VR
        implicit, undefined = bool(ds.original_encoding[0]), raw.is_undefined_length
    if vr in AMBIGUOUS_VR:
        vr = _resolve_ambiguous(int(raw.tag), vr, chain, implicit=implicit, undefined=undefined)
    return str(vr)


def _nearest(chain: tuple[Dataset, ...], name: str) -> Any:
    for ds in chain:
        value = ds.get(name)
        if value is not None:
            return value
    return None


def _resolve_ambiguous(
    tag: int, vr: str, chain: tuple[Dataset, ...], *, implicit: bool, undefined: bool
) -> str:
    """Pick the VR PS3.5 Annex A / PS3.3 prescribe, reading only the small controlling elements."""
    if vr == "OB or OW":
        # PS3.5 A.4: encapsulated Pixel Data is OB; A.1: implicit VR little endian is always OW.
        if undefined:
            return "OB"
        if implicit or (tag & 0xFF00FFFF) == 0x60003000:
            return "OW"
        bits = _nearest(chain, "WaveformBitsAllocated" if tag >> 16 == 0x5400 else "BitsAllocated")
        return "OW" if bits is not None and bits > 8 else "OB"
    if vr == "US or OW":
        # PS3.3 C.11.1.1.1: a LUT Descriptor announcing one entry makes LUT Data a single US.
        descriptor = _nearest(chain, "LUTDescriptor")
        return "US" if descriptor and descriptor[0] == 1 else "OW"
    if vr == "US or SS or OW":
        return "OW"
    # "US or SS": PS3.3 C.7.6.3.1.4, signed when Pixel Representation is 1.
    return "SS" if _nearest(chain, "PixelRepresentation") == 1 else "US"


def _private_creator(ds: Dataset, tag: BaseTag) -> str | None:
    owner = creator_tag(tag)
    if owner is None:
        return None
    creator = ds.get(BaseTag(owner))
    if creator is None or not isinstance(creator.value, str) or not creator.value:
        return None
    return creator.value


def _stored_length(raw: DataElement | RawDataElement, vr: str, ds: Dataset) -> int | None:
    if isinstance(raw, RawDataElement):
        return None if raw.length == UNDEFINED_LENGTH else raw.length
    if raw.is_undefined_length:
        return None
    if isinstance(raw.value, bytes | bytearray):
        return len(raw.value) + (len(raw.value) & 1)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_data_element(fp, DataElement(raw.tag, vr, raw.value, already_converted=True), ds._character_set)
    return len(fp.getvalue()) - 8  # implicit VR header: tag and 32-bit length


def _inline(
    ds: Dataset, tag: BaseTag, raw: DataElement | RawDataElement, vr: str, creator: str | None
) -> Encoded:
    fast = _fast_values(raw, vr, ds) if isinstance(raw, RawDataElement) else None
    if fast is None:
        return _converted(ds, tag, raw, vr, creator)
    if fast == [None] or not fast:  # a lone empty value: VM 0, as pydicom counts it
        return Encoded(int(tag), vr, creator, "empty", None)
    return Encoded(int(tag), vr, creator, "values", fast)



def _fast_values(raw: RawDataElement, vr: str, ds: Dataset) -> list[Any] | None:
    """The Encoded values of a plain little-endian element, or None to take the pydicom path."""
    value = raw.value
    if not isinstance(value, bytes) or vr != raw.VR or not raw.is_little_endian or raw.length == UNDEFINED_LENGTH:
        return None
    return plain_values(value, vr, ds._character_set)

def _converted(
    ds: Dataset, tag: BaseTag, raw: DataElement | RawDataElement, vr: str, creator: str | None
) -> Encoded:
    little = raw.is_little_endian if isinstance(raw, RawDataElement) else ds.original_encoding[1] is not False
    return converted(ds[tag], vr, creator, little=little)  # ds[tag] loads a deferred value: it is inline

