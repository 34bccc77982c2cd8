"""PS3.19 Annex A.1 Native DICOM Model: pydicom Dataset to application/dicom+xml and back."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from lxml import etree
from pydicom.dataset import Dataset

from xdsi.encoding import values
from xdsi.encoding.builder import build_dataset, compact
from xdsi.encoding.bulkdata import BulkDataCallback, BulkDataLoader
from xdsi.encoding.model import (
    BINARY_VRS,
    BULK_DATA_VRS,
    MAX_DEPTH,
    PN_GROUPS,
    Encoded,
    Parsed,
    child_where,
    invalid,
    keyword,
)
from xdsi.encoding.walk import encode_dataset
from xdsi.errors import InvalidRequest

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_T = TypeVar("_T")

_ROOT = f"{{{NAMESPACE}}}NativeDicomModel"
_ATTRIBUTE = f"{{{NAMESPACE}}}DicomAttribute"
_VALUE = f"{{{NAMESPACE}}}Value"
_ITEM = f"{{{NAMESPACE}}}Item"
_PERSON_NAME = f"{{{NAMESPACE}}}PersonName"
_BULK_DATA = f"{{{NAMESPACE}}}BulkData"
_INLINE_BINARY = f"{{{NAMESPACE}}}InlineBinary"
_COMPONENT_NAMES = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_GROUPS = tuple(f"{{{NAMESPACE}}}{n}" for n in PN_GROUPS)
_COMPONENTS = tuple(f"{{{NAMESPACE}}}{n}" for n in _COMPONENT_NAMES)
_ATTRIBUTE_ATTRS = frozenset(("tag", "vr", "keyword", "privateCreator"))
_NUMBER = re.compile(r"[1-9][0-9]*")
_NO_DOCTYPE = "XML with a DOCTYPE (DTD or entity declarations) is not accepted"
# XML 1.0 Char production: C0 controls other than TAB/LF/CR, surrogates, U+FFFE/U+FFFF.
_NOT_XML_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PLAIN_TEXT = re.compile(r"[^&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]*")


def dumps_dataset(
    ds: Dataset, bulk_data: BulkDataCallback | None = None, *, xml_declaration: bool = True
) -> bytes:
    """UTF-8 document; the declaration can be dropped when the bytes go inside another document."""
    return dumps_encoded(encode_dataset(ds, bulk_data), xml_declaration=xml_declaration)


def dumps_encoded(elements: Iterable[Encoded], *, xml_declaration: bool = True) -> bytes:
    """UTF-8 document of one data set already walked by ``encode_dataset``/``encode_tree``.

    Written as text rather than through an lxml tree: a tree costs a node object per element
    and value, most of the time it takes to store an instance.
    """
    out = [_DECLARATION] if xml_declaration else []
    # PS3.19 Table A.1.5-1: the xml:space="preserve" directive shall be included.
    out.append(f'<NativeDicomModel xmlns="{NAMESPACE}" xml:space="preserve">')
    _write(out, elements)
    out.append("</NativeDicomModel>")
    return "".join(out).encode("utf-8")


_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _escape(text: str) -> str:
    if _PLAIN_TEXT.fullmatch(text):  # most values: one scan, no copies
        return text
    return _xml_safe(text).translate(_TEXT_ESCAPES)


def _quoted(text: str) -> str:
    return _xml_safe(text).translate(_ATTRIBUTE_ESCAPES)


# A parser that never fetches, expands or amplifies: client XML is hostile until proven not.
_SAFE_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "dtd_validation": False,
    "remove_comments": True,
    "remove_pis": True,
}


def safe_parser() -> etree.XMLParser:
    """The hardened parser, for XML read whole."""
    return etree.XMLParser(**_SAFE_OPTIONS)


def loads_dataset(data: bytes, bulk_data: BulkDataLoader | None = None) -> Dataset:
    """Parse client XML with the hardened parser; any DOCTYPE is refused outright."""
    # Refused before parsing, so entity tricks never reach libxml2; the docinfo check in
    # ``_Reader`` covers encodings in which the declaration is not ASCII bytes (e.g. UTF-16).
    if b"<!DOCTYPE" in data:
        raise InvalidRequest(_NO_DOCTYPE)
    events = etree.iterparse(io.BytesIO(data), events=("start", "end"), **_SAFE_OPTIONS)
    return build_dataset(_Reader().read(events), bulk_data)


def element_to_dataset(root: etree._Element, bulk_data: BulkDataLoader | None = None) -> Dataset:
    """Rebuild a Dataset from a NativeDicomModel tree, rejecting anything outside the model."""
    return loads_dataset(etree.tostring(root), bulk_data)


@dataclass
class _Container:
    """The root or an Item: the attributes read so far of the data set it holds."""

    node: etree._Element
    where: str
    depth: int
    attributes: list[Parsed] = field(default_factory=list)


@dataclass
class _Sequence:
    """A DicomAttribute directly in a data set, while its children are read: its Items, once read."""

    node: etree._Element
    parent: str  # where the data set holding it is
    depth: int
    kinds: set[str] = field(default_factory=set)
    items: list[tuple[str | None, bool, list[Parsed]]] = field(default_factory=list)  # as _in_order reads them

    @property
    def where(self) -> str:
        return child_where(self.parent, self.node.get("tag", "DicomAttribute"))


class _Reader:
    """PS3.19 A.1 read as the parser goes: each DicomAttribute holding values becomes a Parsed when
    it ends and its elements are dropped, and so is each Item of a sequence. The whole tree of a
    large data set (an element, attribute and text node per value, about 16 times the text) never
    exists; what is kept is what the data set will be built from."""

    def __init__(self) -> None:
        self.open: list[_Container | _Sequence] = []
        self.result: list[Parsed] | None = None

    def read(self, events: Iterable[tuple[str, etree._Element]]) -> list[Parsed]:
        try:
            for event, node in events:
                if event == "start":
                    self._start(node)
                else:
                    self._end(node)
        except (etree.XMLSyntaxError, ValueError) as exc:
            raise InvalidRequest(f"malformed XML: {exc}") from exc
        assert self.result is not None  # the parser raises unless the root was closed
        return self.result

    def _start(self, node: etree._Element) -> None:
        if not self.open:
            if node.tag != _ROOT:
                raise InvalidRequest(
                    f"root element is {node.tag!r}, expected NativeDicomModel in namespace {NAMESPACE}"
                )
            docinfo = node.getroottree().docinfo
            if docinfo.doctype or docinfo.internalDTD is not None:
                raise InvalidRequest(_NO_DOCTYPE)
            self.open.append(_Container(node, "", 0))
            return
        current = self.open[-1]
        if node.getparent() is not current.node:
            return  # inside a value: read with its DicomAttribute
        if isinstance(current, _Container):
            if node.tag != _ATTRIBUTE:
                raise invalid(current.where, f"unexpected element {node.tag!r}, expected DicomAttribute")
            self.open.append(_Sequence(node, current.where, current.depth))
            return
        if node.tag == _ITEM and _ITEM not in current.kinds:
            where, _tag, vr, _creator = _header(current.node, current.parent)
            if current.kinds:
                raise invalid(where, f"mixes {', '.join(sorted(_local(k) for k in current.kinds | {_ITEM}))}")
            if vr != "SQ":
                raise invalid(where, f"Item elements are not allowed for VR {vr}")
            if current.depth >= MAX_DEPTH:
                raise invalid(where, f"sequences nested deeper than {MAX_DEPTH} levels")
        current.kinds.add(node.tag)
        if node.tag == _ITEM:
            self.open.append(_Container(node, f"{current.where}[{node.get('number')}]", current.depth + 1))

    def _end(self, node: etree._Element) -> None:
        current = self.open[-1]
        if node is not current.node:
            return
        self.open.pop()
        if isinstance(current, _Sequence):
            parsed = self._attribute(current)
            holder = self.open[-1]
            assert isinstance(holder, _Container)
            holder.attributes.append(parsed)
            _drop(node, current.parent)
        elif self.open:
            sequence = self.open[-1]
            assert isinstance(sequence, _Sequence)
            _children(node, current.where)  # no text between its attributes
            sequence.items.append((node.get("number"), set(node.attrib) != {"number"}, current.attributes))
            _drop(node, sequence.where)
        else:
            _children(node, "")
            self.result = current.attributes

    @staticmethod
    def _attribute(sequence: _Sequence) -> Parsed:
        if _ITEM not in sequence.kinds:
            return compact(_attribute(sequence.node, sequence.parent))
        where, tag, vr, creator = _header(sequence.node, sequence.parent)
        _children(sequence.node, where)
        if len(sequence.kinds) > 1:
            raise invalid(where, f"mixes {', '.join(sorted(_local(k) for k in sequence.kinds))}")
        return Parsed(tag, vr, creator, "items", _in_order(sequence.items, where, "Item"), where)


def _drop(node: etree._Element, where: str) -> None:
    """Free what was read: ``node``'s content, and its earlier siblings, whose trailing text is
    now known and must be whitespace (the last one's is checked with its parent)."""
    node.clear()
    while (previous := node.getprevious()) is not None:
        if previous.tail and previous.tail.strip():
            raise invalid(where, f"unexpected text {previous.tail.strip()[:40]!r}")
        node.getparent().remove(previous)


def _write(out: list[str], elements: Iterable[Encoded]) -> None:
    for e in elements:
        if e.creator is not None:
            # PS3.19 A.1.5: a private data element is gggg00ee; the block travels as privateCreator.
            out.append(f'<DicomAttribute tag="{e.tag >> 16:04X}00{e.tag & 0xFF:02X}" vr="{e.vr}" '
                       f'privateCreator="{_quoted(e.creator)}"')
        else:
            out.append(_opening(e.tag, e.vr))
        if e.kind == "empty":
            out.append("/>")
            continue
        out.append(">")
        if e.kind == "values" and e.vr == "PN":
            for n, groups in enumerate(e.payload, 1):
                out.append(f'<PersonName number="{n}">')
                _person_name(out, groups)
                out.append("</PersonName>")
        elif e.kind == "values":
            for n, v in enumerate(e.payload, 1):
                # PS3.19 A.1.5: an empty value among several is an empty Value element.
                text = _text(e.vr, v)
                out.append(f'<Value number="{n}"/>' if text is None else f'<Value number="{n}">{text}</Value>')
        elif e.kind == "items":
            for n, walk in enumerate(e.payload, 1):
                out.append(f'<Item number="{n}">')
                _write(out, walk)
                out.append("</Item>")
        elif e.kind == "uri":
            out.append(f'<BulkData uri="{_quoted(e.payload)}"/>')
        elif e.kind == "inline":
            out.append(f"<InlineBinary>{values.b64encode(e.payload)}</InlineBinary>")
        out.append("</DicomAttribute>")


@lru_cache(maxsize=8192)
def _opening(tag: int, vr: str) -> str:
    name = keyword(tag)
    opening = f'<DicomAttribute tag="{tag:08X}" vr="{vr}"'
    return f'{opening} keyword="{name}"' if name else opening


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot carry some characters DICOM text may hold (e.g. FORM FEED in LT, PS3.5
    6.1.3); they become U+FFFD. JSON carries them unchanged."""
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _text(vr: str, v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return _escape(v)
    if isinstance(v, float):
        number = values.float_out(vr, v)
        return number if isinstance(number, str) else repr(number)
    return str(v)


def _person_name(out: list[str], groups: tuple[str, str, str] | None) -> None:
    for group_name, group in zip(PN_GROUPS, groups or (), strict=False):
        # Components beyond the fifth stay in NameSuffix so the text survives unchanged.
        components = group.split("^", 4)
        if not any(components):
            continue
        out.append(f"<{group_name}>")
        for component_name, component in zip(_COMPONENT_NAMES, components, strict=False):
            if component:
                out.append(f"<{component_name}>{_escape(component)}</{component_name}>")
        out.append(f"</{group_name}>")


def _children(node: etree._Element, where: str) -> list[etree._Element]:
    """Element children; comments and PIs are ignored, text other than whitespace is not."""
    if node.text and node.text.strip():
        raise invalid(where, f"unexpected text {node.text.strip()[:40]!r}")
    out = []
    for child in node:
        if child.tail and child.tail.strip():
            raise invalid(where, f"unexpected text {child.tail.strip()[:40]!r}")
        if isinstance(child.tag, str):
            out.append(child)
    return out


def _local(tag: str) -> str:
    return etree.QName(tag).localname if tag.startswith("{") else tag


def _header(node: etree._Element, parent: str) -> tuple[str, int, str, str | None]:
    """A DicomAttribute's place in messages, tag, VR and private creator, checked."""
    where = child_where(parent, node.get("tag", "DicomAttribute"))
    unknown = set(node.attrib) - _ATTRIBUTE_ATTRS
    if unknown:
        raise invalid(where, f"unknown attribute(s) {', '.join(sorted(unknown))}")
    tag = values.parse_tag(node.get("tag"), where)
    vr = values.parse_vr(node.get("vr"), where)
    creator = node.get("privateCreator")
    if creator is not None and not creator.strip():
        raise invalid(where, "empty privateCreator")
    return where, tag, vr, creator


def _attribute(node: etree._Element, parent: str) -> Parsed:
    """A DicomAttribute of values, bulk data or nothing, read whole (it holds no Items)."""
    where, tag, vr, creator = _header(node, parent)
    children = _children(node, where)
    if not children:
        return Parsed(tag, vr, creator, "empty", None, where)
    kinds = {child.tag for child in children}
    if len(kinds) > 1:
        raise invalid(where, f"mixes {', '.join(sorted(_local(k) for k in kinds))}")
    kind = kinds.pop()
    if kind == _VALUE:
        if vr in BINARY_VRS or vr in ("SQ", "PN"):
            raise invalid(where, f"Value elements are not allowed for VR {vr}")
        texts = [
            values.parse_text_value(vr, _leaf_text(v, f"{where}.Value[{n}]"), f"{where}.Value[{n}]")
            for n, v in _numbered(children, where, "Value")
        ]
        return Parsed(tag, vr, creator, "values", texts, where)
    if kind == _PERSON_NAME:
        if vr != "PN":
            raise invalid(where, f"PersonName elements are not allowed for VR {vr}")
        names = [
            _parse_person_name(p, f"{where}.PersonName[{n}]")
            for n, p in _numbered(children, where, "PersonName")
        ]
        return Parsed(tag, vr, creator, "values", names, where)
    if kind in (_BULK_DATA, _INLINE_BINARY):
        if len(children) > 1:
            raise invalid(where, f"more than one {_local(kind)}")
        if kind == _BULK_DATA:
            return Parsed(tag, vr, creator, "uri", _bulk_uri(children[0], vr, where), where)
        if vr not in BINARY_VRS:
            raise invalid(where, f"InlineBinary is not allowed for VR {vr}")
        text = "".join(_leaf_text(children[0], where).split())
        return Parsed(tag, vr, creator, "inline", values.decode_base64(text, where), where)
    raise invalid(where, f"unexpected element {kind!r} in DicomAttribute")


def _numbered(children: list[etree._Element], where: str, what: str) -> list[tuple[int, etree._Element]]:
    """The children in the order of their number attributes, each with its number."""
    marked = [(child.get("number"), set(child.attrib) != {"number"}, child) for child in children]
    return list(enumerate(_in_order(marked, where, what), 1))


def _in_order(marked: list[tuple[str | None, bool, _T]], where: str, what: str) -> list[_T]:
    """PS3.19 A.1.5: number runs 1..n with neither gaps nor repeats. Each entry is a number
    attribute, whether the element had other attributes too, and what it was read as."""
    by_number: dict[int, _T] = {}
    for text, others, value in marked:
        if text is None or _NUMBER.fullmatch(text) is None:
            raise invalid(where, f"{what} number {text!r} is not a positive integer")
        if int(text) in by_number:
            raise invalid(where, f'duplicate {what} number="{text}"')
        by_number[int(text)] = value
        if others:
            raise invalid(where, f"{what} allows only the number attribute")
    highest = max(by_number)
    missing = sorted(set(range(1, highest + 1)) - set(by_number))
    if missing:
        raise invalid(where, f'{what} number="{highest}" given without number {", ".join(map(str, missing))}')
    return [by_number[number] for number in sorted(by_number)]


def _leaf_text(node: etree._Element, where: str) -> str:
    if len(node) or set(node.attrib) - {"number"}:
        raise invalid(where, f"{_local(node.tag)} must hold only text")
    return node.text or ""


def _bulk_uri(node: etree._Element, vr: str, where: str) -> str:
    if vr not in BULK_DATA_VRS:
        raise invalid(where, f"BulkData is not allowed for VR {vr}")
    if len(node) or set(node.attrib) - {"uri", "uuid"}:
        raise invalid(where, "BulkData takes only a uri or uuid attribute")
    uri, uuid = node.get("uri"), node.get("uuid")
    if uri:
        return uri
    if uuid:
        # PS3.19 A.1.5: uuid names the bulk data when no uri is given; hand it on as a URN.
        return uuid if uuid.lower().startswith("urn:uuid:") else f"urn:uuid:{uuid}"
    raise invalid(where, "BulkData without uri or uuid")


def _parse_person_name(node: etree._Element, where: str) -> str | None:
    groups = dict.fromkeys(_GROUPS, "")
    seen: set[str] = set()
    for group in _children(node, where):
        if group.tag not in groups or group.tag in seen or group.attrib:
            raise invalid(where, f"unexpected, repeated or attributed {_local(group.tag)!r} in PersonName")
        seen.add(group.tag)
        components = dict.fromkeys(_COMPONENTS, "")
        for component in _children(group, where):
            if component.tag not in components or component.tag in seen:
                raise invalid(where, f"unexpected or repeated {_local(component.tag)!r} in {_local(group.tag)}")
            seen.add(component.tag)
            components[component.tag] = _leaf_text(component, where)
        seen.difference_update(_COMPONENTS)
        # PS3.5 6.2.1: components joined by '^', trailing empty ones dropped.
        groups[group.tag] = "^".join(components.values()).rstrip("^")
    return values.join_person_name(list(groups.values()))
