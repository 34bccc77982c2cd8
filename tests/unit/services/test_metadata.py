"""Metadata fragments and index keys read from the encoded walk instead of pydicom values."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pytest

from tests.dicomfiles import pydicom_files
from xdsi.dicom.attributes import index_keys
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.encoding import dicom_json, native_xml
from xdsi.errors import XdsiError
from xdsi.services.metadata import (
    EncodedAttributes,
    absolute_json_part,
    absolute_xml,
    bulk_data_path,
    encode_parsed,
    fragment,
    parse_bulk_data_path,
    xml_of,
)

# RFC 8259 section 6: what a JSON number is; IS, an integer string, goes out as a JSON integer.
JSON_GRAMMAR = {
    "DS": re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"),
    "IS": re.compile(r"-?(?:0|[1-9][0-9]*)"),
}
LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)


def _keys_or_error(source: object) -> object:
    try:
        return index_keys(source)  # type: ignore[arg-type]
    except XdsiError as exc:
        return type(exc)


@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_index_keys_from_the_encoded_walk_equal_those_from_pydicom(path: Path) -> None:
    try:
        with open_instance(path, LIMITS) as parsed, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoded = _keys_or_error(EncodedAttributes(encode_parsed(parsed, 1024)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = _keys_or_error(pydicom.dcmread(path))
    except XdsiError:
        return  # refused by the bounded parser: nothing to compare
    assert encoded == reference


QUICK: dict[str, bool] = {}


@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_the_quick_route_encodes_exactly_what_the_dataset_route_encodes(path: Path) -> None:
    """Elements and JSON from the raw header equal those from pydicom's dataset, byte for byte,
    and the XML built from that JSON equals the XML of the walk."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_instance(path, LIMITS) as parsed:
                quick = encode_parsed(parsed, 1024)
                QUICK[path.name] = "dataset" not in parsed.__dict__  # pydicom never parsed it
            with open_instance(path, LIMITS) as parsed:
                # The same interface, told the quick route read nothing: the dataset route.
                reference = encode_parsed(dataclasses.replace(parsed, elements=None), 1024)
        except XdsiError:
            return  # refused by the bounded parser: nothing to compare
    assert quick == reference
    assert fragment(quick) == fragment(reference)
    # XML is rendered from the cached JSON: it must be what the walk itself renders, and the
    # trusted reading of our own JSON must equal the checked reading of client JSON.
    assert xml_of(fragment(quick)) == native_xml.dumps_encoded(quick, xml_declaration=False)
    assert dicom_json.encoded_from_json(fragment(quick)) == dicom_json.encoded_from_json(
        dicom_json.loads(fragment(quick)))


def test_the_quick_route_reads_most_files_and_every_kind_the_benchmark_sends() -> None:
    assert len(QUICK) >= 200, "the comparison above must run first, over every file"
    assert sum(QUICK.values()) >= 0.6 * len(QUICK)
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_rgb_color.dcm", "examples_ybr_color.dcm",
                 "JPEG2000.dcm", "SC_rgb_rle.dcm", "emri_small_jpeg_2k_lossless.dcm"):
        assert QUICK[name], name


def test_fragments_carry_relative_bulk_data_uris_that_become_absolute() -> None:
    from pydicom.data import get_testdata_file

    with open_instance(get_testdata_file("CT_small.dcm"), LIMITS) as parsed:
        elements = encode_parsed(parsed, 1024)
    json_fragment = fragment(elements)
    xml_fragment = xml_of(json_fragment)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    path = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    [obj] = orjson.loads(b"[" + absolute_json_part(json_fragment, "https://pacs.example/dicom-web") + b"]")
    assert obj["7FE00010"]["BulkDataURI"] == f"https://pacs.example/dicom-web{path}/bulkdata/7FE00010"
    assert obj["00083002"]["Value"] == [str(ds.file_meta.TransferSyntaxUID)]
    assert obj["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
    assert f'<BulkData uri="https://pacs.example/dicom-web{path}/bulkdata/7FE00010"/>'.encode() in absolute_xml(
        xml_fragment, "https://pacs.example/dicom-web")


@pytest.mark.parametrize("path", [(0x7FE00010,), (0x00540016, 1, 0x00181072), (0x00081115, 12, 0x00081199, 3, 0x0042_0011)])
def test_bulk_data_paths_round_trip(path: tuple[int, ...]) -> None:
    assert parse_bulk_data_path(bulk_data_path(path)) == path


@pytest.mark.parametrize("text", ["", "7FE0001", "7FE00010/0/00181072", "7FE00010/1", "zzzzzzzz", "7FE00010/01/7FE00010"])
def test_bad_bulk_data_paths(text: str) -> None:
    assert parse_bulk_data_path(text) is None


class _Token(str):
    """A JSON number's exact text."""


def _decimal_values(obj: dict[str, Any], ds: pydicom.Dataset, where: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """(path, VR, value as read from the JSON, text pydicom holds) of every inline DS and IS value."""
    for key, attribute in obj.items():
        here = f"{where}.{key}" if where else key
        if attribute["vr"] == "SQ":
            for n, item in enumerate(attribute.get("Value", ())):
                yield from _decimal_values(item, ds[int(key, 16)].value[n], f"{here}[{n + 1}]")
        elif attribute["vr"] in JSON_GRAMMAR and "Value" in attribute:
            value = ds[int(key, 16)].value
            texts = [str(v) for v in (value if isinstance(value, pydicom.multival.MultiValue) else [value])]
            assert len(texts) == len(attribute["Value"]), here
            for n, (read, text) in enumerate(zip(attribute["Value"], texts, strict=True)):
                yield f"{here}[{n}]", attribute["vr"], read, text.strip(" ")


@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_ds_and_is_in_metadata_are_numbers_exactly_when_their_text_is_one(path: Path) -> None:
    """PS3.18 F.2.3: the token is the stored text itself, so nothing is rounded, and XML from
    the cached JSON still holds that text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_instance(path, LIMITS) as parsed:
                cached = fragment(encode_parsed(parsed, 1024))
        except XdsiError:
            return
        ds = pydicom.dcmread(path, force=True)
    body = b"[" + absolute_json_part(cached, "https://pacs.example/dicom-web") + b"]"
    [obj] = json.loads(body, parse_float=_Token, parse_int=_Token)
    xml = xml_of(cached).decode()
    for where, vr, read, text in _decimal_values(obj, ds):
        if not text:
            assert read is None, where
            continue
        number = JSON_GRAMMAR[vr].fullmatch(text) is not None and math.isfinite(float(text))
        assert read == text and isinstance(read, _Token) == number, f"{where} {vr} {text!r} sent as {read!r}"
        assert f">{text}</Value>" in xml, where


def test_the_corpus_has_ds_and_is_values_of_both_kinds() -> None:
    kinds: set[tuple[str, bool]] = set()
    for name in ("CT_small.dcm", "rtplan.dcm", "MR_small.dcm"):
        path = pydicom.data.get_testdata_file(name)
        with open_instance(path, LIMITS) as parsed:
            [obj] = json.loads(b"[" + absolute_json_part(fragment(encode_parsed(parsed, 1024)), "") + b"]",
                               parse_float=_Token, parse_int=_Token)
        kinds |= {(vr, isinstance(read, _Token)) for _w, vr, read, _t in _decimal_values(obj, pydicom.dcmread(path))}
    assert {("DS", True), ("IS", True)} <= kinds
