"""Elements repeated from an earlier instance are handed back as walked then, and written the same.

The walk keeps the elements of the last instances (a series repeats most of them byte for byte):
what it hands back must be exactly what a walk of the new instance over pydicom's dataset gives.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.dicomfiles import make_dataset, to_bytes
from xdsi.dicom.parsing import Limits, RawElement, open_instance
from xdsi.encoding import dicom_json, raw_elements
from xdsi.encoding.bulkdata import BulkDataCallback, BulkDataRef, beyond_threshold
from xdsi.encoding.model import Encoded
from xdsi.encoding.raw_elements import encode_elements
from xdsi.encoding.walk import encode_instance, encode_tree

LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)


def _bulk(_placing: tuple[str, str, str]) -> BulkDataCallback:
    def uri(ref: BulkDataRef) -> str | None:
        return f"bulk/{ref.path[-1]:08X}" if beyond_threshold(ref.path[-1], ref.length, 1024) else None

    return uri


def walks(ds: Dataset, tmp_path: Path) -> tuple[list[Encoded], bytes, bytes]:
    """The quick walk of ``ds`` written to a file, its JSON, and the JSON of the dataset route."""
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    path.write_bytes(to_bytes(ds))
    with open_instance(path, LIMITS) as parsed:
        assert parsed.elements is not None
        quick = encode_instance(parsed, _bulk, 1024)
        by_dataset = encode_tree(parsed.dataset, _bulk(("", "", "")), 1024)
    return quick, dicom_json.dumps_encoded(quick), dicom_json.dumps_encoded(by_dataset)


def slice_of(series: str, number: int, **attributes: object) -> Dataset:
    return make_dataset(study_uid="1.2.3", series_uid=series, sop_uid=generate_uid(), InstanceNumber=number,
                        ImagePositionPatient=[0, 0, -2.5 * number], SliceThickness="2.50", **attributes)


def test_the_slices_of_a_series_share_their_repeated_elements_and_each_is_written_as_its_own(tmp_path: Path) -> None:
    series = generate_uid()
    first, first_json, first_reference = walks(slice_of(series, 1), tmp_path)
    second, second_json, second_reference = walks(slice_of(series, 2), tmp_path)
    assert first_json == first_reference and second_json == second_reference
    # Each slice is its own: position, number and UID are not taken from the first.
    assert b'"ImagePositionPatient"' not in second_json
    assert b"-5.0" in second_json and b"-2.5" not in second_json
    by_tag = {e.tag: e for e in first}
    shared = [e for e in second if by_tag.get(e.tag) is e]
    # The patient, study and image description of the first slice are handed back, not walked again.
    assert {0x00100010, 0x00100020, 0x0020000D, 0x00280010} <= {e.tag for e in shared}
    assert 0x00080018 not in {e.tag for e in shared} and 0x00200013 not in {e.tag for e in shared}


def test_the_same_bytes_under_another_character_set_are_decoded_again(tmp_path: Path) -> None:
    name = "M\u00fcller^J\u00fcrgen"
    latin = slice_of(generate_uid(), 1, SpecificCharacterSet="ISO_IR 100")
    latin.PatientName = name
    cyrillic = slice_of(generate_uid(), 1, SpecificCharacterSet="ISO_IR 144")
    cyrillic.PatientName = name.encode("latin_1").decode("iso8859_5")  # the very same bytes on file
    _, latin_json, latin_reference = walks(latin, tmp_path)
    _, cyrillic_json, cyrillic_reference = walks(cyrillic, tmp_path)
    assert latin_json == latin_reference and cyrillic_json == cyrillic_reference
    assert name in latin_json.decode() and cyrillic.PatientName.family_name in cyrillic_json.decode()


def test_the_same_private_bytes_under_another_creator_keep_their_own_creator(tmp_path: Path) -> None:
    def with_creator(creator: str) -> Dataset:
        ds = slice_of(generate_uid(), 1)
        ds.private_block(0x0029, creator, create=True).add_new(0x10, "LO", "same value")
        return ds

    first, first_json, first_reference = walks(with_creator("VENDOR A"), tmp_path)
    second, second_json, second_reference = walks(with_creator("VENDOR B"), tmp_path)
    assert first_json == first_reference and second_json == second_reference
    assert {e.creator for e in first if e.tag == 0x00291010} == {"VENDOR A"}
    assert {e.creator for e in second if e.tag == 0x00291010} == {"VENDOR B"}


def test_the_kept_tables_stay_bounded_however_many_elements_are_walked() -> None:
    """A stream of values that never repeat (UIDs, times) must not grow the process's memory."""
    elements = [RawElement(0x00081155, "UI", 24, f"1.2.3.{n:019d}".encode()) for n in range(3 * 8192)]
    for start in range(0, len(elements), 1000):
        walked = encode_elements(elements[start:start + 1000], lambda _ref: None, 1024)
        assert walked is not None
        dicom_json.dumps_encoded(walked)
    assert 0 < len(raw_elements._kept) <= raw_elements._KEPT_ELEMENTS
    assert len(raw_elements._kept_ids) == len(raw_elements._kept)
    assert 0 < len(dicom_json._written) <= dicom_json._WRITTEN_ELEMENTS
