"""THE table from domain errors to wire answers: HTTP status, STOW-RS FailureReason and the
RegistryError code of RAD-69 and WADO-WS (whose SOAP fault, Sender or Receiver, follows the
HTTP status class).

Protocol layers read it; nothing below them does.

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
    registry_error: str = "XDSRepositoryError"  # RegistryError errorCode of a RAD-69 / WADO-WS document
    soap_subcode: tuple[str, str] | None = None  # (namespace, local name) of a SOAP 1.2 fault Subcode

    @property
    def soap_fault(self) -> str:
        """SOAP 1.2 Part 1 5.4.6: the client's fault (Sender) or the server's (Receiver)."""
        return "Sender" if self.http_status < 500 else "Receiver"


# RegistryError codes: ITI TF-2b 3.43.4.2.3 (XDS*) and the WADO-WS codes of PS3.18 2017b 6.4.4
# (urn:dicom:wado:00NN). Choice: an unknown document is XDSMissingDocument, as dcm4chee-arc answers
# it; XDSRepositoryError only where no more precise code exists (ITI's own rule).
WADO_CANNOT_ANONYMIZE = "urn:dicom:wado:0001"  # unable to anonymize the requested instance
WADO_OUT_OF_RESOURCES = "urn:dicom:wado:0005"  # size or count exceeds resource limits
WADO_NOT_PROVIDABLE = "urn:dicom:wado:0007"  # cannot be provided in the requested format or syntax
WADO_INVALID_PARAMETER = "urn:dicom:wado:0012"  # invalid parameter value in request
WADO_UNSUPPORTED_PARAMETER = "urn:dicom:wado:0013"  # unsupported parameter in request

# OASIS WSS 1.1 SOAP Message Security 12, Tables 12-1 and 12-2: the fault codes (SOAP 1.2
# Subcodes) of a refused security header. All are the sender's fault (SOAP 1.2 Sender, HTTP 400).
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def _wsse(code: str) -> WireError:
    return WireError(400, 0xC000, "XDSRepositoryError", (WSSE, code))


# PS3.18 Table I.2-2 ranges: A7xx out of resources, A9xx data set does not match SOP class,
# Cxxx cannot understand, C122 transfer syntax not supported, 0110 processing failure,
# 0122 SOP class not supported.
TABLE: dict[type[errors.XdsiError], WireError] = {
    errors.XdsiError: WireError(500, 0x0110, "XDSRepositoryError"),
    errors.InvalidRequest: WireError(400, 0xC000, WADO_INVALID_PARAMETER),
    errors.UnsupportedMediaType: WireError(415, 0xC000, WADO_NOT_PROVIDABLE),
    # RFC 9110 15.5.20: 421, this server will not answer authoritatively for that host.
    errors.MisdirectedRequest: WireError(421, 0xC000, WADO_INVALID_PARAMETER),
    errors.UnsupportedParameter: WireError(400, 0xC000, WADO_UNSUPPORTED_PARAMETER),
    errors.RequestTooLarge: WireError(413, 0xA700, WADO_OUT_OF_RESOURCES),
    errors.NotAcceptable: WireError(406, 0xC000, WADO_NOT_PROVIDABLE),
    errors.AnonymizationUnavailable: WireError(406, 0xC000, WADO_CANNOT_ANONYMIZE),
    errors.NotFound: WireError(404, 0x0110, "XDSMissingDocument"),
    errors.UnknownRepository: WireError(404, 0x0110, "XDSUnknownRepositoryId"),
    errors.UnknownCommunity: WireError(404, 0x0110, "XDSUnknownCommunity"),
    errors.InstanceRejected: WireError(409, 0x0110),
    errors.NotDicom: WireError(400, 0xC000),
    errors.MalformedDicom: WireError(400, 0xC000),
    errors.MissingAttribute: WireError(409, 0xA900),
    errors.BadAttribute: WireError(409, 0xA900),
    errors.UnsupportedTransferSyntax: WireError(409, 0xC122),
    errors.UnsupportedSOPClass: WireError(409, 0x0122),
    errors.InstanceTooLarge: WireError(413, 0xA700, WADO_OUT_OF_RESOURCES),
    # Choice: PS3.7 C.4.2 "Duplicate SOP Instance" (0111); PS3.18 defines no duplicate code.
    errors.DuplicateConflict: WireError(409, 0x0111),
    errors.HierarchyConflict: WireError(409, 0x0110),
    # Choice: 0xC409 in the Cxxx range, as dcm4chee answers a study-targeted store mismatch.
    errors.StudyMismatch: WireError(409, 0xC409),
    errors.RepositoryBusy: WireError(503, 0xA700, "XDSRepositoryBusy"),
    errors.StorageFull: WireError(503, 0xA700, "XDSRepositoryOutOfResources"),
    errors.Overloaded: WireError(503, 0xA700, "XDSRepositoryBusy"),
    errors.UnsupportedXPath: WireError(400, 0xC000, WADO_UNSUPPORTED_PARAMETER),
    errors.SecurityRefused: _wsse("InvalidSecurity"),
    errors.InvalidSecurity: _wsse("InvalidSecurity"),
    errors.UnsupportedAlgorithm: _wsse("UnsupportedAlgorithm"),
    errors.UnsupportedSecurityToken: _wsse("UnsupportedSecurityToken"),
    errors.SecurityTokenUnavailable: _wsse("SecurityTokenUnavailable"),
    errors.InvalidSecurityToken: _wsse("InvalidSecurityToken"),
    errors.FailedAuthentication: _wsse("FailedAuthentication"),
    errors.FailedCheck: _wsse("FailedCheck"),
    errors.MessageExpired: _wsse("MessageExpired"),
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
