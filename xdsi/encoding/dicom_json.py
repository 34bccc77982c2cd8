"""PS3.18 Annex F DICOM JSON Model: pydicom Dataset to application/dicom+json and back."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import orjson
from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds

from xdsi.encoding.builder import build_dataset, compact
from xdsi.encoding.bulkdata import BulkDataCallback, BulkDataLoader
from xdsi.encoding.model import (
    BINARY_VRS,
    BULK_DATA_VRS,
    FLOAT_VRS,
    INT_RANGES,
    MAX_DEPTH,
    PN_GROUPS,
    STRING_VRS,
    Encoded,
    Kind,
    Parsed,
    child_where,
    creator_tag,
    invalid,
    tag_text,
)
from xdsi.encoding.raw_elements import is_kept
from xdsi.encoding.values import (
    NON_FINITE,
    b64encode,
    check_number,
    decode_base64,
    float_out,
    join_person_name,
    parse_tag,
    parse_text_value,
    parse_vr,
    person_name_groups,
)
from xdsi.encoding.walk import encode_dataset
from xdsi.errors import InvalidRequest

# Integers beyond 2**53 lose precision in JavaScript and any double-based JSON reader.
_MAX_SAFE_INTEGER = 2**53 - 1
# RFC 8259 section 6: the number grammar.
_JSON_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DS_MAX_CHARS = 16  # PS3.5 6.2: DS is at most 16 bytes
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # RFC 8259 section 2
_ATTRIBUTE_MEMBERS = frozenset(("vr", "Value", "BulkDataURI", "InlineBinary"))
_NULLABLE_VRS = STRING_VRS | {"PN", "DS", "IS"}


class Number:
    """A JSON number kept as its token text, written or read: a DS or IS value travels as a
    number without the trip through a double that would rewrite it (``5.000000`` is not ``5.0``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Number) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Number({self.text!r})"


def decimal_value(vr: str, text: str) -> Number | str:
    """PS3.18 F.2.3: a DS value is a JSON number when its text is one, written as that very
    text so nothing is rounded; otherwise (``+5``, ``05``, ``.5``, ``5.``, ``NaN``) a string.
    An IS value is a number when its text is a JSON integer: IS holds integers, and readers
    map it to one (this reader refuses ``1.5`` for IS).

    PS3.5 6.2: leading and trailing spaces are not significant. A number a double cannot hold
    (``1e999``) stays a string: RFC 8259 section 6 expects binary64 range, and readers refuse it.
    """
    stripped = text.strip(" ")
    grammar = _JSON_NUMBER if vr == "DS" else _JSON_INT
    if grammar.fullmatch(stripped) and math.isfinite(float(stripped)):
        return Number(stripped)
    return stripped


# One finds where each value ends (its numbers plain floats, dropped at once), the other keeps tokens.
_BOUNDS = json.JSONDecoder()
_TOKENS = json.JSONDecoder(parse_float=Number, parse_int=Number)


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON of DICOM JSON data holding ``Number`` tokens; orjson because metadata
    responses can be large."""
    return orjson.dumps(obj, default=_token)


def _token(obj: Any) -> orjson.Fragment:
    if isinstance(obj, Number):
        return orjson.Fragment(obj.text)
    raise TypeError(f"{type(obj).__name__} is not DICOM JSON data")


def dataset_to_json(ds: Dataset, bulk_data: BulkDataCallback | None = None) -> dict[str, Any]:
    """Build the JSON object as Python data so callers can merge or filter before ``dumps``."""
    return _object(encode_dataset(ds, bulk_data))


def dumps_dataset(ds: Dataset, bulk_data: BulkDataCallback | None = None) -> bytes:
    """UTF-8 JSON of one data set."""
    return dumps(dataset_to_json(ds, bulk_data))


def encoded_to_json(elements: Iterable[Encoded]) -> dict[str, Any]:
    """The JSON object of elements built or walked elsewhere (e.g. from index rows), as Python
    data so callers can merge before ``dumps``."""
    return _object(elements)


def dumps_encoded(elements: Iterable[Encoded]) -> bytes:
    """UTF-8 JSON of one data set already walked by ``encode_tree``."""
    return dumps(_object(elements, _written))


def loads(data: bytes | str) -> Any:
    """Client JSON as Python data, each number a ``Number`` so a DS keeps the text it was sent.

    orjson decides what is JSON (RFC 8259: UTF-8, no NaN, no lone surrogates, bounded depth);
    the standard library then reads the same text again, since only it hands over number tokens.
    """
    with _malformed_json():
        orjson.loads(data)
        return json.loads(data, parse_float=Number, parse_int=Number)


# A data set of up to 256 Ki characters is parsed whole: about 6 MB for a moment.
WHOLE_DATASET_CHARS = 1 << 18


class DatasetTexts:
    """The data set objects of one JSON metadata part, kept as the text they came in and read one
    at a time as they are iterated.

    Parsed all at once, a part costs about 36 times its size (a dict, a list and a ``Number`` per
    value; measured by bench/stow_metadata.py), held until the request ends. Here the whole part is
    checked when it is read, as ``loads`` checks it (so a malformed part stores nothing), but only
    where each data set begins and ends is kept beside the text.

    A data set of at most ``whole_below`` characters is checked and built parsed whole, by the
    json module's C code; a longer one element by element (``_Reader``), which bounds its memory
    to a few times its text but takes about twice the CPU (an MR header checked and built: 1.26
    against 0.65 ms). Where the data set ends is known only once it is read: while checking, the rest of
    the part stands for its length.
    """

    def __init__(self, data: bytes, *, whole_below: int = WHOLE_DATASET_CHARS) -> None:
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8.
            raise InvalidRequest(f"malformed JSON: not UTF-8 at byte {exc.start}") from exc
        self.whole_below = whole_below
        self.bounds = array("q")  # start and end of each data set, in characters of ``text``
        with _malformed_json():
            self._find_bounds()

    def __len__(self) -> int:
        return len(self.bounds) // 2

    def __iter__(self) -> Iterator[DatasetText]:
        for n in range(0, len(self.bounds), 2):
            start, end = self.bounds[n], self.bounds[n + 1]
            yield DatasetText(self.text, start, end, end - start <= self.whole_below)

    def _find_bounds(self) -> None:
        text = self.text
        reader = _Reader(text, _skip(text, 0), checked=False)
        if not text.startswith("[", reader.at):
            self._dataset(reader)
        else:
            for _ in reader.array():
                self._dataset(reader)
        if _skip(text, reader.at) != len(text):
            raise InvalidRequest(f"malformed JSON: unexpected content at character {reader.at}")

    def _dataset(self, reader: _Reader) -> None:
        """Check the value at the reader as ``loads`` would and record where it lies."""
        start = reader.at
        if not reader.text.startswith("{", start):
            reader.value(_BOUNDS)
            raise InvalidRequest("a DICOM JSON metadata part holds data set objects (an array of them)")
        if len(reader.text) - start <= self.whole_below:
            reader.value(_BOUNDS)
        else:
            reader.dataset("", 0, keep=False)
        self.bounds.extend((start, reader.at))


class DatasetText(NamedTuple):
    """One data set of a metadata part, its JSON already checked, read when it is asked for."""

    text: str
    start: int
    end: int
    whole: bool  # parsed whole rather than element by element

    def to_dataset(self, bulk_data: BulkDataLoader | None = None) -> Dataset:
        """As ``json_to_dataset`` builds it from the parsed part."""
        if self.whole:
            return json_to_dataset(_TOKENS.decode(self.text[self.start:self.end]), bulk_data)
        return build_dataset(_Reader(self.text, self.start, checked=True).dataset("", 0, keep=True), bulk_data)

    def identity(self) -> tuple[str | None, str | None]:
        """SOP Class and Instance UIDs as the data set states them, to name one that cannot be built."""
        found: dict[str, str | None] = {}
        reader = _Reader(self.text, self.start, checked=True)
        for key in reader.members():
            if key not in _IDENTITY:
                reader.element(key, "", 0, keep=False)
                continue
            attribute = reader.value(_BOUNDS)
            value = attribute.get("Value") if isinstance(attribute, dict) else None
            found[key] = value[0] if isinstance(value, list) and value and isinstance(value[0], str) else None
        return found.get(_IDENTITY[0]), found.get(_IDENTITY[1])


_IDENTITY = ("00080016", "00080018")  # SOP Class UID, SOP Instance UID
# An element object whose first member says it is a sequence: its items are read one element at a time.
# Writers put "vr" first (PS3.18 F.2's examples, pydicom, dcm4che, this archive); a sequence whose
# "Value" comes before its "vr" is still read, but parsed whole, as any other element is.
_SEQUENCE = re.compile(r'\{[ \t\n\r]*"vr"[ \t\n\r]*:[ \t\n\r]*"SQ"')


class _Reader:
    """A data set read from JSON text down to its elements, sequence items included, so that one
    element's value at most is ever held as parsed JSON; each element is then kept as the Parsed it
    becomes (``keep``), or only checked.

    Checking is ``loads``'s: orjson decides what is JSON (RFC 8259) for every value, the structure
    around the values is walked here by the same grammar. Text ``checked`` already (a data set of
    ``DatasetTexts``, read again to be built) is not checked twice. A data set of tens of megabytes in one
    sequence (an RT Structure Set's contours) would otherwise be a dict, a list and a ``Number``
    per value, about 20 times its text, twice over while it is built.
    """

    def __init__(self, text: str, at: int, *, checked: bool) -> None:
        self.text = text
        self.at = at
        self.checked = checked

    def dataset(self, where: str, depth: int, *, keep: bool) -> list[Parsed]:
        attributes: dict[str, Parsed] = {}  # a repeated key keeps its first place and last value, as json's
        for key in self.members():
            parsed = self.element(key, where, depth, keep=keep)
            if parsed is not None:
                attributes[key] = parsed
        return list(attributes.values())

    def element(self, key: str, parent: str, depth: int, *, keep: bool) -> Parsed | None:
        if depth >= MAX_DEPTH or not _SEQUENCE.match(self.text, self.at):
            attr = self.value(_TOKENS if keep else _BOUNDS)
            return compact(_attribute(key, attr, parent, depth)) if keep else None
        where = child_where(parent, key)
        members: dict[str, Any] = {}
        for member in self.members():
            if member == "Value" and self.text.startswith("[", self.at):
                members[member] = _ReadItems(self._items(where, depth, keep=keep))
            else:
                members[member] = self.value(_TOKENS if keep else _BOUNDS)
        return _attribute(key, members, parent, depth) if keep else None

    def _items(self, where: str, depth: int, *, keep: bool) -> list[list[Parsed]]:
        items = []
        for n in self.array():
            item_where = f"{where}[{n}]"
            if self.text.startswith("{", self.at):
                item = self.dataset(item_where, depth + 1, keep=keep)
            else:
                value = self.value(_TOKENS if keep else _BOUNDS)
                item = _attributes(value, item_where, depth + 1) if keep else []
            if keep:
                items.append(item)
        return items

    def members(self) -> Iterator[str]:
        """The keys of the object at ``at``, in turn; the caller reads each one's value, which
        leaves ``at`` after it."""
        text = self.text
        if not self._opened("{", "}"):
            return
        while True:
            if not text.startswith('"', self.at):
                raise InvalidRequest(f"malformed JSON: expected a string key at character {self.at}")
            key, end = _BOUNDS.raw_decode(text, self.at)
            if not self.checked and not key.isascii():
                key.encode("utf-8")  # RFC 8259 section 8.2: a lone surrogate is not a character
            self.at = _skip(text, end)
            self._expect(":")
            yield key
            if not self._more("}"):
                return

    def array(self) -> Iterator[int]:
        """The array at ``at``: the number of each value in turn, which the caller reads."""
        if not self._opened("[", "]"):
            return
        for number in itertools.count(1):
            yield number
            if not self._more("]"):
                return

    def value(self, decoder: json.JSONDecoder) -> Any:
        """The JSON value at ``at``, as ``decoder`` reads it and (unless ``checked``) as strictly as ``loads``."""
        start = self.at
        value, self.at = decoder.raw_decode(self.text, start)
        if not self.checked:
            orjson.loads(self.text[start:self.at])  # RFC 8259's rules, which the standard library bends
        return value

    def _opened(self, opening: str, closing: str) -> bool:
        """Past ``opening``; False when ``closing`` follows at once (and is passed too)."""
        self._expect(opening)
        if self.text.startswith(closing, self.at):
            self.at += 1
            return False
        return True

    def _more(self, closing: str) -> bool:
        """After a member or a value: True past a ',' (and the whitespace after it), False past ``closing``."""
        self.at = _skip(self.text, self.at)
        if self.text.startswith(",", self.at):
            self.at = _skip(self.text, self.at + 1)
            return True
        if self.text.startswith(closing, self.at):
            self.at += 1
            return False
        raise InvalidRequest(f"malformed JSON: expected ',' or {closing!r} at character {self.at}")

    def _expect(self, char: str) -> None:
        """``char`` at ``at``, and the whitespace after it, read."""
        if not self.text.startswith(char, self.at):
            raise InvalidRequest(f"malformed JSON: expected {char!r} at character {self.at}")
        self.at = _skip(self.text, self.at + 1)


class _ReadItems(list[list[Parsed]]):
    """A sequence's items, read already by ``_Reader``: ``_attribute`` takes them as they are."""


@contextlib.contextmanager
def _malformed_json() -> Iterator[None]:
    """The JSON libraries' errors, and Python's own on deep nesting, as InvalidRequest."""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc.msg} at character {exc.pos}") from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"malformed JSON: a lone surrogate in a key at character {exc.start}") from exc
    except RecursionError as exc:
        raise InvalidRequest("malformed JSON: nested too deeply") from exc


def _skip(text: str, position: int) -> int:
    """Where the whitespace at ``position`` ends."""
    found = _WHITESPACE.match(text, position)
    return found.end() if found else position


def loads_fragment(fragment: bytes) -> dict[str, Any]:
    """A data set this archive serialized itself (``dumps_encoded``), numbers as ``Number``."""
    parsed: dict[str, Any] = json.loads(fragment, parse_float=Number, parse_int=Number)
    return parsed


def json_to_dataset(obj: Mapping[str, Any], bulk_data: BulkDataLoader | None = None) -> Dataset:
    """Rebuild a Dataset from parsed JSON, rejecting anything outside the model with InvalidRequest."""
    return build_dataset(_attributes(obj, "", 0), bulk_data)


def loads_dataset(data: bytes | str, bulk_data: BulkDataLoader | None = None) -> Dataset:
    """Parse one data set object (not an array) from client-supplied JSON."""
    obj = loads(data)
    if not isinstance(obj, dict):
        raise InvalidRequest(f"expected a JSON object holding one data set, got {type(obj).__name__}")
    return json_to_dataset(obj, bulk_data)


def encoded_from_json(data: Mapping[str, Any] | bytes) -> list[Encoded]:
    """A JSON data set as the elements the XML renderer walks: JSON to XML without pydicom.

    ``data`` is parsed JSON, checked as client JSON is; or the bytes of a data set this archive
    serialized itself (``dumps_encoded``), trusted, so read at a fraction of the cost (tests
    compare both routes over every sample file).
    """
    if isinstance(data, bytes):
        return _fragment_elements(loads_fragment(data))
    return _as_encoded(_attributes(data, "", 0))


def _as_encoded(parsed: list[Parsed]) -> list[Encoded]:
    elements = []
    for p in sorted(parsed, key=lambda p: p.tag):
        payload = p.payload
        if p.kind == "items":
            payload = [_as_encoded(item) for item in p.payload]
        elif p.kind == "values":
            payload = [_encoded_value(p.vr, v) for v in p.payload]
        elements.append(Encoded(p.tag, p.vr, None, p.kind, payload))
    return _with_creators(elements)


def _fragment_elements(obj: dict[str, Any]) -> list[Encoded]:
    elements = []
    for key, attr in sorted(obj.items()):
        vr = attr["vr"]
        kind: Kind
        payload: Any
        if attr.get("Value"):
            if vr == "SQ":
                kind, payload = "items", [_fragment_elements(item) for item in attr["Value"]]
            else:
                kind, payload = "values", [_fragment_value(vr, v) for v in attr["Value"]]
        elif "BulkDataURI" in attr:
            kind, payload = "uri", attr["BulkDataURI"]
        elif "InlineBinary" in attr:
            kind, payload = "inline", decode_base64(attr["InlineBinary"], key)
        else:
            kind, payload = "empty", None
        elements.append(Encoded(int(key, 16), vr, None, kind, payload))
    return _with_creators(elements)


def _fragment_value(vr: str, v: Any) -> Any:
    """What ``_scalar`` and ``_encoded_value`` make of a value ``_json_value`` wrote."""
    if v is None:
        return None
    if vr == "PN":
        groups = tuple(v.get(name, "") for name in PN_GROUPS)
        return groups if any(groups) else None
    if isinstance(v, Number):
        if vr in ("DS", "IS"):
            return v.text
        return float(v.text) if vr in FLOAT_VRS else int(v.text)
    if vr in ("DS", "IS"):
        # A text JSON cannot carry as a number, or any value cached before migration 0003.
        return v.strip(" ") or None
    if isinstance(v, str):
        if vr == "AT":
            return v.upper()
        if vr in ("SV", "UV"):
            return int(v)
        if vr in FLOAT_VRS:
            return NON_FINITE[v]
        return v or None
    return v


def _with_creators(elements: list[Encoded]) -> list[Encoded]:
    """PS3.19 A.1.5 names a private element's creator, which JSON carries only as the data set's
    Private Creator element, whose single text value it is."""
    by_tag = {e.tag: e for e in elements}
    return [e._replace(creator=_creator(by_tag, e.tag)) if e.tag >> 16 & 1 else e for e in elements]


def _creator(by_tag: dict[int, Encoded], tag: int) -> str | None:
    owner = creator_tag(tag)
    creator = None if owner is None else by_tag.get(owner)
    if creator is None or creator.kind != "values" or len(creator.payload) != 1:
        return None
    value = creator.payload[0]
    return value if isinstance(value, str) and value else None


def _encoded_value(vr: str, v: Any) -> Any:
    if v is None:
        return None
    if vr == "PN":
        return person_name_groups(v)
    if vr == "AT":
        return tag_text(v)
    return v


# The JSON of an element the walk gave before, by the element's identity: the raw walk hands back
# the same Encoded for an element repeated from the last instances (``raw_elements``). Only what
# is written at once uses it, as callers of the Python data may change it.
_WRITTEN_ELEMENTS = 8192
_Written = dict[int, tuple[Encoded, str, dict[str, Any]]]
_written: _Written = {}


def _object(elements: Iterable[Encoded], written: _Written | None = None) -> dict[str, Any]:
    # PS3.18 F.2.2: members in ascending tag order, which encode_dataset yields.
    out: dict[str, Any] = {}
    for e in elements:
        if written is not None:
            seen = written.get(id(e))
            if seen is not None and seen[0] is e:
                out[seen[1]] = seen[2]
                continue
        attr: dict[str, Any] = {"vr": e.vr}
        if e.kind == "values":
            attr["Value"] = [_json_value(e.vr, v) for v in e.payload]
        elif e.kind == "items":
            # PS3.18 F.2.5: an empty item is an empty object.
            attr["Value"] = [_object(walk, written) for walk in e.payload]
        elif e.kind == "uri":
            attr["BulkDataURI"] = e.payload
        elif e.kind == "inline":
            attr["InlineBinary"] = b64encode(e.payload)
        key = tag_text(e.tag)
        out[key] = attr
        if written is not None and is_kept(e):
            if len(written) >= _WRITTEN_ELEMENTS:
                written.clear()
            written[id(e)] = (e, key, attr)
    return out


def _json_value(vr: str, v: Any) -> Any:
    if v is None:
        return None  # PS3.18 F.2.5: an empty value among several is null
    if vr == "PN":
        # PS3.18 F.2.2: only the non-empty component groups.
        return {name: group for name, group in zip(PN_GROUPS, v, strict=False) if group}
    if vr in ("DS", "IS"):
        return decimal_value(vr, v)
    if vr in FLOAT_VRS:
        return float_out(vr, v)
    if vr in ("SV", "UV"):
        # PS3.18 F.2.3 note: a string keeps 64-bit values exact where a double would round.
        return v if abs(v) <= _MAX_SAFE_INTEGER else str(v)
    return v


def _attributes(obj: Any, where: str, depth: int) -> list[Parsed]:
    if not isinstance(obj, Mapping):
        raise invalid(where, f"a data set must be a JSON object, got {type(obj).__name__}")
    return [_attribute(key, attr, where, depth) for key, attr in obj.items()]


def _attribute(key: Any, attr: Any, parent: str, depth: int) -> Parsed:
    where = child_where(parent, key if isinstance(key, str) else repr(key))
    tag = parse_tag(key, where)
    if not isinstance(attr, Mapping):
        raise invalid(where, f"attribute must be a JSON object, got {type(attr).__name__}")
    unknown = set(attr) - _ATTRIBUTE_MEMBERS
    if unknown:
        raise invalid(where, f"unknown member(s) {', '.join(sorted(map(repr, unknown)))}")
    if "vr" not in attr:
        raise invalid(where, 'missing "vr"')
    vr = parse_vr(attr["vr"], where)
    present = [m for m in ("Value", "BulkDataURI", "InlineBinary") if m in attr]
    if len(present) > 1:
        raise invalid(where, f"at most one of Value, BulkDataURI, InlineBinary; got {', '.join(present)}")
    if not present:
        return Parsed(tag, vr, None, "empty", None, where)
    member = present[0]
    content = attr[member]
    if member == "BulkDataURI":
        if vr not in BULK_DATA_VRS:
            raise invalid(where, f"BulkDataURI is not allowed for VR {vr}")
        if not isinstance(content, str) or not content:
            raise invalid(where, "BulkDataURI must be a non-empty string")
        return Parsed(tag, vr, None, "uri", content, where)
    if member == "InlineBinary":
        if vr not in BINARY_VRS:
            raise invalid(where, f"InlineBinary is not allowed for VR {vr}")
        if not isinstance(content, str):
            raise invalid(where, "InlineBinary must be a string")
        return Parsed(tag, vr, None, "inline", decode_base64(content, where), where)
    if not isinstance(content, list):
        raise invalid(where, f"Value must be an array, got {type(content).__name__}")
    if vr in BINARY_VRS:
        raise invalid(where, f"VR {vr} is carried by InlineBinary or BulkDataURI, not Value")
    if not content:
        return Parsed(tag, vr, None, "empty", None, where)
    if vr == "SQ":
        if isinstance(content, _ReadItems):
            return Parsed(tag, vr, None, "items", content, where)
        if depth >= MAX_DEPTH:
            raise invalid(where, f"sequences nested deeper than {MAX_DEPTH} levels")
        items = [_attributes(item, f"{where}[{n}]", depth + 1) for n, item in enumerate(content, 1)]
        return Parsed(tag, vr, None, "items", items, where)
    values = [_scalar(vr, v, f"{where}.Value[{n}]") for n, v in enumerate(content)]
    return Parsed(tag, vr, None, "values", values, where)


def _scalar(vr: str, v: Any, where: str) -> Any:
    if v is None:
        if vr in _NULLABLE_VRS:
            return None
        raise invalid(where, f"null is not a {vr} value")
    if vr == "PN":
        if not isinstance(v, Mapping):
            raise invalid(where, f"a PN value must be an object, got {type(v).__name__}")
        unknown = set(v) - set(PN_GROUPS)
        if unknown:
            raise invalid(where, f"unknown PN group(s) {', '.join(sorted(map(repr, unknown)))}")
        if not all(isinstance(g, str) for g in v.values()):
            raise invalid(where, "PN component groups must be strings")
        return join_person_name([v.get(name, "") for name in PN_GROUPS])
    if isinstance(v, Number):
        if vr == "DS":
            return v.text  # the client's own text, as a string holding it would be kept
        if vr == "IS" and _JSON_INT.fullmatch(v.text):
            return v.text
        v = int(v.text) if _JSON_INT.fullmatch(v.text) else float(v.text)
    if isinstance(v, str):
        if vr in STRING_VRS or vr in ("AT", "DS", "IS", "SV", "UV"):
            return parse_text_value(vr, v, where)
        if vr in FLOAT_VRS and v in NON_FINITE:
            return NON_FINITE[v]
        raise invalid(where, f"{vr} value must be a number, got string {v!r}")
    if vr in ("DS", "IS"):
        if isinstance(v, bool) or not isinstance(v, int | float) or (vr == "IS" and not isinstance(v, int)):
            raise invalid(where, f"{vr} value {v!r} is not a {'number' if vr == 'DS' else 'integer'}")
        return str(v) if isinstance(v, int) else _ds_text(v, where)
    if vr in FLOAT_VRS or vr in INT_RANGES:
        return check_number(vr, v, where)
    raise invalid(where, f"{vr} value must be a string, got {type(v).__name__}")


def _ds_text(x: float, where: str) -> str:
    if not math.isfinite(x):
        raise invalid(where, "DS value is not finite")
    text = repr(x)
    # PS3.5 6.2: a DS holds 16 characters; longer doubles are rounded to fit.
    return text if len(text) <= _DS_MAX_CHARS else format_number_as_ds(x)
