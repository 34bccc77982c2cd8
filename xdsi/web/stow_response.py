"""The Store Instances Response Module (PS3.18 Annex I) and the HTTP status of a store.

The store service says what became of each instance (``Outcome``); this module speaks it on
the wire. The response is built straight as the PS3.18 Annex F JSON model (a pydicom data set
and its encoder cost 0.2 ms per instance, as much as indexing it) and written as JSON, or
rendered from that model as PS3.19 XML by ``encoding``.
Choices where PS3.18 10.5.3 leaves room: 200 when every instance is stored without a Warning
Reason; 202 when some failed or carry one; 409 when none was stored. Retrieve URL (0008,1190)
names the study when all stored instances belong to one study, and is empty otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.datadict import tag_for_keyword

from xdsi import errormap
from xdsi.dicom.uids import is_valid_uid
from xdsi.encoding import dicom_json, native_xml
from xdsi.services.metadata import instance_path
from xdsi.services.store import Outcome, Status

# PS3.18 Table I.2-1 Warning Reason: the whole data set was discarded under the ignore policy.
ELEMENTS_DISCARDED = 0xB006
COERCION_OF_DATA_ELEMENTS = 0xB000
# A legacy UID (a zero-led component) has no fitting Warning Reason: B000 says values were coerced
# (they are kept as received), B006 that elements were discarded (none is), B007 that the data set
# does not match its SOP Class (UID syntax is a PS3.5 encoding rule, not an IOD constraint). Only
# the Warning header says it; the body then carrying no Warning Reason, the status stays 200.


def http_status(outcomes: Sequence[Outcome]) -> int:
    stored = [o for o in outcomes if o.status.succeeded]
    if not stored:
        return 409
    if len(stored) < len(outcomes) or any(_warning_reason(o) for o in stored):
        return 202
    return 200


def response_model(outcomes: Sequence[Outcome], root: str) -> dict[str, Any]:
    """The Store Instances Response in the JSON model; ``root`` is the public DICOMweb URL."""
    referenced, failed, other = [], [], []
    for outcome in outcomes:
        if outcome.status.succeeded:
            item = _sop(outcome)
            item[_RETRIEVE_URL] = _value("UR", _instance_url(root, outcome))
            reason = _warning_reason(outcome)
            if reason is not None:
                item[_WARNING_REASON] = _value("US", reason)
            referenced.append(item)
        elif is_valid_uid(outcome.sop_class_uid) and is_valid_uid(outcome.sop_instance_uid):
            # PS3.18 Table I.1-1: the item references the SOP Instance (both UIDs are Type 1).
            item = _sop(outcome)
            item[_FAILURE_REASON] = _value("US", _failure_reason(outcome))
            failed.append(item)
        else:
            # PS3.18 Table I.1-1: a failure that names no SOP Instance; no UID is made up.
            other.append({_FAILURE_REASON: _value("US", _failure_reason(outcome))})
    studies = {o.study_uid for o in outcomes if o.status.succeeded}
    # Keys in tag order, as PS3.18 F.2 and the XML rendering expect.
    model: dict[str, Any] = {
        _RETRIEVE_URL: _value("UR", f"{root}/studies/{studies.pop()}") if len(studies) == 1 else {"vr": "UR"},
    }
    for tag, items in ((_FAILED_SOP_SEQUENCE, failed), (_REFERENCED_SOP_SEQUENCE, referenced),
                       (_OTHER_FAILURES_SEQUENCE, other)):
        if items:
            model[tag] = {"vr": "SQ", "Value": items}
    return model


def to_json(response: dict[str, Any]) -> bytes:
    return dicom_json.dumps(response)


def to_xml(response: dict[str, Any]) -> bytes:
    return native_xml.dumps_encoded(dicom_json.encoded_from_json(response))


def warning_texts(outcomes: Sequence[Outcome]) -> list[str]:
    """Why each failed instance failed, then what was said of each stored one, in words, one line each.

    A stored instance's warnings (a legacy UID, an attribute the index keeps otherwise) have no
    Warning Reason of their own in PS3.18 Table I.2-1, so the words are all the client gets.
    """
    failures = [
        f"{o.sop_instance_uid or f'part {number}'}: {' '.join(o.reason.split())}"
        for number, o in enumerate(outcomes, 1)
        if o.status is Status.FAILED
    ]
    warnings = [
        f"{o.sop_instance_uid}: {text}"
        for o in outcomes
        if o.status.succeeded
        for text in o.warnings
    ]
    return failures + warnings


def _tag(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


_RETRIEVE_URL = _tag("RetrieveURL")
_FAILED_SOP_SEQUENCE = _tag("FailedSOPSequence")
_REFERENCED_SOP_SEQUENCE = _tag("ReferencedSOPSequence")
_OTHER_FAILURES_SEQUENCE = _tag("OtherFailuresSequence")
_SOP_CLASS = _tag("ReferencedSOPClassUID")
_SOP_INSTANCE = _tag("ReferencedSOPInstanceUID")
_WARNING_REASON = _tag("WarningReason")
_FAILURE_REASON = _tag("FailureReason")


def _value(vr: str, value: object) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def _sop(outcome: Outcome) -> dict[str, Any]:
    return {_SOP_CLASS: _value("UI", outcome.sop_class_uid), _SOP_INSTANCE: _value("UI", outcome.sop_instance_uid)}


def _instance_url(root: str, outcome: Outcome) -> str:
    return root + instance_path(outcome.study_uid or "", outcome.series_uid or "", outcome.sop_instance_uid or "")


def _warning_reason(outcome: Outcome) -> int | None:
    if outcome.status is Status.IGNORED:
        return ELEMENTS_DISCARDED
    if outcome.coerced:
        return COERCION_OF_DATA_ELEMENTS
    return None


def _failure_reason(outcome: Outcome) -> int:
    assert outcome.error is not None
    return errormap.lookup(outcome.error).failure_reason
