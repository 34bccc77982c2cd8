"""THE table from domain errors to wire answers: HTTP status and STOW-RS FailureReason.

Protocol layers read it; nothing below them does. A new protocol (RAD-69's RegistryError
codes) adds its column here, beside the others.

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


# PS3.18 Table I.2-2 ranges: A7xx out of resources, A9xx data set does not match SOP class,
# Cxxx cannot understand, C122 transfer syntax not supported, 0110 processing failure,
# 0122 SOP class not supported.
TABLE: dict[type[errors.XdsiError], WireError] = {
    errors.XdsiError: WireError(500, 0x0110),
    errors.InvalidRequest: WireError(400, 0xC000),
    errors.UnsupportedMediaType: WireError(415, 0xC000),
    errors.RequestTooLarge: WireError(413, 0xA700),
    errors.NotAcceptable: WireError(406, 0xC000),
    errors.NotFound: WireError(404, 0x0110),
    errors.InstanceRejected: WireError(409, 0x0110),
    errors.NotDicom: WireError(400, 0xC000),
    errors.MalformedDicom: WireError(400, 0xC000),
    errors.MissingAttribute: WireError(409, 0xA900),
    errors.BadAttribute: WireError(409, 0xA900),
    errors.UnsupportedTransferSyntax: WireError(409, 0xC122),
    errors.UnsupportedSOPClass: WireError(409, 0x0122),
    errors.InstanceTooLarge: WireError(413, 0xA700),
    # Choice: PS3.7 C.4.2 "Duplicate SOP Instance" (0111); PS3.18 defines no duplicate code.
    errors.DuplicateConflict: WireError(409, 0x0111),
    errors.HierarchyConflict: WireError(409, 0x0110),
    # Choice: 0xC409 in the Cxxx range, as dcm4chee answers a study-targeted store mismatch.
    errors.StudyMismatch: WireError(409, 0xC409),
    errors.RepositoryBusy: WireError(503, 0xA700),
    errors.StorageFull: WireError(503, 0xA700),
    # RFC 9110 15.5.2 / 15.5.4: no credentials or refused ones, 401 with a challenge; a known caller
    # without the right, 403. Neither reaches a STOW-RS instance, so the FailureReason is nominal.
    errors.Unauthenticated: WireError(401, 0x0110),
    errors.Forbidden: WireError(403, 0x0110),
}


def lookup(error: errors.XdsiError) -> WireError:
    """The row for ``error``: its own class, else the nearest ancestor that has one."""
    for cls in type(error).__mro__:
        row = TABLE.get(cls)
        if row is not None:
            return row
    return TABLE[errors.XdsiError]
