"""The Store Instances Response: the status a batch of outcomes gets, and one data set in JSON and XML."""

from __future__ import annotations

from pydicom.dataset import Dataset

from xdsi import errors
from xdsi.encoding import native_xml
from xdsi.services.store import Outcome, Status
from xdsi.web.stow_response import http_status, response_model, to_json, to_xml

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
    response = response_model(outcomes, ROOT)
    from_json = Dataset.from_json(to_json(response).decode())
    from_xml = native_xml.loads_dataset(to_xml(response))
    for parsed in (from_json, from_xml):
        assert parsed.RetrieveURL == f"{ROOT}/studies/1.2.3"
        assert [item.ReferencedSOPInstanceUID for item in parsed.ReferencedSOPSequence] == ["1.2.3.4.5", "1.2.3.4.6"]
        assert [item.get("WarningReason") for item in parsed.ReferencedSOPSequence] == [None, 0xB006]
        assert [(item.ReferencedSOPInstanceUID, item.FailureReason) for item in parsed.FailedSOPSequence] == [
            ("1.2.3.4.7", 0x0111)]
        assert [item.FailureReason for item in parsed.OtherFailuresSequence] == [0xA700]


def test_the_json_model_lists_attributes_in_tag_order_and_an_empty_retrieve_url_across_studies() -> None:
    """PS3.18 F.2: attributes sorted by tag; Retrieve URL present without a value when the stored
    instances belong to several studies (10.5.3: it names the study only when there is one)."""
    other_study = Outcome(Status.STORED, CT, "1.2.3.4.8", "1.2.9", "1.2.9.4")
    failed = Outcome(Status.FAILED, CT, "1.2.3.4.7", error=errors.DuplicateConflict("differs"))
    model = response_model([stored("1.2.3.4.5", coerced=True), other_study, failed,
                            Outcome(Status.FAILED, error=errors.NotDicom("not a PS3.10 file"))], ROOT)
    assert list(model) == ["00081190", "00081198", "00081199", "0008119A"]
    assert model["00081190"] == {"vr": "UR"}
    first = model["00081199"]["Value"][0]
    assert list(first) == ["00081150", "00081155", "00081190", "00081196"]
    assert first["00081196"] == {"vr": "US", "Value": [0xB000]}
    assert Dataset.from_json(to_json(model).decode()).ReferencedSOPSequence[1].RetrieveURL == (
        f"{ROOT}/studies/1.2.9/series/1.2.9.4/instances/1.2.3.4.8")
