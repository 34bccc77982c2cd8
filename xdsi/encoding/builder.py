"""Data sets rebuilt from parsed elements (either encoding): Specific Character Set fitting,
bulk data loading and private block placement (PS3.5 6.1.2, 7.8.1)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import cached_property, lru_cache
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding, python_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

from xdsi.dicom.tags import PIXEL_DATA, SEQUENCE_DELIMITATION_ITEM, SPECIFIC_CHARACTER_SET
from xdsi.encoding.bulkdata import BulkDataLoader, is_encapsulated
from xdsi.encoding.model import BINARY_VRS, SINGLE_VALUE_VRS, STRING_VRS, STRUCT_CODES, Parsed, invalid, tag_text
from xdsi.errors import InvalidRequest

_ASCII_TERMS = frozenset(("", "ISO_IR 6", "ISO 2022 IR 6"))


class _Charset:
    """The Specific Character Set in force for a data set and whether its text fits it."""

    def __init__(self, terms: list[str]) -> None:
        self.terms = terms
        # PS3.5 6.1.2: the default repertoire (no term, ISO_IR 6, ISO 2022 IR 6) is ASCII only.
        self.codecs = tuple(
            python_encoding[t] for t in terms if t in python_encoding and t not in _ASCII_TERMS
        )
        self.unfit = False

    @cached_property
    def python(self) -> list[str]:
        """Python codecs for decoding bulk text; only built when some is loaded."""
        return convert_encodings(self.terms or [""])

    def note(self, text: str) -> None:
        if not self.unfit and not text.isascii():
            self.unfit = not all(_encodable(ch, self.codecs) for ch in set(text) if not ch.isascii())


@lru_cache(maxsize=8192)
def _encodable(ch: str, codecs: tuple[str, ...]) -> bool:
    for codec in codecs:
        try:
            ch.encode(codec)
        except (UnicodeError, LookupError):
            continue
        return True
    return False


def build_dataset(attrs: Iterable[Parsed], loader: BulkDataLoader | None) -> Dataset:
    """Rebuild a Dataset. Group 0002 elements go to ``file_meta``; Group Lengths are dropped.

    Text arrives as Unicode. The (0008,0005) sent is kept when it can encode every string,
    so pydicom re-encodes on write; otherwise it becomes ISO_IR 192 so nothing is lost.
    """
    return _build(list(attrs), loader, None, top=True)


def _build(
    attrs: list[Parsed], loader: BulkDataLoader | None, inherited: _Charset | None, *, top: bool
) -> Dataset:
    ds = Dataset()
    charset_attr = next((a for a in attrs if a.tag == SPECIFIC_CHARACTER_SET and a.creator is None), None)
    # PS3.5 7.5.3: an item without its own (0008,0005) uses the enclosing data set's.
    charset = inherited if charset_attr is None and inherited is not None else _Charset(_charset_terms(charset_attr))
    meta = FileMetaDataset()
    # Creators first, so private elements placed by creator find the blocks the data set uses.
    for attr in sorted(attrs, key=lambda a: a.creator is not None):
        # PS3.18 F.2.2: no Group Length in the model (with a privateCreator, gggg0000 is gggg,xx00).
        if attr.tag & 0xFFFF == 0 and attr.creator is None:
            continue
        if attr.tag >> 16 == 0x0002:
            if not top:
                raise invalid(attr.where, "File Meta Information (0002,xxxx) inside a sequence item")
            target: Dataset = meta
            tag = attr.tag
        else:
            target = ds
            tag = attr.tag if attr.creator is None else _place_private(ds, attr)
        if tag in target:
            raise invalid(attr.where, f"duplicate attribute {tag_text(tag)}")
        target[tag] = _element(attr, tag, loader, charset)
    if charset is not inherited and charset.unfit:
        ds.add(DataElement(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192"))
    # The raw DS and IS values are explicit VR little endian in this character set (ASCII in any):
    # said so, dcmwrite writes them as they are instead of first converting every one of them.
    own = ds.get(SPECIFIC_CHARACTER_SET)
    ds.set_original_encoding(False, True, convert_encodings(own.value) if own and own.value else default_encoding)
    if len(meta):
        ds.file_meta = meta
    return ds


def _charset_terms(attr: Parsed | None) -> list[str]:
    if attr is None or attr.kind != "values":
        return []
    if attr.vr != "CS":
        raise invalid(attr.where, "Specific Character Set must have VR CS")
    return [v or "" for v in attr.payload]


def _place_private(ds: Dataset, attr: Parsed) -> int:
    """PS3.5 7.8.1: reuse the block the creator already has, else the first free block >= 0x10."""
    group, low = attr.tag >> 16, attr.tag & 0xFF
    # PS3.5 7.8: odd groups are private, except 0001, 0003, 0005, 0007 and FFFF.
    if group % 2 == 0 or group <= 0x0007 or group == 0xFFFF:
        raise invalid(attr.where, f"privateCreator on a non-private tag {tag_text(attr.tag)}")
    wanted = attr.creator.rstrip(" ") if attr.creator else ""
    free = None
    for block in range(0x10, 0x100):
        existing = ds.get((group << 16) | block)
        if existing is None:
            free = block if free is None else free
        elif str(existing.value).rstrip(" ") == wanted:
            return (group << 16) | (block << 8) | low
    if free is None:
        raise invalid(attr.where, f"no free private block in group {group:04X}")
    ds.add(DataElement((group << 16) | free, "LO", attr.creator))
    return (group << 16) | (free << 8) | low


def _element(
    attr: Parsed, tag: int, loader: BulkDataLoader | None, charset: _Charset
) -> DataElement | RawDataElement:
    vr = attr.vr
    attr = compact(attr)
    if attr.kind == "field":
        return RawDataElement(BaseTag(tag), vr, len(attr.payload), attr.payload, 0, False, True)
    if attr.kind == "items":
        return _new(tag, vr, [_build(item, loader, charset, top=False) for item in attr.payload])
    if attr.kind == "values":
        return _from_values(attr, tag, charset)
    data = b"" if attr.kind == "empty" else attr.payload if attr.kind == "inline" else _load(attr, loader)
    if not data:
        return _new(tag, vr, [] if vr == "SQ" else b"" if vr in BINARY_VRS else None)
    if vr in BINARY_VRS:
        # PS3.5 A.4 says OB, but files with encapsulated OW Pixel Data exist and must survive.
        undefined = tag == PIXEL_DATA and is_encapsulated(data)
        if undefined and data.endswith(SEQUENCE_DELIMITATION_ITEM):
            data = data[: -len(SEQUENCE_DELIMITATION_ITEM)]
        return _new(tag, vr, data, undefined=undefined)
    return _from_bytes(attr, tag, data, charset)


def _new(tag: int, vr: str, value: Any, *, undefined: bool = False) -> DataElement:
    # pydicom turns UN of a known public tag into the dictionary VR; keep what the sender said.
    elem = DataElement(
        tag, "OB" if vr == "UN" else vr, value, is_undefined_length=undefined, validation_mode=config.IGNORE
    )
    elem.VR = vr
    return elem


def _from_values(attr: Parsed, tag: int, charset: _Charset) -> DataElement | RawDataElement:
    vr, values = attr.vr, attr.payload
    if vr in SINGLE_VALUE_VRS and len(values) > 1:
        raise invalid(attr.where, f"VR {vr} has a single value, got {len(values)}")
    if vr in STRING_VRS or vr in ("PN", "DS", "IS"):
        values = ["" if v is None else v for v in values]
        if vr not in ("DS", "IS"):  # DS and IS text is ASCII here unless compact kept it as values
            for text in values:
                charset.note(text)
    value = values[0] if len(values) == 1 else values
    try:
        return _new(tag, vr, value)
    except (ValueError, OverflowError) as exc:
        if vr not in ("DS", "IS"):
            raise invalid(attr.where, f"invalid {vr} value: {exc}") from exc
    # A DS/IS text that is not a number is kept verbatim, as pydicom does when reading a file:
    # the archive stores what it was sent.
    return DataElement(tag, vr, value, already_converted=True, validation_mode=config.IGNORE)


def compact(attr: Parsed) -> Parsed:
    """A DS or IS element read as values, held from now on as the Value Field it will be written
    as (``field``): the text received, as pydicom writes it from the DSfloat and IS objects it
    would otherwise make. Those cost about 230 bytes a value, eleven times the XML that carried
    it (contour data runs to millions of values, bench/stow_metadata.py); the text costs its
    length. Every element is built through it; readers of large data sets call it as each element
    is read, so what is kept until the data set is built costs no more. Text that is not ASCII
    stays values, which pydicom's own path keeps and writes."""
    if attr.kind != "values" or attr.vr not in ("DS", "IS"):
        return attr
    text = "\\".join("" if v is None else v for v in attr.payload)
    if not text.isascii():
        return attr
    data = text.encode("ascii")
    # PS3.5 7.1.1: an even length, DS and IS padded with a trailing space (6.2).
    return attr._replace(kind="field", payload=data + b" " * (len(data) & 1))


def _load(attr: Parsed, loader: BulkDataLoader | None) -> bytes:
    if loader is None:
        raise invalid(attr.where, f"BulkDataURI {attr.payload!r} given but no bulk data was supplied")
    try:
        data = loader(attr.payload, attr.vr)
    except InvalidRequest as exc:
        raise invalid(attr.where, str(exc)) from exc
    except LookupError as exc:
        raise invalid(attr.where, f"unknown BulkDataURI {attr.payload!r}") from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise invalid(attr.where, f"bulk data for {attr.payload!r} is not bytes")
    return bytes(data)


def _from_bytes(attr: Parsed, tag: int, data: bytes, charset: _Charset) -> DataElement:
    """Value Field bytes (little endian, text in the data set's character set) for a non-binary VR."""
    code = STRUCT_CODES.get(attr.vr)
    if code is not None and len(data) % struct.calcsize(code):
        raise invalid(attr.where, f"bulk data of {len(data)} bytes is not a whole number of {attr.vr} values")
    raw = RawDataElement(BaseTag(tag), attr.vr, len(data), data, 0, False, True)
    # Text decoded from the declared character set fits it by construction: nothing to note.
    try:
        return convert_raw_data_element(raw, encoding=charset.python, ds=None)
    except (ValueError, OverflowError) as exc:
        raise invalid(attr.where, f"bulk data is not a valid {attr.vr} value: {exc}") from exc

