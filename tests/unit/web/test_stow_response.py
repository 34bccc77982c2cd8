"""The Store Instances Response: the status a batch of outcomes gets, and one data set in JSON and XML."""

from __future__ import annotations

from pydicom.dataset import Dataset

from xdsi import errors
from xdsi.encoding import native_xml
from xdsi.services.store import Outcome, Status
from xdsi.web.stow_response import http_status, response_dataset, to_json, to_xml

CT = "1.2.840.10008.5.1.4.1.1.2"
ROOT = "http://pacs/dicom-web"


def stored(uid: str, status: Status = Status.STORED, **kwargs: object) -> Outcome:
    return Outcome(status, CT, uid, "1.2.3", "1.2.3.4", **kwargs)  # type: ignore[arg-type]


def test_the_status_says_whether_all_some_or_none_were_stored() -> None:
    failed = Outcome(Status.FAILED, error=errors.NotDicom("not a PS3.10 file"))
    assert http_status([stored("1.2.3.4.5")]) == 200
    assert http_status([stored("1.2.3.4.5"), failed]) == 202
    assert http_status([stored("1.2.3.4.5", Status.IGNORED)]) == 202
    assert http_status([stored("1.2.3.4.5", coerced=True)]) == 202
    assert http_status([failed]) == 409


def test_json_and_xml_carry_the_same_response() -> None:
    outcomes = [
        stored("1.2.3.4.5"),
        stored("1.2.3.4.6", Status.IGNORED),
        Outcome(Status.FAILED, CT, "1.2.3.4.7", error=errors.DuplicateConflict("differs")),
        Outcome(Status.FAILED, error=errors.RequestTooLarge("too large")),
    ]
    response = response_dataset(outcomes, ROOT)
    from_json = Dataset.from_json(to_json(response).decode())
    from_xml = native_xml.loads_dataset(to_xml(response))
    for parsed in (from_json, from_xml):
        assert parsed.RetrieveURL == f"{ROOT}/studies/1.2.3"
        assert [item.ReferencedSOPInstanceUID for item in parsed.ReferencedSOPSequence] == ["1.2.3.4.5", "1.2.3.4.6"]
        assert [item.get("WarningReason") for item in parsed.ReferencedSOPSequence] == [None, 0xB006]
        assert [(item.ReferencedSOPInstanceUID, item.FailureReason) for item in parsed.FailedSOPSequence] == [
            ("1.2.3.4.7", 0x0111)]
        assert [item.FailureReason for item in parsed.OtherFailuresSequence] == [0xA700]
