"""Bulk data references and the dataset model shared by the PS3.18 JSON and PS3.19 XML encoders."""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property, lru_cache
from typing import Any, Literal, NamedTuple

from pydicom import config
from pydicom.charset import convert_encodings, python_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.hooks import hooks
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR, PersonName

from xdsi.dicom.byteorder import WORD_WIDTH, swap_bytes
from xdsi.errors import InvalidRequest


class BulkDataRef(NamedTuple):
    """Where a bulk data candidate sits, so a callback can decide and build a URI without its value."""

    path: tuple[int, ...]
    vr: str
    length: int | None


BulkDataCallback = Callable[[BulkDataRef], str | None]
BulkDataLoader = Callable[[str, str], bytes]

# PS3.5 6.2: the VRs a data set may carry (ambiguous dictionary VRs are resolved before output).
ALL_VRS = frozenset(
    ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"]
)
# PS3.18 F.2.2: VRs whose Value Field may be replaced by a BulkDataURI.
BULK_DATA_VRS = frozenset(["DS", "FL", "FD", "IS", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "SL", "SS", "ST", "SV", "UC", "UL", "UN", "US", "UT", "UV"])
# PS3.18 F.2.2: VRs carried as InlineBinary (base64 of the whole Value Field) rather than Value.
BINARY_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])
# Values that are plain character strings after Specific Character Set decoding.
STRING_VRS = frozenset(["AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"])
# PS3.5 6.2: VM is always 1 for these; a backslash is part of the text.
SINGLE_VALUE_VRS = frozenset(["LT", "ST", "UR", "UT"])
FLOAT_VRS = frozenset(("FL", "FD"))
INT_RANGES = {
    "SS": (-(2**15), 2**15 - 1),
    "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UL": (0, 2**32 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
}
_STRUCT_CODES = {"FL": "f", "FD": "d", "SS": "h", "US": "H", "SL": "l", "UL": "L", "SV": "q", "UV": "Q"}
# PS3.5 7.3: OW, OF/OL and OD/OV values are byte-swapped by word, long and very long.

# Sequence nesting accepted from clients; real IODs nest a handful of levels.
MAX_DEPTH = 64

_PIXEL_DATA = 0x7FE00010
_TRAILING_PADDING = 0xFFFCFFFC
_CHARSET_TAG = 0x00080005
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Spellings for the non-finite FL/FD values JSON numbers cannot carry (JavaScript's, for both models).
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Kind = Literal["empty", "values", "items", "uri", "inline"]


def invalid(where: str, message: str) -> InvalidRequest:
    """Build the error every decoder raises, prefixed by the path of the offending element."""
    return InvalidRequest(f"{where}: {message}" if where else message)


def tag_text(tag: int) -> str:
    """Eight uppercase hex digits: the spelling of a tag in both models and in AT values."""
    return f"{tag:08X}"


@lru_cache(maxsize=4096)
def keyword(tag: int) -> str:
    """Dictionary keyword of a public tag, '' when the host does not know it (PS3.19 A.1.5)."""
    return keyword_for_tag(tag)


# --------------------------------------------------------------------------------------------
# Encoding: dataset -> neutral elements both renderers walk


class Encoded(NamedTuple):
    """One element ready for rendering.

    ``payload`` by ``kind``: ``empty`` None; ``values`` a list whose entries depend on the VR
    (see ``_value``); ``items`` one iterator of Encoded per sequence item; ``uri`` the
    BulkDataURI; ``inline`` the little-endian Value Field bytes.
    """

    tag: int
    vr: str
    creator: str | None
    kind: Kind
    payload: Any


def encode_dataset(
    ds: Dataset,
    bulk_data: BulkDataCallback | None,
    path: tuple[int, ...] = (),
    ancestors: tuple[Dataset, ...] = (),
) -> Iterator[Encoded]:
    """Walk ``ds`` in tag order without loading a deferred value the callback turns into a URI."""
    chain = (ds, *ancestors)
    for tag in sorted(ds.keys()):
        # PS3.18 F.2.2 / PS3.19 A.1.5: no Group Length; the File Meta group is not data set content;
        # PS3.10 7.2: Data Set Trailing Padding carries nothing.
        if tag.element == 0 or tag.group == 0x0002 or tag == _TRAILING_PADDING:
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
                walks = [encode_dataset(item, bulk_data, (*here, n), chain) for n, item in enumerate(items, 1)]
                yield Encoded(int(tag), vr, creator, "items", walks)
            continue
        if bulk_data is not None and vr in BULK_DATA_VRS:
            length = _stored_length(raw, vr, ds)
            # A zero-length element has no Value Field to reference (PS3.18 F.2.5 keeps it empty).
            if length != 0:
                uri = bulk_data(BulkDataRef(here, vr, length))
                if uri is not None:
                    yield Encoded(int(tag), vr, creator, "uri", uri)
                    continue
        yield _inline(ds, tag, raw, vr, creator)


def encode_tree(ds: Dataset, bulk_data: BulkDataCallback | None) -> list[Encoded]:
    """``encode_dataset`` materialized, so JSON and XML can be rendered from one walk of the dataset."""
    return _materialize(encode_dataset(ds, bulk_data))


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
        implicit, undefined = raw.is_implicit_VR, raw.length == _UNDEFINED_LENGTH
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


def creator_tag(tag: int) -> int | None:
    """PS3.5 7.8.1: the Private Creator element (gggg,00xx) that private element (gggg,xxee),
    xx >= 0x10, belongs to; None for any other tag."""
    if not tag >> 16 & 1 or tag & 0xFFFF < 0x1000:
        return None
    return (tag >> 16) << 16 | (tag & 0xFFFF) >> 8


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
        return None if raw.length == _UNDEFINED_LENGTH else raw.length
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


# Values decoded straight from the raw bytes for the common VRs, as pydicom would decode them
# (tests check every element of pydicom's files against the pydicom path): converting each
# element through pydicom costs most of an ingest's CPU time.
_ASCII_STRINGS = frozenset(("UI", "CS", "AS", "DA", "DT", "TM"))
_TEXT_SPLIT = frozenset(("SH", "LO", "UC"))
_TEXT_SINGLE = frozenset(("ST", "LT", "UT"))
_SIMPLE_CHARSETS = frozenset(("iso8859", "latin_1", "UTF8"))
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


def _fast_values(raw: RawDataElement, vr: str, ds: Dataset) -> list[Any] | None:
    """The Encoded values of a plain little-endian element, or None to take the pydicom path."""
    value = raw.value
    if not isinstance(value, bytes) or vr != raw.VR or not raw.is_little_endian or raw.length == _UNDEFINED_LENGTH:
        return None
    return plain_values(value, vr, ds._character_set)


def plain_values(value: bytes, vr: str, charsets: str | list[str]) -> list[Any] | None:
    """Values of a little-endian Value Field decoded without pydicom, or None when only pydicom
    knows how (``charsets`` as pydicom's ``Dataset._character_set`` gives them)."""
    if not value:
        return []
    if vr in _NUMBERS:
        code = _NUMBERS[vr]
        size = struct.calcsize("<" + code)
        if len(value) % size:
            return None
        numbers = struct.unpack(f"<{len(value) // size}{code}", value)
        return [float(n) for n in numbers] if vr in FLOAT_VRS else list(numbers)
    if vr in _ASCII_STRINGS:
        text = value.decode("latin_1")
        text = text.rstrip("\0 ") if vr == "UI" else text
        return [v or None for v in text.rstrip(" \x00").split("\\")]
    if vr in ("IS", "DS"):
        return [v.strip(" ") or None for v in value.decode("latin_1").strip().split("\\")]
    if vr in _TEXT_SPLIT or vr in _TEXT_SINGLE or vr == "PN":
        if len(charsets) != 1 or charsets[0] not in _SIMPLE_CHARSETS:
            return None
        try:
            text = (value.rstrip(b"\x00 ") if vr == "PN" else value).decode(charsets[0])
        except UnicodeDecodeError:
            return None
        if vr in _TEXT_SINGLE:
            return [text.rstrip("\0 ") or None]
        if vr == "PN":
            return [_person_name_groups(v) for v in text.split("\\")]
        return [v.rstrip("\0 ") or None for v in text.split("\\")]
    return None


def _person_name_groups(text: str) -> tuple[str, str, str] | None:
    groups = (tuple(text.split("=")) + ("", "", ""))[:3]
    return groups if any(groups) else None  # type: ignore[return-value]


def _converted(
    ds: Dataset, tag: BaseTag, raw: DataElement | RawDataElement, vr: str, creator: str | None
) -> Encoded:
    little = raw.is_little_endian if isinstance(raw, RawDataElement) else ds.original_encoding[1] is not False
    return converted(ds[tag], vr, creator, little=little)  # ds[tag] loads a deferred value: it is inline


def converted(elem: DataElement, vr: str, creator: str | None, *, little: bool) -> Encoded:
    """The Encoded form of an element pydicom has converted; ``little``: how its bytes were read."""
    tag = elem.tag
    if elem.VR not in AMBIGUOUS_VR:
        vr = str(elem.VR)
    value = elem.value
    if elem.VM == 0:
        return Encoded(int(tag), vr, creator, "empty", None)
    if vr in BINARY_VRS:
        data = bytes(value)
        if elem.is_undefined_length:
            # PS3.19 A.1.5 "the whole Value Field": the items and the closing Sequence Delimiter.
            data += _SEQUENCE_DELIMITER
        elif not little and vr in WORD_WIDTH:
            data = swap_bytes(data, WORD_WIDTH[vr])
        return Encoded(int(tag), vr, creator, "inline", data)
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return Encoded(int(tag), vr, creator, "values", [_value(vr, v) for v in values])


def _value(vr: str, v: Any) -> Any:
    """Normalise one value: str or None (strings, DS, IS), PN group triple or None,
    AT as 8 hex digits, float for FL/FD, int for the binary integers."""
    if vr in STRING_VRS or vr in ("DS", "IS"):
        text = str(v).strip(" ") if vr in ("DS", "IS") else str(v)
        return text or None
    if vr == "PN":
        groups = (v if isinstance(v, PersonName) else PersonName(str(v))).components
        triple = (tuple(groups) + ("", "", ""))[:3]
        return triple if any(triple) else None
    if vr == "AT":
        return tag_text(int(v))
    if vr in FLOAT_VRS:
        return float(v)
    return int(v)


def float_out(vr: str, x: float) -> float | str:
    """The number both models print: shortest text that reads back to the same FL/FD bits;
    non-finite values as the JavaScript spellings, since neither model defines them."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if vr == "FL":
        bits = struct.pack("<f", x)
        for digits in range(6, 10):
            shorter = float(f"{x:.{digits}g}")
            if struct.pack("<f", shorter) == bits:
                return shorter
    return x


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------
# Decoding: neutral parsed elements -> pydicom Dataset


class Parsed(NamedTuple):
    """One element as read by a decoder, checked for shape but not yet a DataElement.

    ``payload`` by ``kind``: ``values`` a list of str|None (strings, DS, IS, PN), int (AT and
    binary integers) or float (FL, FD); ``items`` a list of Parsed lists; ``uri`` a URI;
    ``inline`` bytes. ``where`` names the element in error messages.
    """

    tag: int
    vr: str
    creator: str | None
    kind: Kind
    payload: Any
    where: str


def child_where(parent: str, tag: str) -> str:
    return f"{parent}.{tag}" if parent else tag


def parse_tag(text: Any, where: str) -> int:
    if not isinstance(text, str) or _HEX8.fullmatch(text) is None:
        raise invalid(where, f"tag {text!r} is not 8 hexadecimal digits")
    return int(text, 16)


def parse_vr(vr: Any, where: str) -> str:
    if not isinstance(vr, str) or vr not in ALL_VRS:
        raise invalid(where, f"VR {vr!r} is not a PS3.5 value representation")
    return vr


def decode_base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise invalid(where, "InlineBinary is not valid base64") from exc


def check_number(vr: str, n: Any, where: str) -> int | float:
    """Reject bools, wrong types and values the VR's binary width cannot hold."""
    if vr in FLOAT_VRS:
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise invalid(where, f"{vr} value {n!r} is not a number")
        x = float(n)
        if vr == "FL":
            try:
                struct.pack("<f", x)  # rounds to the nearest float32, or overflows
            except OverflowError as exc:
                raise invalid(where, f"FL value {n!r} is out of range") from exc
        return x
    if isinstance(n, bool) or not isinstance(n, int):
        raise invalid(where, f"{vr} value {n!r} is not an integer")
    low, high = INT_RANGES[vr]
    if not low <= n <= high:
        raise invalid(where, f"{vr} value {n} is outside {low}..{high}")
    return n


def parse_text_value(vr: str, text: str, where: str) -> Any:
    """Turn the character form of one value (XML text, or a JSON string) into its decoded type."""
    if vr == "AT":
        return parse_tag(text.strip(), where)
    if vr in FLOAT_VRS:
        stripped = text.strip()
        if stripped in NON_FINITE:
            return NON_FINITE[stripped]
        if _FLOAT_TEXT.fullmatch(stripped) is None:
            raise invalid(where, f"{vr} value {text!r} is not a number")
        return check_number(vr, float(stripped), where)
    if vr in INT_RANGES:
        stripped = text.strip()
        if _INT_TEXT.fullmatch(stripped) is None:
            raise invalid(where, f"{vr} value {text!r} is not an integer")
        return check_number(vr, int(stripped), where)
    if vr in ("DS", "IS"):
        return text.strip(" ") or None
    return text or None


def join_person_name(groups: Sequence[str]) -> str | None:
    """PS3.5 6.2.1: groups joined by '=', trailing empty groups dropped."""
    name = "=".join(groups).rstrip("=")
    return name or None


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
    charset_attr = next((a for a in attrs if a.tag == _CHARSET_TAG and a.creator is None), None)
    # PS3.5 7.5.3: an item without its own (0008,0005) uses the enclosing data set's.
    if charset_attr is not None or inherited is None:
        charset = _Charset(_charset_terms(charset_attr))
    else:
        charset = inherited
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
        target.add(_element(attr, tag, loader, charset))
    if charset is not inherited and charset.unfit:
        ds.add(DataElement(_CHARSET_TAG, "CS", "ISO_IR 192"))
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


def _element(attr: Parsed, tag: int, loader: BulkDataLoader | None, charset: _Charset) -> DataElement:
    vr = attr.vr
    if attr.kind == "items":
        return _new(tag, vr, [_build(item, loader, charset, top=False) for item in attr.payload])
    if attr.kind == "values":
        return _from_values(attr, tag, charset)
    data = b"" if attr.kind == "empty" else attr.payload if attr.kind == "inline" else _load(attr, loader)
    if not data:
        return _new(tag, vr, [] if vr == "SQ" else b"" if vr in BINARY_VRS else None)
    if vr in BINARY_VRS:
        # PS3.5 A.4 says OB, but files with encapsulated OW Pixel Data exist and must survive.
        undefined = tag == _PIXEL_DATA and is_encapsulated(data)
        if undefined and data.endswith(_SEQUENCE_DELIMITER):
            data = data[: -len(_SEQUENCE_DELIMITER)]
        return _new(tag, vr, data, undefined=undefined)
    return _from_bytes(attr, tag, data, charset)


def _new(tag: int, vr: str, value: Any, *, undefined: bool = False) -> DataElement:
    # pydicom turns UN of a known public tag into the dictionary VR; keep what the sender said.
    elem = DataElement(
        tag, "OB" if vr == "UN" else vr, value, is_undefined_length=undefined, validation_mode=config.IGNORE
    )
    elem.VR = vr
    return elem


def _from_values(attr: Parsed, tag: int, charset: _Charset) -> DataElement:
    vr, values = attr.vr, attr.payload
    if vr in SINGLE_VALUE_VRS and len(values) > 1:
        raise invalid(attr.where, f"VR {vr} has a single value, got {len(values)}")
    if vr in STRING_VRS or vr in ("PN", "DS", "IS"):
        values = ["" if v is None else v for v in values]
        if vr not in ("DS", "IS"):
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
    code = _STRUCT_CODES.get(attr.vr)
    if code is not None and len(data) % struct.calcsize(code):
        raise invalid(attr.where, f"bulk data of {len(data)} bytes is not a whole number of {attr.vr} values")
    raw = RawDataElement(BaseTag(tag), attr.vr, len(data), data, 0, False, True)
    # Text decoded from the declared character set fits it by construction: nothing to note.
    try:
        return convert_raw_data_element(raw, encoding=charset.python, ds=None)
    except (ValueError, OverflowError) as exc:
        raise invalid(attr.where, f"bulk data is not a valid {attr.vr} value: {exc}") from exc


def is_encapsulated(data: bytes) -> bool:
    """True when ``data`` is a chain of Items (PS3.5 A.4), optionally closed by the Sequence
    Delimiter: the whole Value Field of undefined-length Pixel Data."""
    offset, end = 0, len(data)
    if data.endswith(_SEQUENCE_DELIMITER):
        end -= len(_SEQUENCE_DELIMITER)
    if end < 8:
        return False
    while offset + 8 <= end:
        if data[offset : offset + 4] != _ITEM_TAG:
            return False
        offset += 8 + int.from_bytes(data[offset + 4 : offset + 8], "little")
    return offset == end
