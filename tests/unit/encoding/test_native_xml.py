"""PS3.19 Annex A.1 Native DICOM Model: encoding rules, private blocks, hardened decoding."""

from __future__ import annotations

import base64
import io
import time
import tracemalloc
from typing import Any

import pytest
from lxml import etree
from pydicom import config
from pydicom.data import get_charset_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bench.stow_metadata import write_xml_part
from xdsi.encoding.native_xml import (
    NAMESPACE,
    dumps_dataset,
    element_to_dataset,
    loads_dataset,
    safe_parser,
)
from xdsi.errors import InvalidRequest

from .conftest import read_quietly

NS = {"d": NAMESPACE}
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def _ds(*elements: tuple[int, str, Any]) -> Dataset:
    ds = Dataset()
    for tag, vr, value in elements:
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return ds


def dataset_to_element(ds: Dataset, bulk_data: Any = None) -> etree._Element:
    """The document as a tree, read back with the parser client XML gets."""
    return etree.fromstring(dumps_dataset(ds, bulk_data, xml_declaration=False), safe_parser())


def _attr(root: etree._Element, tag: str) -> etree._Element:
    (node,) = root.xpath(f"d:DicomAttribute[@tag='{tag}']", namespaces=NS)
    return node


def _doc(body: str) -> bytes:
    return f'<NativeDicomModel xmlns="{NAMESPACE}">{body}</NativeDicomModel>'.encode()


def _a(tag: str, vr: str, inner: str = "", creator: str | None = None) -> str:
    """One DicomAttribute, as text."""
    extra = f' privateCreator="{creator}"' if creator is not None else ""
    return f'<DicomAttribute tag="{tag}" vr="{vr}"{extra}>{inner}</DicomAttribute>'


def _v(*texts: str) -> str:
    """Value elements numbered from 1."""
    return "".join(f'<Value number="{n}">{t}</Value>' for n, t in enumerate(texts, 1))


# --- structure -------------------------------------------------------------------------------


def test_root_is_namespaced_with_xml_space_preserve(relax_ng: etree.RelaxNG) -> None:
    root = dataset_to_element(_ds((0x00100020, "LO", "  padded  ")))
    assert root.tag == f"{{{NAMESPACE}}}NativeDicomModel"
    assert root.get(XML_SPACE) == "preserve"
    assert relax_ng.validate(root)


def test_declaration_is_optional() -> None:
    ds = _ds((0x00100020, "LO", "1"))
    assert dumps_dataset(ds).startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert dumps_dataset(ds, xml_declaration=False).startswith(b"<NativeDicomModel")


def test_attribute_carries_tag_vr_and_keyword_and_no_keyword_when_unknown() -> None:
    root = dataset_to_element(_ds((0x00100020, "LO", "1"), (0x00089998, "LO", "who knows")))
    assert dict(_attr(root, "00100020").attrib) == {"tag": "00100020", "vr": "LO", "keyword": "PatientID"}
    assert dict(_attr(root, "00089998").attrib) == {"tag": "00089998", "vr": "LO"}


def test_values_are_numbered_and_an_empty_value_is_an_empty_element() -> None:
    root = dataset_to_element(_ds((0x00080008, "CS", ["ORIGINAL", "", "AXIAL"]), (0x00100020, "LO", "")))
    values = _attr(root, "00080008").findall("d:Value", NS)
    assert [(v.get("number"), v.text) for v in values] == [("1", "ORIGINAL"), ("2", None), ("3", "AXIAL")]
    assert len(_attr(root, "00100020")) == 0
    assert list(loads_dataset(etree.tostring(root)).ImageType) == ["ORIGINAL", "", "AXIAL"]


def test_at_values_and_numbers_as_text() -> None:
    root = dataset_to_element(
        _ds(
            (0x00209165, "AT", [0x00100010, 0x7FE00010]),
            (0x00189352, "FL", [0.5, float("nan")]),
            (0x00280010, "US", 512),
        )
    )
    assert [v.text for v in _attr(root, "00209165")] == ["00100010", "7FE00010"]
    assert [v.text for v in _attr(root, "00189352")] == ["0.5", "NaN"]
    assert [v.text for v in _attr(root, "00280010")] == ["512"]


def test_person_name_groups_and_components_in_order() -> None:
    ds = _ds((0x00100010, "PN", ["Yamada^Tarou^M^Dr^Jr=山田^太郎=やまだ^たろう", "", "^John"]))
    node = _attr(dataset_to_element(ds), "00100010")
    first, empty, given_only = node.findall("d:PersonName", NS)
    assert [etree.QName(g).localname for g in first] == ["Alphabetic", "Ideographic", "Phonetic"]
    assert [(etree.QName(c).localname, c.text) for c in first[0]] == [
        ("FamilyName", "Yamada"),
        ("GivenName", "Tarou"),
        ("MiddleName", "M"),
        ("NamePrefix", "Dr"),
        ("NameSuffix", "Jr"),
    ]
    assert [c.text for c in first[1]] == ["山田", "太郎"]
    assert empty.get("number") == "2" and len(empty) == 0
    assert [(etree.QName(c).localname, c.text) for c in given_only[0]] == [("GivenName", "John")]
    back = loads_dataset(dumps_dataset(ds))
    assert [str(v) for v in back.PatientName] == [str(v) for v in ds.PatientName]


def test_sequence_items_numbered_and_empty_item_kept() -> None:
    ds = _ds((0x00081140, "SQ", Sequence([_ds((0x00081150, "UI", "1.2.3")), Dataset()])))
    items = _attr(dataset_to_element(ds), "00081140").findall("d:Item", NS)
    assert [(i.get("number"), len(i)) for i in items] == [("1", 1), ("2", 0)]
    back = loads_dataset(dumps_dataset(ds))
    assert [len(item) for item in back.ReferencedImageSequence] == [1, 0]


def test_bulk_data_and_inline_binary() -> None:
    ds = _ds((0x7FE00010, "OB", b"\x01\x02\x03\x04"), (0x00282000, "OB", b"icc!"))
    root = dataset_to_element(ds, lambda ref: "https://archive.test/px" if ref.path == (0x7FE00010,) else None)
    assert dict(_attr(root, "7FE00010")[0].attrib) == {"uri": "https://archive.test/px"}
    assert base64.b64decode(_attr(root, "00282000")[0].text) == b"icc!"
    back = element_to_dataset(root, lambda uri, vr: b"\x01\x02\x03\x04")
    assert back.PixelData == b"\x01\x02\x03\x04" and back.ICCProfile == b"icc!"


def test_bulk_data_uuid_is_handed_to_the_loader_as_a_urn() -> None:
    doc = _doc(_a("7FE00010", "OB", '<BulkData uuid="1b4e28ba-2fa1-11d2-883f-0016d3cca427"/>'))
    asked: list[str] = []
    loads_dataset(doc, lambda uri, vr: asked.append(uri) or b"\0\0")
    assert asked == ["urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"]


def test_characters_xml_cannot_hold_become_replacement_characters(relax_ng: etree.RelaxNG) -> None:
    data = dumps_dataset(_ds((0x00204000, "LT", "page 1\x0cpage 2\r\nend")))
    assert relax_ng.validate(etree.fromstring(data))
    assert loads_dataset(data).ImageComments == "page 1\ufffdpage 2\r\nend"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("chrH31.dcm", "山田"),
        ("chrI2.dcm", "洪"),
        ("chrGreek.dcm", "Διονυσιος"),
        ("chrRuss.dcm", "Люкceмбypг"),
    ],
)
def test_unicode_from_charset_files(name: str, text: str) -> None:
    ds = read_quietly(next(p for p in get_charset_files() if p.endswith("/" + name)))
    data = dumps_dataset(ds)
    assert text.encode("utf-8") in data
    back = loads_dataset(data)
    assert str(back.PatientName) == str(ds.PatientName)
    assert back.SpecificCharacterSet == ds.SpecificCharacterSet


# --- private elements ------------------------------------------------------------------------


def _private() -> Dataset:
    return _ds(
        (0x00090010, "LO", "ACME 1"),
        (0x00090012, "LO", "OTHER"),
        (0x00091001, "LO", "acme value"),
        (0x00091010, "LO", "same tag text as the creator"),
        (0x00091201, "US", 7),
        (0x00091200, "SH", "other zero"),
    )


def test_private_elements_are_written_gggg00ee_with_private_creator(relax_ng: etree.RelaxNG) -> None:
    root = dataset_to_element(_private())
    assert relax_ng.validate(root)
    written = [(a.get("tag"), a.get("privateCreator"), a.get("keyword")) for a in root]
    assert written == [
        ("00090010", None, None),
        ("00090012", None, None),
        ("00090001", "ACME 1", None),
        ("00090010", "ACME 1", None),
        ("00090000", "OTHER", None),
        ("00090001", "OTHER", None),
    ]


def test_private_elements_go_back_to_the_blocks_their_creators_hold() -> None:
    back = loads_dataset(dumps_dataset(_private()))
    assert {int(t): e.value for t, e in back.items()} == {
        0x00090010: "ACME 1",
        0x00090012: "OTHER",
        0x00091001: "acme value",
        0x00091010: "same tag text as the creator",
        0x00091200: "other zero",
        0x00091201: 7,
    }


def test_private_element_before_its_creator_in_the_document_still_reuses_the_block() -> None:
    back = loads_dataset(_doc(_a("00290001", "LO", _v("v"), "LATE") + _a("00290011", "LO", _v("LATE"))))
    assert sorted(int(t) for t in back.keys()) == [0x00290011, 0x00291101]  # noqa: SIM118 - iterating a Dataset yields elements


def test_creator_missing_from_the_document_gets_the_first_free_block() -> None:
    back = loads_dataset(
        _doc(
            _a("00290010", "LO", _v("TAKEN"))
            + _a("00290005", "US", _v("5"), "NEW")
            + _a("00290006", "US", _v("6"), "NEW")
            + _a("00290001", "LO", _v("t"), "TAKEN")
        )
    )
    assert back[0x00290011].value == "NEW" and back[0x00290011].VR == "LO"
    assert (back[0x00291105].value, back[0x00291106].value, back[0x00291001].value) == (5, 6, "t")


def test_private_element_without_a_creator_keeps_its_tag() -> None:
    ds = _ds((0x00091001, "LO", "orphan"))
    assert dict(dataset_to_element(ds)[0].attrib) == {"tag": "00091001", "vr": "LO"}
    assert loads_dataset(dumps_dataset(ds))[0x00091001].value == "orphan"


def test_no_free_private_block_is_refused() -> None:
    creators = "".join(_a(f"0029{b:04X}", "LO", _v(f"C{b}")) for b in range(0x10, 0x100))
    extra = _a("00290001", "LO", _v("x"), "ONE MORE")
    with pytest.raises(InvalidRequest, match="no free private block in group 0029"):
        loads_dataset(_doc(creators + extra))


# --- hostile and malformed input -------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
<DicomAttribute tag="00100010" vr="LO"><Value number="1">&lol9;</Value></DicomAttribute>
</NativeDicomModel>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE NativeDicomModel [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
<DicomAttribute tag="00100020" vr="LO"><Value number="1">&xxe;</Value></DicomAttribute>
</NativeDicomModel>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE NativeDicomModel SYSTEM "http://attacker.test/evil.dtd">
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM"/>"""


@pytest.mark.parametrize(
    "doc", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["billion-laughs", "xxe", "dtd"]
)
def test_any_doctype_is_refused_fast_without_expanding_or_fetching(doc: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="DOCTYPE") as raised:
        loads_dataset(doc)
    assert time.perf_counter() - started < 1
    assert "root:" not in str(raised.value)


def test_safe_parser_settings() -> None:
    parser = safe_parser()
    tree = etree.fromstring(EXTERNAL_ENTITY, parser)
    assert "root:" not in etree.tostring(tree).decode()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<NativeDicomModel", "malformed XML"),
        (b'<NativeDicomModel xmlns="urn:wrong"/>', "expected NativeDicomModel in namespace"),
        (b"<NativeDicomModel/>", "expected NativeDicomModel in namespace"),
        (_doc("<Foo/>"), "unexpected element"),
        (_doc(_a("0010001", "LO")), "0010001: tag '0010001' is not 8 hexadecimal digits"),
        (_doc(_a("00100020", "XX")), "00100020: VR 'XX' is not a PS3.5"),
        (_doc('<DicomAttribute tag="00100020"/>'), "VR None is not"),
        (_doc('<DicomAttribute tag="00100020" vr="LO" color="red"/>'), "unknown attribute(s) color"),
        (
            _doc(_a("00080008", "CS", '<Value number="3">AXIAL</Value>')),
            '00080008: Value number="3" given without number 1, 2',
        ),
        (_doc(_a("00080008", "CS", _v("A") + _v("B"))), 'duplicate Value number="1"'),
        (_doc(_a("00080008", "CS", '<Value number="0">A</Value>')), "number '0'"),
        (_doc(_a("00080008", "CS", "<Value>A</Value>")), "number None"),
        (_doc(_a("00080008", "CS", _v("A") + '<Item number="1"/>')), "mixes Item, Value"),
        (_doc(_a("00280010", "US", _v("big"))), "not an integer"),
        (_doc(_a("00280010", "US", _v("-1"))), "outside 0..65535"),
        (_doc(_a("00189352", "FL", _v("1_0"))), "is not a number"),
        (_doc(_a("00100010", "PN", _v("Doe"))), "not allowed for VR PN"),
        (
            _doc(_a("00100010", "PN", '<PersonName number="1"><Nickname/></PersonName>')),
            "00100010.PersonName[1]: unexpected",
        ),
        (_doc(_a("7FE00010", "OB", "<InlineBinary>!!!</InlineBinary>")), "not valid base64"),
        (_doc(_a("00100020", "LO", "<InlineBinary>AAAA</InlineBinary>")), "not allowed for VR LO"),
        (_doc(_a("7FE00010", "OB", "<BulkData/>")), "BulkData without uri or uuid"),
        (_doc(_a("7FE00010", "OB", '<BulkData uri="u:x"/>')), "no bulk data was supplied"),
        (_doc(_a("00100020", "LO", "stray")), "unexpected text 'stray'"),
        (_doc(_a("00100020", "LO", _v("a"), "X")), "privateCreator on a non-private tag 00100020"),
        (_doc(_a("00100020", "LO") * 2), "duplicate attribute 00100020"),
        (
            _doc(
                _a(
                    "00081140",
                    "SQ",
                    '<Item number="1">' + _a("00081150", "UI", '<Value number="2">1.2</Value>') + "</Item>",
                )
            ),
            '00081140[1].00081150: Value number="2" given without number 1',
        ),
    ],
)
def test_malformed_xml_is_an_invalid_request(doc: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        loads_dataset(doc)
    assert message in str(raised.value)


def _deep_xml(levels: int) -> bytes:
    open_tags = '<DicomAttribute tag="00081140" vr="SQ"><Item number="1">' * levels
    return _doc(open_tags + "</Item></DicomAttribute>" * levels)


def test_ten_thousand_levels_of_xml_text_fail_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="malformed XML"):
        loads_dataset(_deep_xml(10_000))
    assert time.perf_counter() - started < 1


def test_a_tree_deeper_than_the_sequence_limit_stops_at_it() -> None:
    # 100 levels are 200 elements deep: within what libxml2 parses (256), beyond what the model allows.
    root = etree.Element(f"{{{NAMESPACE}}}NativeDicomModel")
    node = root
    for _ in range(100):
        attr = etree.SubElement(node, f"{{{NAMESPACE}}}DicomAttribute", tag="00081140", vr="SQ")
        node = etree.SubElement(attr, f"{{{NAMESPACE}}}Item", number="1")
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="sequences nested deeper than 64 levels"):
        element_to_dataset(root)
    assert time.perf_counter() - started < 1


def test_sixty_four_levels_are_accepted() -> None:
    assert len(loads_dataset(_deep_xml(64))) == 1


def test_doctype_in_utf16_is_refused_after_parsing() -> None:
    with pytest.raises(InvalidRequest, match="DOCTYPE"):
        loads_dataset(EXTERNAL_ENTITY.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16"))
    with pytest.raises(InvalidRequest, match="DOCTYPE"):
        loads_dataset(EXTERNAL_DTD.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16"))


def test_a_large_data_set_costs_a_small_multiple_of_its_text() -> None:
    """Its numbers are kept as their Value Field as each attribute ends: reading and building 2 MB of
    contour data peaks at about one and a half times its text (3.4 times with a string a value)."""
    document = io.BytesIO()
    write_xml_part(document, 2_000_000, "1.2.3")
    tracemalloc.start()
    try:
        ds = loads_dataset(document.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ds[0x30060039][0][0x30060040].value) > 200
    assert peak < 2.5 * len(document.getvalue()), f"peak {peak / len(document.getvalue()):.1f} times the text"
