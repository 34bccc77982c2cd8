"""PS3.18 Annex F DICOM JSON Model: encoding rules, decoding rules, hostile input."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import time
import tracemalloc
from typing import Any

import orjson
import pytest
from pydicom import config, dcmread, dcmwrite
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from bench.stow_metadata import write_json_part
from xdsi.encoding.bulkdata import BulkDataRef
from xdsi.encoding.dicom_json import (
    WHOLE_DATASET_CHARS,
    DatasetTexts,
    Number,
    dataset_to_json,
    decimal_value,
    dumps,
    dumps_dataset,
    encoded_to_json,
    json_to_dataset,
    loads,
    loads_dataset,
    loads_fragment,
)
from xdsi.encoding.values import element_from_text
from xdsi.errors import InvalidRequest

from .conftest import Token, json_tokens, read_quietly


def _ds(*elements: tuple[int, str, Any]) -> Dataset:
    ds = Dataset()
    for tag, vr, value in elements:
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return ds


def _charset_file(name: str) -> str:
    return next(p for p in get_charset_files() if p.endswith("/" + name))


def _round_trip(ds: Dataset) -> Dataset:
    return loads_dataset(dumps_dataset(ds))


# --- structure -------------------------------------------------------------------------------


def test_members_are_uppercase_tags_in_ascending_order_with_vr() -> None:
    ds = _ds((0x0020000D, "UI", "1.2.3"), (0x00100010, "PN", "Doe^John"), (0x0008103E, "LO", "chest"))
    obj = dataset_to_json(ds)
    assert list(obj) == ["0008103E", "00100010", "0020000D"]
    assert all(set(attr) <= {"vr", "Value"} and "vr" in attr for attr in obj.values())


def test_group_length_file_meta_and_trailing_padding_are_left_out() -> None:
    ds = _ds((0x00080000, "UL", 42), (0x00080060, "CS", "CT"), (0xFFFCFFFC, "OB", b"\0\0"))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert dataset_to_json(ds) == {"00080060": {"vr": "CS", "Value": ["CT"]}}


def test_zero_length_element_has_only_vr() -> None:
    ds = _ds((0x00100020, "LO", ""), (0x00280030, "DS", None), (0x00081140, "SQ", []), (0x7FE00010, "OB", b""))
    assert dataset_to_json(ds) == {
        "00081140": {"vr": "SQ"},
        "00100020": {"vr": "LO"},
        "00280030": {"vr": "DS"},
        "7FE00010": {"vr": "OB"},
    }
    back = _round_trip(ds)
    assert sorted(back.keys()) == sorted(ds.keys()) and not any(e.value for e in back)


def test_empty_value_among_several_is_null_and_comes_back_empty() -> None:
    ds = _ds((0x00080008, "CS", ["ORIGINAL", "", "AXIAL"]), (0x00280030, "DS", ["1.5", "", "2"]))
    obj = json_tokens(dumps_dataset(ds))
    assert obj["00080008"]["Value"] == ["ORIGINAL", None, "AXIAL"]
    assert obj["00280030"]["Value"] == [Token("1.5"), None, Token("2")]
    back = _round_trip(ds)
    assert list(back.ImageType) == ["ORIGINAL", "", "AXIAL"]
    assert [str(v) for v in back.PixelSpacing] == ["1.5", "", "2"]


def test_sequence_items_are_objects_and_an_empty_item_is_empty_object() -> None:
    item = _ds((0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2"))
    ds = _ds((0x00081140, "SQ", Sequence([item, Dataset()])))
    assert dataset_to_json(ds)["00081140"] == {
        "vr": "SQ",
        "Value": [{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}}, {}],
    }
    back = _round_trip(ds)
    assert len(back[0x00081140].value) == 2 and len(back[0x00081140].value[1]) == 0


# --- value types -----------------------------------------------------------------------------


def test_person_name_groups_only_non_empty() -> None:
    names = ["Yamada^Tarou=山田^太郎=やまだ^たろう", "=山田^太郎", "", "Doe^John"]
    ds = _ds((0x00100010, "PN", names))
    assert dataset_to_json(ds)["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"},
        {"Ideographic": "山田^太郎"},
        None,
        {"Alphabetic": "Doe^John"},
    ]
    assert [str(v) for v in _round_trip(ds).PatientName] == names


def test_phonetic_without_ideographic_keeps_the_group_positions() -> None:
    back = json_to_dataset({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B", "Phonetic": "P^Q"}]}})
    assert str(back.PatientName) == "A^B==P^Q"


def test_at_values_are_eight_uppercase_hex_digits() -> None:
    ds = _ds((0x00209165, "AT", [0x00100010, 0x7FE00010]))
    assert dataset_to_json(ds)["00209165"]["Value"] == ["00100010", "7FE00010"]
    assert list(_round_trip(ds)[0x00209165].value) == [0x00100010, 0x7FE00010]


# PS3.18 F.2.3 with RFC 8259 section 6: a number when the text is one, the text itself as the token.
NUMBER_TEXTS = ["42", "-7", "0", "-0", "1.5", "-0.25", "1.50", "5.000000", "1e+20", "1E5", "1.5e-3", "12345678901234",
                "9007199254740993", "123456789012345678901234567890"]
# What JSON cannot carry as a number: its grammar has no '+', no leading zeros, no bare '.', no
# NaN or Infinity; 1e999 overflows every binary64 reader.
STRING_TEXTS = ["+5", "05", "007", ".5", "5.", "-.5", "1e", "1e+", "1.5E", "NaN", "nan", "inf", "Infinity",
                "-Infinity", "0x10", "1,5", "1 5", "--1", "1e999", "-1e999", "abc"]


INTEGER_TEXTS = [t for t in NUMBER_TEXTS if t.lstrip("-").isdigit()]


@pytest.mark.parametrize("text", NUMBER_TEXTS)
def test_a_ds_json_number_text_is_its_own_token(text: str) -> None:
    assert decimal_value("DS", text) == Number(text)


@pytest.mark.parametrize("text", STRING_TEXTS)
@pytest.mark.parametrize("vr", ["DS", "IS"])
def test_a_text_json_cannot_carry_as_a_number_is_a_string(vr: str, text: str) -> None:
    assert decimal_value(vr, text) == text


@pytest.mark.parametrize("text", NUMBER_TEXTS)
def test_an_is_is_a_number_when_its_text_is_a_json_integer(text: str) -> None:
    assert decimal_value("IS", text) == (Number(text) if text in INTEGER_TEXTS else text)


@pytest.mark.parametrize(("vr", "text", "expected"), [
    ("DS", " 5 ", Number("5")), ("DS", "  1.50", Number("1.50")), ("IS", " -12 ", Number("-12")),
    ("DS", "+3  ", "+3"), ("DS", " .5", ".5"), ("IS", " 1.5 ", "1.5"),
])
def test_leading_and_trailing_spaces_are_not_significant(vr: str, text: str, expected: Number | str) -> None:
    assert decimal_value(vr, text) == expected


@pytest.mark.parametrize("vr", ["DS", "IS"])
@pytest.mark.parametrize("text", NUMBER_TEXTS + STRING_TEXTS)
def test_ds_and_is_go_out_as_numbers_exactly_when_json_has_them(vr: str, text: str) -> None:
    ds = Dataset()
    ds.add(DataElement(0x00180050, vr, text, already_converted=True, validation_mode=config.IGNORE))
    data = dumps_dataset(ds)
    (value,) = json_tokens(data)["00180050"]["Value"]
    number = text in (NUMBER_TEXTS if vr == "DS" else INTEGER_TEXTS)
    assert value == text and (type(value) is Token) == number
    assert (f'"Value":[{text}]' if number else f'"Value":["{text}"]').encode() in data
    # pydicom itself rewrites IS texts beyond the PS3.5 range or that are not integers.
    if vr == "DS" or (number and abs(int(text)) < 2**31):
        assert str(_round_trip(ds)[0x00180050].value) == text


def test_multiple_values_each_follow_the_rule() -> None:
    ds = Dataset()
    ds.add(DataElement(0x00280030, "DS", ["1", " 2.5", "+3", "", "5.000000 "], validation_mode=config.IGNORE))
    data = dumps_dataset(ds)
    assert data == b'{"00280030":{"vr":"DS","Value":[1,2.5,"+3",null,5.000000]}}'
    assert json_tokens(data)["00280030"]["Value"] == [Token("1"), Token("2.5"), "+3", None, Token("5.000000")]
    assert [str(v) for v in _round_trip(ds).PixelSpacing] == ["1", "2.5", "+3", "", "5.000000"]


def test_a_backslash_separated_value_field_is_split_before_the_rule() -> None:
    ds = read_quietly(get_testdata_file("CT_small.dcm"))
    ds.add(DataElement(0x00280030, "DS", "1\\2.5\\+3", validation_mode=config.IGNORE))
    assert b'"00280030":{"vr":"DS","Value":[1,2.5,"+3"]}' in dumps_dataset(ds)


def test_ds_and_is_sent_as_numbers_by_clients() -> None:
    back = json_to_dataset(
        {
            "00180050": {"vr": "DS", "Value": [2, 0.1, 0.1234567890123456789]},
            "00200013": {"vr": "IS", "Value": [12]},
        }
    )
    assert [str(v) for v in back.SliceThickness] == ["2", "0.1", "0.12345678901235"]
    assert back.InstanceNumber == 12


def test_numbers_parsed_elsewhere_are_still_read_by_value() -> None:
    """json_to_dataset is public: data parsed by another reader (plain floats and ints) is read by value."""
    back = json_to_dataset(orjson.loads(b'{"00280030": {"vr": "DS", "Value": [5, 1.5e3]}, '
                                        b'"00200013": {"vr": "IS", "Value": [7]}}'))
    assert [float(v) for v in back.PixelSpacing] == [5.0, 1500.0] and back.InstanceNumber == 7


@pytest.mark.parametrize(("token", "text"), [("5", "5"), ("1.5e3", "1.5e3"), ("5.000000", "5.000000"), ("-0", "-0"),
                                             ("0.1234567890123456789", "0.1234567890123456789")])
def test_a_ds_number_a_client_sends_keeps_its_text(token: str, text: str) -> None:
    back = loads_dataset(f'{{"00180050": {{"vr": "DS", "Value": [{token}]}}}}')
    assert str(back[0x00180050].value) == text


@pytest.mark.parametrize(("token", "value"), [("12", 12), ("-0", 0), ("2147483647", 2147483647)])
def test_an_is_number_a_client_sends_keeps_its_text(token: str, value: int) -> None:
    back = loads_dataset(f'{{"00200013": {{"vr": "IS", "Value": [{token}]}}}}')
    assert back.InstanceNumber == value and str(back[0x00200013].value) == token


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("UV", 2**53 - 1, 2**53 - 1),
        ("UV", 2**53, "9007199254740992"),
        ("UV", 2**64 - 1, "18446744073709551615"),
        ("SV", -(2**53 - 1), -(2**53 - 1)),
        ("SV", -(2**63), "-9223372036854775808"),
    ],
)
def test_sv_uv_are_strings_beyond_two_to_the_53(vr: str, value: int, expected: Any) -> None:
    ds = _ds((0x00720082, vr, value))
    assert dataset_to_json(ds)["00720082"]["Value"] == [expected]
    assert _round_trip(ds)[0x00720082].value == value


def test_float_values_are_shortest_exact_numbers_and_non_finite_strings() -> None:
    ds = _ds(
        (0x00189352, "FL", [struct.unpack("<f", struct.pack("<f", 0.1))[0], -53.2, math.inf]),
        (0x00460044, "FD", [0.1, math.nan, -math.inf]),
    )
    obj = dataset_to_json(ds)
    assert obj["00189352"]["Value"] == [0.1, -53.2, "Infinity"]
    assert obj["00460044"]["Value"][0] == 0.1 and obj["00460044"]["Value"][1:] == ["NaN", "-Infinity"]
    back = _round_trip(ds)
    assert struct.pack("<3f", *back[0x00189352].value) == struct.pack("<3f", *ds[0x00189352].value)
    assert struct.pack("<3d", *back[0x00460044].value) == struct.pack("<3d", *ds[0x00460044].value)


def test_binary_vrs_are_inline_base64_of_the_little_endian_value_field() -> None:
    ds = read_quietly(get_testdata_file("MR_small_bigendian.dcm"))
    little = read_quietly(get_testdata_file("MR_small.dcm"))
    inline = dataset_to_json(ds)["7FE00010"]
    assert inline["vr"] == "OW"
    assert base64.b64decode(inline["InlineBinary"]) == little.PixelData


def test_encapsulated_pixel_data_inline_is_the_whole_value_field() -> None:
    ds = read_quietly(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    data = base64.b64decode(dataset_to_json(ds)["7FE00010"]["InlineBinary"])
    assert data.startswith(b"\xfe\xff\x00\xe0") and data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    back = _round_trip(ds)
    assert back[0x7FE00010].is_undefined_length and back.PixelData == ds.PixelData


def test_private_elements_keep_their_real_tags() -> None:
    ds = _ds(
        (0x00090010, "LO", "ACME 1"),
        (0x00091001, "LO", "x"),
        (0x00090011, "LO", "OTHER"),
        (0x00091101, "US", 7),
    )
    obj = dataset_to_json(ds)
    assert list(obj) == ["00090010", "00090011", "00091001", "00091101"]
    back = _round_trip(ds)
    assert back[0x00091101].value == 7 and back[0x00090011].value == "OTHER"


def test_un_is_kept_even_for_a_known_tag() -> None:
    back = json_to_dataset({"00100010": {"vr": "UN", "InlineBinary": base64.b64encode(b"Doe^John").decode()}})
    assert back[0x00100010].VR == "UN" and back[0x00100010].value == b"Doe^John"


# --- bulk data -------------------------------------------------------------------------------


def test_callback_sees_path_vr_and_length_of_each_candidate() -> None:
    icon = _ds((0x00280010, "US", 2), (0x7FE00010, "OB", b"\1\2\3\4"), (0x00284000, "LT", ""))
    ds = _ds(
        (0x00080060, "CS", "OT"),
        (0x00880200, "SQ", Sequence([icon])),
        (0x00181030, "LO", "x" * 60),
        (0x00185100, "CS", "HFS"),
        (0x00204000, "LT", "a long comment"),
    )
    offered: list[BulkDataRef] = []

    def take_binary(ref: BulkDataRef) -> str | None:
        offered.append(ref)
        return "https://archive.test/icon" if ref.vr == "OB" else None

    obj = dataset_to_json(ds, take_binary)
    assert offered == [
        BulkDataRef((0x00204000,), "LT", 14),
        BulkDataRef((0x00880200, 1, 0x00280010), "US", 2),
        BulkDataRef((0x00880200, 1, 0x7FE00010), "OB", 4),
    ]
    assert obj["00880200"]["Value"][0]["7FE00010"] == {"vr": "OB", "BulkDataURI": "https://archive.test/icon"}
    assert obj["00204000"] == {"vr": "LT", "Value": ["a long comment"]}


def test_bulk_data_uri_resolves_through_the_loader_for_binary_numeric_and_text() -> None:
    obj = {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
        "00204000": {"vr": "LT", "BulkDataURI": "u:text"},
        "00280106": {"vr": "US", "BulkDataURI": "u:us"},
        "7FE00010": {"vr": "OW", "BulkDataURI": "u:pixels"},
    }
    blobs = {"u:text": "Jérôme".encode("latin-1"), "u:us": struct.pack("<2H", 1, 65535), "u:pixels": b"\0\1" * 4}
    seen: list[tuple[str, str]] = []

    def load(uri: str, vr: str) -> bytes:
        seen.append((uri, vr))
        return blobs[uri]

    back = json_to_dataset(obj, load)
    assert back.ImageComments == "Jérôme"
    assert list(back[0x00280106].value) == [1, 65535]
    assert back.PixelData == b"\0\1" * 4
    assert sorted(seen) == [("u:pixels", "OW"), ("u:text", "LT"), ("u:us", "US")]


# --- dumps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "SC_rgb_rle_2frame.dcm"])
def test_every_reader_reads_the_output_alike(name: str) -> None:
    data = dumps_dataset(dcmread(get_testdata_file(name)))
    assert json.loads(data) == orjson.loads(data)
    assert loads_fragment(data) == loads(data)


def test_orjson_output_is_byte_identical_without_fractions() -> None:
    data = dumps_dataset(read_quietly(_charset_file("chrH31.dcm")))
    assert json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ":")).encode("utf-8") == data


def test_several_data_sets_are_one_array() -> None:
    # PS3.18 F.2.1: multiple results are one top-level array, as QIDO-RS answers them.
    data = dumps([dataset_to_json(_ds((0x00100020, "LO", "1"))), dataset_to_json(_ds((0x00100020, "LO", "2")))])
    assert json.loads(data) == [
        {"00100020": {"vr": "LO", "Value": ["1"]}},
        {"00100020": {"vr": "LO", "Value": ["2"]}},
    ]


# --- character sets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "patient_name"),
    [
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),
        ("chrGreek.dcm", "Διονυσιος"),
        ("chrX2.dcm", "Wang^XiaoDong=王^小东"),
    ],
)
def test_unicode_out_charset_kept_and_rewritten_strings_identical(name: str, patient_name: str) -> None:
    ds = read_quietly(_charset_file(name))
    data = dumps_dataset(ds)
    assert patient_name.split("=")[-1].encode("utf-8") in data
    back = loads_dataset(data)
    assert back.SpecificCharacterSet == ds.SpecificCharacterSet
    assert str(back.PatientName) == patient_name
    buffer = io.BytesIO()
    back.file_meta = FileMetaDataset()
    back.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dcmwrite(buffer, back, enforce_file_format=False)
    assert str(dcmread(io.BytesIO(buffer.getvalue()), force=True).PatientName) == patient_name


def test_text_the_declared_charset_cannot_hold_switches_to_utf8() -> None:
    back = json_to_dataset(
        {
            "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller", "Ideographic": "山田"}]},
        }
    )
    assert back.SpecificCharacterSet == "ISO_IR 192"


def test_non_ascii_without_charset_gets_utf8_and_ascii_gets_nothing() -> None:
    def patient(name: str) -> dict[str, Any]:
        return {"00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]}}

    assert json_to_dataset(patient("Ærø")).SpecificCharacterSet == "ISO_IR 192"
    assert "SpecificCharacterSet" not in json_to_dataset(patient("Doe"))


def test_latin1_text_under_latin1_keeps_the_declared_charset() -> None:
    back = json_to_dataset(
        {
            "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Buc^Jérôme"}]},
        }
    )
    assert back.SpecificCharacterSet == "ISO_IR 100"


def test_file_meta_elements_go_to_file_meta() -> None:
    back = json_to_dataset(
        {"00020010": {"vr": "UI", "Value": ["1.2.840.10008.1.2.4.50"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}
    )
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50" and 0x00020010 not in back


# --- hostile and malformed input -------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for _ in range(levels):
        obj = {"00081140": {"vr": "SQ", "Value": [obj]}}
    return obj


_MALFORMED = [
        (b'{"00100010": {"vr": "PN"', "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b"[{}]", "expected a JSON object"),
        (b'{"0010001": {"vr": "LO"}}', "0010001: tag '0010001' is not 8 hexadecimal digits"),
        (b'{"0010001G": {"vr": "LO"}}', "not 8 hexadecimal digits"),
        (b'{"00100020": {"vr": "XX"}}', "00100020: VR 'XX' is not a PS3.5"),
        (b'{"00100020": {"Value": ["1"]}}', '00100020: missing "vr"'),
        (b'{"00100020": {"vr": "LO", "Value": "1"}}', "00100020: Value must be an array, got str"),
        (b'{"00100020": {"vr": "LO", "value": ["1"]}}', "unknown member(s) 'value'"),
        (b'{"00100020": ["LO"]}', "attribute must be a JSON object"),
        (b'{"00100020": {"vr": "LO", "Value": [1]}}', "00100020.Value[0]: LO value must be a string"),
        (b'{"00280010": {"vr": "US", "Value": [70000]}}', "US value 70000 is outside 0..65535"),
        (b'{"00280010": {"vr": "US", "Value": [true]}}', "is not an integer"),
        (b'{"00280010": {"vr": "US", "Value": [null]}}', "null is not a US value"),
        (b'{"00280010": {"vr": "US", "Value": ["12"]}}', "US value must be a number"),
        (b'{"00200013": {"vr": "IS", "Value": [1.5]}}', "IS value 1.5 is not a integer"),
        (b'{"00209165": {"vr": "AT", "Value": ["0010"]}}', "tag '0010' is not 8 hexadecimal digits"),
        (b'{"00100010": {"vr": "PN", "Value": ["Doe^John"]}}', "a PN value must be an object"),
        (b'{"00100010": {"vr": "PN", "Value": [{"Alphabetical": "Doe"}]}}', "unknown PN group(s) 'Alphabetical'"),
        (b'{"7FE00010": {"vr": "OB", "InlineBinary": "not base64!"}}', "InlineBinary is not valid base64"),
        (b'{"00100020": {"vr": "LO", "InlineBinary": "AAAA"}}', "InlineBinary is not allowed for VR LO"),
        (b'{"7FE00010": {"vr": "OB", "Value": [1]}}', "carried by InlineBinary or BulkDataURI"),
        (b'{"00100020": {"vr": "LO", "BulkDataURI": "u:x"}}', "BulkDataURI is not allowed for VR LO"),
        (b'{"7FE00010": {"vr": "OB", "InlineBinary": "AAAA", "BulkDataURI": "u:x"}}', "at most one of"),
        (b'{"00081140": {"vr": "SQ", "Value": [5]}}', "00081140[1]: a data set must be a JSON object"),
        (b'{"00081140": {"vr": "SQ", "Value": [{"00020010": {"vr": "UI"}}]}}', "File Meta Information"),
        (b'{"00081140": {"vr": "SQ", "Value": [{"0008115X": {"vr": "UI"}}]}}', "00081140[1].0008115X"),
        (b'{"00204000": {"vr": "LT", "Value": ["a", "b"]}}', "VR LT has a single value, got 2"),
        (b'{"00189352": {"vr": "FL", "Value": [1e39]}}', "FL value 1e+39 is out of range"),
        (b'{"00180050": {"vr": "DS", "Value": [NaN]}}', "malformed JSON"),
        (b'{"00180050": {"vr": "DS", "Value": [1e999]}}', "malformed JSON"),
        (b'{"00180050": {"vr": "DS", "Value": [01]}}', "malformed JSON"),
        (b'{"00100020": {"vr": "LO", "Value": ["\\ud800"]}}', "malformed JSON"),
        (b'{"00200013": {"vr": "IS", "Value": [1e3]}}', "IS value 1000.0 is not a integer"),
]


@pytest.mark.parametrize(("data", "message"), _MALFORMED)
def test_malformed_json_is_an_invalid_request(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        loads_dataset(data)
    assert message in str(raised.value)


def test_bulk_data_uri_without_a_loader_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"7FE00010: BulkDataURI 'u:x' given but no bulk data"):
        loads_dataset(b'{"7FE00010": {"vr": "OB", "BulkDataURI": "u:x"}}')


def test_bulk_data_uri_the_loader_does_not_know_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"7FE00010: unknown BulkDataURI 'u:x'"):
        loads_dataset(b'{"7FE00010": {"vr": "OB", "BulkDataURI": "u:x"}}', lambda uri, vr: {}[uri])


def test_bulk_data_of_a_partial_number_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not a whole number of US values"):
        loads_dataset(b'{"00280106": {"vr": "US", "BulkDataURI": "u:x"}}', lambda uri, vr: b"\1\2\3")


def test_ten_thousand_levels_of_json_text_fail_fast() -> None:
    text = '{"00081140":{"vr":"SQ","Value":[' * 10_000 + "{}" + "]}}" * 10_000
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        loads_dataset(text)
    assert time.perf_counter() - started < 1


def test_nesting_orjson_accepts_but_the_token_reader_cannot_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="malformed JSON: nested too deeply"):
        loads_dataset("[" * 1000 + "]" * 1000)


def test_ten_thousand_levels_of_python_objects_stop_at_the_depth_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="sequences nested deeper than 64 levels"):
        json_to_dataset(_deep(10_000))
    assert time.perf_counter() - started < 1


def test_sixty_four_levels_are_accepted() -> None:
    assert len(json_to_dataset(_deep(64))) == 1


# --- elements from index values (QIDO-RS results) ----------------------------------------------


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("PN", "Yamada^Tarou=山田^太郎",
         {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}]}),
        ("PN", "=^=やまだ", {"vr": "PN", "Value": [{"Ideographic": "^", "Phonetic": "やまだ"}]}),
        ("IS", 7, {"vr": "IS", "Value": [7]}),
        ("IS", "0012", {"vr": "IS", "Value": [12]}),
        ("US", 3, {"vr": "US", "Value": [3]}),
        ("CS", "ORIGINAL\\\\AXIAL", {"vr": "CS", "Value": ["ORIGINAL", "", "AXIAL"]}),
        ("DA", "", {"vr": "DA"}),
        ("UI", None, {"vr": "UI"}),
    ],
)
def test_an_index_value_is_one_element_as_search_results_carry_it(vr: str, value: Any, expected: object) -> None:
    element = element_from_text(0x00100010, vr, value)
    assert json.loads(dumps(encoded_to_json([element]))) == {"00100010": expected}


_A = b'{"00100020": {"vr": "LO", "Value": ["A"]}, "00180050": {"vr": "DS", "Value": [5.000000]}}'
_B = b'{"00100020": {"vr": "LO", "Value": ["B\\u00e9"]}}'


@pytest.mark.parametrize(
    "data",
    [b"[" + _A + b"," + _B + b"]", b" \n[ " + _A + b" ,\r\n\t" + _B + b" ] \n", _A, b" " + _A + b" ", b"[]", b"[ ]",
     "[{\"00100010\": {\"vr\": \"PN\", \"Value\": [{\"Alphabetic\": \"\u5c71\u7530\"}]}}]".encode()],
)
@pytest.mark.parametrize("whole_below", [0, WHOLE_DATASET_CHARS], ids=["by-element", "whole"])
def test_a_metadata_part_yields_the_data_sets_json_to_dataset_builds(data: bytes, whole_below: int) -> None:
    """One data set at a time, each built as ``json_to_dataset`` builds it from the parsed part."""
    whole = loads(data)
    expected = whole if isinstance(whole, list) else [whole]
    texts = DatasetTexts(data, whole_below=whole_below)
    assert all(text.whole == bool(whole_below) for text in texts)
    assert len(texts) == len(expected)
    assert [_written(t.to_dataset()) for t in texts] == [_written(json_to_dataset(e)) for e in expected]
    assert [_written(t.to_dataset()) for t in texts] == [_written(json_to_dataset(e)) for e in expected]  # again


def _written(ds: Dataset) -> bytes:
    out = io.BytesIO()
    dcmwrite(out, ds, implicit_vr=False, little_endian=True)
    return out.getvalue()


def _part_dataset(data: bytes) -> Dataset:
    [text] = DatasetTexts(data, whole_below=0)
    return text.to_dataset()


def test_only_data_sets_longer_than_the_bound_are_read_element_by_element() -> None:
    small = b'{"00100020": {"vr": "LO", "Value": ["A"]}}'
    large = b'{"00100020": {"vr": "LO", "Value": ["' + b"A" * 64 + b'"]}}'
    texts = DatasetTexts(b"[" + large + b"," + small + b"]", whole_below=len(small))
    assert [text.whole for text in texts] == [False, True]
    assert [text.to_dataset().PatientID for text in texts] == ["A" * 64, "A"]


_SEMANTIC = [(data, message) for data, message in _MALFORMED if not message.startswith("malformed JSON")
             and data.startswith(b"{")]


@pytest.mark.parametrize(("data", "message"), _SEMANTIC)
def test_a_data_set_of_a_part_is_refused_as_json_to_dataset_refuses_it(data: bytes, message: str) -> None:
    """Read element by element, a data set meets the same checks, in the same words."""
    with pytest.raises(InvalidRequest) as whole:
        loads_dataset(data)
    with pytest.raises(InvalidRequest) as streamed:
        _part_dataset(data)
    assert message in str(streamed.value)
    assert str(streamed.value) == str(whole.value)


@pytest.mark.parametrize(("data", "message"), [(d, m) for d, m in _MALFORMED if m.startswith("malformed JSON")])
@pytest.mark.parametrize("whole_below", [0, WHOLE_DATASET_CHARS], ids=["by-element", "whole"])
def test_a_part_holding_malformed_json_is_refused_whole(data: bytes, message: str, whole_below: int) -> None:
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        DatasetTexts(data, whole_below=whole_below)


def _sequence(levels: int, *, vr_first: bool = True) -> bytes:
    opening = '{"00081140":{"vr":"SQ","Value":[' if vr_first else '{"00081140":{"Value":['
    closing = "]}}" if vr_first else '],"vr":"SQ"}}'
    return (opening * levels + "{}" + closing * levels).encode()


@pytest.mark.parametrize("vr_first", [True, False], ids=["vr-first", "value-first"])
def test_sixty_four_levels_of_a_part_are_read_and_sixty_five_refused(vr_first: bool) -> None:
    assert _written(_part_dataset(_sequence(64, vr_first=vr_first))) == _written(json_to_dataset(_deep(64)))
    with pytest.raises(InvalidRequest, match="sequences nested deeper than 64 levels"):
        _part_dataset(_sequence(65, vr_first=vr_first))


def test_ten_thousand_levels_of_a_part_are_refused_whole_and_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        DatasetTexts(_sequence(10_000), whole_below=0)
    assert time.perf_counter() - started < 1


def test_a_repeated_key_keeps_its_first_place_and_last_value_as_json_does() -> None:
    data = (b'{"00100020": {"vr": "LO", "Value": ["first"]}, "00100010": {"vr": "PN"},'
            b' "00081140": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["1.2"]}}]},'
            b' "00100020": {"vr": "LO", "Value": ["last"]},'
            b' "00081140": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.3"]}}]}}')
    ds = _part_dataset(data)
    assert _written(ds) == _written(loads_dataset(data))
    assert ds.PatientID == "last"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.3"


def test_a_lone_surrogate_in_a_key_is_malformed() -> None:
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        DatasetTexts(b'[{"\\ud800": {"vr": "LO"}}]', whole_below=0)


@pytest.mark.parametrize(
    "data",
    [
        b'{"00081140": {"vr": "SQ", "Value": [5]}, "00080016": {"vr": "UI", "Value": ["1.2.3"]},'
        b' "00080018": {"vr": "UI", "Value": ["1.2.3.4"]}}',
        b'{"00080018": {"vr": "UI", "Value": ["1.2.3.4"]}, "00280010": {"vr": "US", "Value": [70000]},'
        b' "00081140": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["9"]}}]},'
        b' "00080016": {"vr": "UI", "Value": ["1.2.3"]}}',
    ],
)
def test_a_data_set_that_cannot_be_built_is_still_named(data: bytes) -> None:
    [text] = DatasetTexts(b"[" + data + b"]", whole_below=0)
    with pytest.raises(InvalidRequest):
        text.to_dataset()
    assert text.identity() == ("1.2.3", "1.2.3.4")


def test_identity_of_a_data_set_without_uids_is_unknown() -> None:
    [text] = DatasetTexts(b'[{"00080016": {"vr": "UI"}, "00080018": {"vr": "UI", "Value": [null]}}]', whole_below=0)
    assert text.identity() == (None, None)


def test_contour_data_is_written_as_the_text_it_came_in() -> None:
    """DS values read element by element are written as the client's own text, and read back as their numbers."""
    values = ", ".join(f"{n / 10:.1f}" for n in range(3000))
    contour_item = '{"30060050": {"vr": "DS", "Value": [' + values + "]}}"
    data = ('{"30060039": {"vr": "SQ", "Value": [{"30060040": {"vr": "SQ", "Value": [' + contour_item
            + "]}}]}}").encode()
    contour = _part_dataset(data)[0x30060039][0][0x30060040][0]
    raw = contour._dict[0x30060050]
    assert isinstance(raw, RawDataElement)
    text = "\\".join(f"{n / 10:.1f}" for n in range(3000)).encode()
    assert raw.value == text + b" " * (len(text) % 2)
    assert list(contour.ContourData) == [float(f"{n / 10:.1f}") for n in range(3000)]


def test_a_large_data_set_read_element_by_element_costs_a_small_multiple_of_its_text() -> None:
    """Its numbers are kept as their Value Field from the moment each element is read: reading and
    building 2 MB of contour data peaks at about twice its text (10.7 times with a string a value)."""
    part = io.BytesIO()
    write_json_part(part, 2_000_000, 1, "1.2.3")
    [text] = DatasetTexts(part.getvalue(), whole_below=0)
    tracemalloc.start()
    try:
        ds = text.to_dataset()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(len(roi[0x30060040].value) for roi in ds[0x30060039]) > 500
    assert peak < 4 * len(part.getvalue()), f"peak {peak / len(part.getvalue()):.1f} times the text"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" + _A + b"," + _B, "malformed JSON: expected ',' or ']'"),
        (b"[" + _A + b",]", "malformed JSON"),
        (b"[" + _A + b" " + _B + b"]", "malformed JSON: expected ',' or ']'"),
        (b"[" + _A + b"," + _B + b"] x", "malformed JSON: unexpected content"),
        (_A + _B, "malformed JSON: unexpected content"),
        (b"[" + _A + b', {"00180050": {"vr": "DS", "Value": [NaN]}}]', "malformed JSON"),
        (b"[" + _A + b', {"00100020": {"vr": "LO", "Value": ["\\ud800"]}}]', "malformed JSON"),
        (b"[" + _A + b', {"00100020": {"vr": "LO", "Value": ["\xff"]}}]', "malformed JSON: not UTF-8 at byte"),
        (b"\xef\xbb\xbf" + _A, "malformed JSON"),
        (b"[" * 100_000, "malformed JSON"),
        (b"[" + _A + b", 5]", "holds data set objects"),
        (b'"text"', "holds data set objects"),
        (b"[[" + _A + b"]]", "holds data set objects"),
        (b"", "malformed JSON"),
    ],
)
@pytest.mark.parametrize("whole_below", [0, WHOLE_DATASET_CHARS], ids=["by-element", "whole"])
def test_a_malformed_metadata_part_is_refused_whole(data: bytes, message: str, whole_below: int) -> None:
    """Refused when read, before any of its data sets is parsed for storing: one bad data set
    late in a part must not leave the earlier ones stored."""
    with pytest.raises(InvalidRequest) as raised:
        DatasetTexts(data, whole_below=whole_below)
    assert message in str(raised.value)
