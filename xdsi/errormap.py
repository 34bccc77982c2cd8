"""THE table from domain errors to wire answers: HTTP status, STOW-RS FailureReason, RAD-69 code.

Looked up along the exception's class hierarchy, so a subclass without a row answers like
its parent. Codes cite their source; where the standard leaves a choice, the choice is noted.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsi import errors


@dataclass(frozen=True)
class WireError:
    http_status: int
    failure_reason: int  # PS3.18 Table I.2-2 (Store Instances Response FailureReason, US)
    registry_error: str  # RAD-69 / WADO-WS RegistryError errorCode (ITI TF-2 3.43; PS3.18-2017b 6.4.4)


# PS3.18 Table I.2-2 ranges: A7xx out of resources, A9xx data set does not match SOP class,
# Cxxx cannot understand, C122 transfer syntax not supported, 0110 processing failure,
# 0122 SOP class not supported.
TABLE: dict[type[errors.XdsiError], WireError] = {
    errors.XdsiError: WireError(500, 0x0110, "XDSRepositoryError"),
    errors.InvalidRequest: WireError(400, 0xC000, "urn:dicom:wado:0012"),
    errors.UnsupportedMediaType: WireError(415, 0xC000, "urn:dicom:wado:0006"),
    errors.RequestTooLarge: WireError(413, 0xA700, "urn:dicom:wado:0005"),
    errors.NotAcceptable: WireError(406, 0xC000, "urn:dicom:wado:0006"),
    errors.NotFound: WireError(404, 0x0110, "XDSMissingDocument"),
    errors.InstanceRejected: WireError(409, 0x0110, "XDSRepositoryError"),
    errors.NotDicom: WireError(400, 0xC000, "urn:dicom:wado:0012"),
    errors.MalformedDicom: WireError(400, 0xC000, "urn:dicom:wado:0012"),
    errors.MissingAttribute: WireError(409, 0xA900, "urn:dicom:wado:0009"),
    errors.BadAttribute: WireError(409, 0xA900, "urn:dicom:wado:0009"),
    errors.UnsupportedTransferSyntax: WireError(409, 0xC122, "urn:dicom:wado:0007"),
    errors.UnsupportedSOPClass: WireError(409, 0x0122, "urn:dicom:wado:0011"),
    errors.InstanceTooLarge: WireError(413, 0xA700, "urn:dicom:wado:0005"),
    # Choice: PS3.7 C.4.2 "Duplicate SOP Instance" (0111); PS3.18 defines no duplicate code.
    errors.DuplicateConflict: WireError(409, 0x0111, "XDSRepositoryError"),
    errors.HierarchyConflict: WireError(409, 0x0110, "urn:dicom:wado:0010"),
    # Choice: 0xC409 in the Cxxx range, as dcm4chee answers a study-targeted store mismatch.
    errors.StudyMismatch: WireError(409, 0xC409, "urn:dicom:wado:0010"),
    errors.RepositoryBusy: WireError(503, 0xA700, "XDSRepositoryBusy"),
    errors.StorageFull: WireError(503, 0xA700, "XDSRepositoryOutOfResources"),
}


def lookup(error: errors.XdsiError) -> WireError:
    """The row for ``error``: its own class, else the nearest ancestor that has one."""
    for cls in type(error).__mro__:
        row = TABLE.get(cls)  # type: ignore[call-overload]
        if row is not None:
            return row
    return TABLE[errors.XdsiError]
