"""Domain errors raised by services, repository, encoders and DICOM code.

No HTTP status or SOAP fault lives here: ``errormap.py`` is the one table that turns these
into wire answers. The tree::

    XdsiError
    ├── InvalidRequest          the client asked for something malformed (bad UID, bad parameter)
    │   ├── InvalidUID          a UID that is not 1-64 ASCII digits and dots in non-empty components
    │   ├── UnsupportedMediaType  the request body's media type or content coding is not accepted
    │   ├── MisdirectedRequest  the Host header names a host this server does not answer for
    │   ├── UnsupportedParameter  a well-formed parameter this form of answer cannot honour
    │   └── InvalidXPath        a metadata filter that is not XPath 1.0 or names what the model lacks
    │       └── UnsupportedXPath  valid XPath outside the allowed subset (function, axis, variable)
    ├── RequestTooLarge         the request as a whole exceeds a configured limit
    │   └── XPathTooCostly      a metadata filter needs more work, or gives more, than allowed
    ├── NotAcceptable           nothing the resource offers matches the client's Accept
    │   └── AnonymizationUnavailable  a de-identified copy was asked of what the profile cannot de-identify
    ├── NotFound                the named study, series, instance or resource does not exist
    │   ├── UnknownRepository   a RAD-69 / WADO-WS document request names another repositoryUniqueId
    │   └── UnknownCommunity    … or another homeCommunityId
    ├── InstanceRejected        one instance cannot be stored; ``reason`` says why in words
    │   ├── NotDicom            not a PS3.10 file (no preamble and 'DICM' prefix)
    │   ├── MalformedDicom      truncated, inconsistent lengths, unparsable element, bad deflate
    │   ├── MissingAttribute    a required attribute (Study/Series/SOP Instance UID, SOP Class) is absent
    │   ├── BadAttribute        a required attribute has an invalid value (e.g. a UID with '/')
    │   ├── UnsupportedTransferSyntax
    │   ├── UnsupportedSOPClass
    │   ├── InstanceTooLarge    over ``max_instance_bytes`` or an inflate limit
    │   ├── DuplicateConflict   same SOP Instance UID, different content, policy ``reject``
    │   ├── HierarchyConflict   the UIDs place the instance under another study/series/patient
    │   └── StudyMismatch       a study-targeted store received an instance of another study
    ├── RepositoryBusy          the database stayed locked or unreachable past the retry budget
    ├── Overloaded              the request would take the process past a memory budget it shares
    ├── StorageFull             the blob store or database volume is out of space
    ├── Unauthenticated         no credentials, or credentials that do not prove who the caller is
    ├── Forbidden               a known caller lacks the role the request needs
    └── SecurityRefused         a message's WS-Security header is absent where required, or not accepted
        ├── InvalidSecurity     missing, malformed, or signing other elements than the ones acted on
        ├── UnsupportedAlgorithm  a signature, digest, canonicalization or transform not allowed
        ├── UnsupportedSecurityToken  a token other than an X.509 v3 BinarySecurityToken
        ├── SecurityTokenUnavailable  the signature's KeyInfo names no token of the message
        ├── InvalidSecurityToken  the token is not a readable X.509 certificate
        ├── FailedAuthentication  the certificate is outside its validity or not issued by a trusted one
        ├── FailedCheck         the signature or a digest does not verify
        └── MessageExpired      the Timestamp is expired or not yet valid
"""

from __future__ import annotations


class XdsiError(Exception):
    """Base of every error xdsi raises on purpose."""


class InvalidRequest(XdsiError):
    """The client sent a malformed request; the message says what is wrong."""


class InvalidUID(InvalidRequest):
    """A UID is unusable: not 1-64 ASCII digits and dots, or with an empty component.

    Zero-led components break PS3.5 9.1 but are accepted (legacy equipment wrote them).
    """


class UnsupportedMediaType(InvalidRequest):
    """The request body is of a media type (or content coding) the transaction does not accept."""


class InvalidXPath(InvalidRequest):
    """A metadata filter is malformed, too long or nested too deep, or names an element or
    attribute the Native DICOM Model does not have."""


class UnsupportedXPath(InvalidXPath):
    """A metadata filter uses XPath the sandbox does not offer: a function outside the core
    subset, an extension function, a variable, or an axis other than the tree-walking ones."""


class MisdirectedRequest(InvalidRequest):
    """The Host header names no host in ``allowed_hosts``: a page of another site may be driving the
    client's browser at this server under its own name (DNS rebinding)."""


class UnsupportedParameter(InvalidRequest):
    """A well-formed parameter the answer asked for cannot honour (a frame of a RAD-69 document,
    which is the whole PS3.10 instance)."""


class RequestTooLarge(XdsiError):
    """The whole request exceeds a limit (body size, part count); nothing of it is stored."""


class XPathTooCostly(RequestTooLarge):
    """A metadata filter was stopped: its evaluation exceeded the work or time bound, or its
    result exceeded the node or size bound."""


class NotAcceptable(XdsiError):
    """No representation the server can produce matches what the client accepts (HTTP 406)."""


class AnonymizationUnavailable(NotAcceptable):
    """A de-identified copy is asked of an instance the Basic Profile cannot de-identify (its pixels
    carry burned-in text, which only the Clean Pixel Data Option would remove)."""


class NotFound(XdsiError):
    """The requested object is not in the archive."""


class UnknownRepository(NotFound):
    """A document request names a repositoryUniqueId this Imaging Document Source is not (RAD TF-3 4.69)."""


class UnknownCommunity(NotFound):
    """A document request names a homeCommunityId this Imaging Document Source is not part of."""


class InstanceRejected(XdsiError):
    """One instance cannot be stored. ``sop_class_uid``/``sop_instance_uid`` are set when known."""

    def __init__(
        self,
        reason: str,
        *,
        sop_class_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle their positional args only; the UIDs travel back from parser processes too.
        return (type(self), (self.reason,), self.__dict__)


class NotDicom(InstanceRejected):
    """The bytes are not a PS3.10 file."""


class MalformedDicom(InstanceRejected):
    """The file is DICOM but cannot be parsed safely."""


class MissingAttribute(InstanceRejected):
    """A required attribute is absent."""


class BadAttribute(InstanceRejected):
    """A required attribute is present but invalid."""


class UnsupportedTransferSyntax(InstanceRejected):
    """The transfer syntax is unknown or cannot be stored."""


class UnsupportedSOPClass(InstanceRejected):
    """The SOP Class is not a storage SOP class this archive accepts."""


class InstanceTooLarge(InstanceRejected):
    """The instance, or its inflated dataset, exceeds a configured limit."""


class DuplicateConflict(InstanceRejected):
    """A different instance with the same SOP Instance UID is already stored."""


class HierarchyConflict(InstanceRejected):
    """The instance's UIDs contradict where the archive already files its study or series."""


class StudyMismatch(InstanceRejected):
    """A request addressed to one study carried an instance of another (PS3.18 10.5.1)."""


class RepositoryBusy(XdsiError):
    """The index could not be written in time (locked or unreachable); the client may retry."""


class Overloaded(XdsiError):
    """The request needs more of a budget shared by the requests of this process than is left now
    (e.g. ``stow_metadata_budget_bytes``); nothing of it was kept, and the client may retry."""


class StorageFull(XdsiError):
    """No space left for the blob store or the index."""


class SecurityRefused(XdsiError):
    """WS-Security (OASIS WSS 1.1 SOAP Message Security 12): the message must not be acted on.
    Each subclass is one of the standard's fault codes; the message says why in words."""


class InvalidSecurity(SecurityRefused):
    """The security header is missing where required, malformed, or signs other elements than
    the Body (and Timestamp) the server acts on: every signature-wrapping shape lands here."""


class UnsupportedAlgorithm(SecurityRefused):
    """A signature, digest, canonicalization or transform algorithm outside the allowed set."""


class UnsupportedSecurityToken(SecurityRefused):
    """A security token of a type other than an X.509 v3 certificate."""


class SecurityTokenUnavailable(SecurityRefused):
    """The signature's KeyInfo refers to no BinarySecurityToken of the message."""


class InvalidSecurityToken(SecurityRefused):
    """The BinarySecurityToken does not hold a readable X.509 certificate."""


class FailedAuthentication(SecurityRefused):
    """The signing certificate is not valid now, or no trusted certificate issued it."""


class FailedCheck(SecurityRefused):
    """The signature value or a reference's digest does not verify: the message was altered."""


class MessageExpired(SecurityRefused):
    """The signed Timestamp is expired, or created in the future beyond the allowed skew."""


class Unauthenticated(XdsiError):
    """The request carries no usable credentials: none, an unknown user, a wrong password, a bad token.

    ``mechanism`` names the scheme whose credentials were refused ('basic', 'bearer'), None when
    there were none; ``token_error`` is the RFC 6750 3.1 error code of a refused bearer token;
    ``claimed_user`` the user name the refused credentials claimed, for the audit trail.
    """

    def __init__(self, reason: str, *, mechanism: str | None = None, token_error: str | None = None,
                 claimed_user: str | None = None) -> None:
        super().__init__(reason)
        self.mechanism = mechanism
        self.token_error = token_error
        self.claimed_user = claimed_user


class Forbidden(XdsiError):
    """The caller is known but lacks ``role`` (read, store, delete, admin) for what it asked."""

    def __init__(self, reason: str, *, role: str) -> None:
        super().__init__(reason)
        self.role = role
