"""WS-Security for WADO-WS: signed requests verified (OASIS WSS 1.1 SOAP Message Security and
X.509 Token Profile 1.1), optionally required, and answers signed, with xmlsec.

xmlsec verifies generic XML-DSig: it proves that *some* elements carrying the referenced Ids are
unchanged, not that they are the ones the server acts on (pysaml2 CVE-2020-5390 and the XML
signature-wrapping family). So before any cryptography the message's shape is checked here, on
the very tree the service then dispatches: one Header, one Body, one wsse:Security with one
ds:Signature; no Id value twice anywhere; each Reference a bare ``#Id`` resolving to the Body,
the signed wsu:Timestamp or a WS-Addressing header of this envelope, compared by identity; the
Body and the Timestamp covered; exclusive canonicalization as the only transform; algorithms
from an allow-list (RSA or ECDSA with SHA-256 and up). The key is the X.509 certificate of a
BinarySecurityToken that the KeyInfo references, issued by (or itself) a certificate of the
configured trust store and valid now; the Timestamp is within its window (5 minutes of skew).

A signed wsa:Action is not required: zeep and most toolkits sign the Body and the Timestamp
only, and the dispatcher already refuses an Action whose operation is not the Body's.

Answers are signed (Body, Timestamp and the WS-Addressing headers) when a key and certificate
are configured. An MTOM answer's signature covers its XOP infoset, the Body with each document
in place of its xop:Include as base64 (XOP 1.0 3: that is the message; zeep, like any MTOM
client, decodes XOP before it verifies). xmlsec would need every document inlined in the tree
for that, a whole study in memory; so answers are signed here with ``cryptography``: each
document is read once ahead of the answer and its base64 hashed as a stream, and the Signature
is assembled by hand. Verifying (requests) stays with xmlsec, which also checks this signing
at start-up.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from lxml import etree

from xdsi.config import ConfigError, Settings
from xdsi.errors import (
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    InvalidSecurityToken,
    MessageExpired,
    SecurityRefused,
    SecurityTokenUnavailable,
    UnsupportedAlgorithm,
    UnsupportedSecurityToken,
)
from xdsi.soap import envelope
from xdsi.soap import namespaces as ns
from xdsi.soap.mtom import Attachment
from xdsi.soap.namespaces import qname

if TYPE_CHECKING:
    from xmlsec.constants import __Transform as Transform

log = logging.getLogger(__name__)

T = xmlsec.constants
SECURITY = qname(ns.WSSE, "Security")
TOKEN = qname(ns.WSSE, "BinarySecurityToken")
TOKEN_REFERENCE = qname(ns.WSSE, "SecurityTokenReference")
TIMESTAMP = qname(ns.WSU, "Timestamp")
WSU_ID = qname(ns.WSU, "Id")
SIGNATURE = qname(ns.DS, "Signature")
# WSS X.509 Token Profile 1.1 3.1 and WSS SOAP Message Security 1.1 (EncodingType).
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

CANONICALIZATION = T.TransformExclC14N
SIGNATURE_METHODS = (T.TransformRsaSha256, T.TransformRsaSha384, T.TransformRsaSha512,
                     T.TransformEcdsaSha256, T.TransformEcdsaSha384, T.TransformEcdsaSha512)
DIGEST_METHODS = (T.TransformSha256, T.TransformSha384, T.TransformSha512)
MAX_REFERENCES = 8
CLOCK_SKEW = timedelta(minutes=5)
ANSWER_LIFETIME = timedelta(minutes=5)
# Attributes that name an element for a same-document reference: wsu:Id (WSS), Id (XML-DSig
# and others), ID (SAML), xml:id (libxml2 treats it as an ID by itself).
_ID_ATTRIBUTES = (WSU_ID, "Id", "ID", qname(ns.XML, "id"))
_BARE_NAME = re.compile(r"#([A-Za-z_][A-Za-z0-9_.\-]*)")
_SHA256 = hashes.SHA256()
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


class TrustStore:
    """The certificates allowed to sign: a request's certificate is trusted when it is one of
    them or directly issued by one that is a CA, and both are within their validity."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self.certificates = list(certificates)
        if not self.certificates:
            raise ValueError("the trust store holds no certificate")
        self._fingerprints = {c.fingerprint(_SHA256) for c in self.certificates}

    @classmethod
    def from_pem_file(cls, path: Path) -> TrustStore:
        return cls(x509.load_pem_x509_certificates(path.read_bytes()))

    def check(self, certificate: x509.Certificate, now: datetime) -> None:
        if not _valid_at(certificate, now):
            raise FailedAuthentication("the signing certificate is outside its validity period")
        usage = _extension(certificate, x509.KeyUsage)
        if usage is not None and not (usage.digital_signature or usage.content_commitment):
            raise FailedAuthentication("the signing certificate's key usage does not allow signatures")
        if certificate.fingerprint(_SHA256) in self._fingerprints:
            return
        for issuer in self.certificates:
            if issuer.subject != certificate.issuer or not _valid_at(issuer, now) or not _is_ca(issuer):
                continue
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return
        raise FailedAuthentication("the signing certificate is not issued by a trusted certificate")


class Signer:
    """The key and certificate that sign answers (RSA-SHA256 or ECDSA-SHA256, by the key)."""

    def __init__(self, key_pem: bytes, password: str | None, certificate: x509.Certificate) -> None:
        key = load_pem_private_key(key_pem, password.encode() if password else None)
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("the signing key is neither RSA nor elliptic-curve")
        self.key = key
        self.certificate = certificate
        self.method: Transform = T.TransformEcdsaSha256 if isinstance(key, ec.EllipticCurvePrivateKey) \
            else T.TransformRsaSha256

    def sign(self, data: bytes) -> bytes:
        """The SignatureValue octets: PKCS #1 v1.5, or ECDSA's r and s side by side (RFC 4051 3.3)."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (self.key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class WsSecurity:
    """The envelope hook of the WADO-WS application (``soap.application.EnvelopeHook``)."""

    def __init__(self, trust: TrustStore | None, require: bool, signer: Signer | None) -> None:
        self.trust = trust
        self.require = require
        self.signer = signer
        # SOAP 1.2 Part 1 5.2.3: a mustUnderstand wsse:Security is understood only when verified.
        self.understood = frozenset({ns.WSSE}) if trust is not None else frozenset()

    # -- requests ---------------------------------------------------------------------------------

    def verify(self, request: envelope.Request) -> None:
        root = request.envelope
        soap = request.version.envelope_ns
        headers = root.findall(qname(soap, "Header"))
        securities = [block for header in headers for block in header if block.tag == SECURITY]
        if not securities:
            if self.require:
                raise InvalidSecurity("this endpoint requires signed requests: the message has no wsse:Security header")
            return
        if self.trust is None:
            return  # not understood, and not mustUnderstand (else the envelope parser refused it)
        identity = self.verified_signer(root, soap, headers, securities, datetime.now(UTC))
        log.info("WADO-WS request signed by %s", identity)

    def verified_signer(self, root: etree._Element, soap: str, headers: list[etree._Element],
                        securities: list[etree._Element], now: datetime) -> str:
        """The signer's subject, once every check holds; the first failing one raises."""
        assert self.trust is not None
        bodies = root.findall(qname(soap, "Body"))
        if len(headers) != 1 or len(bodies) != 1:
            raise InvalidSecurity("a signed message has exactly one Header and one Body")
        if len(securities) != 1:
            raise InvalidSecurity("a message may carry one wsse:Security header, not several")
        header, body, security = headers[0], bodies[0], securities[0]
        identified = identified_elements(root)
        signature = _only(security, SIGNATURE, "ds:Signature in the wsse:Security header")
        timestamp = _only(security, TIMESTAMP, "wsu:Timestamp in the wsse:Security header")
        covered = _references(signature, identified)
        if body not in covered:
            raise InvalidSecurity("the signature does not cover the Body of the message")
        if timestamp not in covered:
            raise InvalidSecurity("the signature does not cover the wsu:Timestamp")
        allowed = ({body, timestamp} | {h for h in header if etree.QName(h).namespace == ns.WSA}
                   | {t for t in security if t.tag == TOKEN})
        for element in covered:
            if element not in allowed:
                raise InvalidSecurity("the signature covers an element other than the Body, the Timestamp, "
                                      "the WS-Addressing headers and its security token")
        certificate = _certificate(signature, security, identified)
        self.trust.check(certificate, now)
        context = xmlsec.SignatureContext()
        for element, attribute in identified.values():
            context.register_id(element, etree.QName(attribute).localname, etree.QName(attribute).namespace)
        context.key = xmlsec.Key.from_memory(certificate.public_bytes(Encoding.PEM), T.KeyDataFormatCertPem)
        try:
            context.verify(signature)
        except xmlsec.Error:
            raise FailedCheck("the signature does not verify: the signed elements were altered "
                              "or signed with another key") from None
        _check_freshness(timestamp, now)
        return certificate.subject.rfc4514_string()

    # -- answers ----------------------------------------------------------------------------------

    def secure(self, answer: etree._Element, attachments: Sequence[Attachment] = ()) -> etree._Element:
        if self.signer is None:
            return answer
        sign(answer, self.signer, datetime.now(UTC), attachments)
        return answer


def sign(answer: etree._Element, signer: Signer, now: datetime, attachments: Sequence[Attachment] = ()) -> None:
    """Add a wsse:Security header signing the Body (with the documents its xop:Includes stand
    for), a new Timestamp and the WS-Addressing headers (XML-DSig 3.1, by hand: see above)."""
    soap = etree.QName(answer).namespace or ns.SOAP12
    header = answer.find(qname(soap, "Header"))
    body = answer.find(qname(soap, "Body"))
    assert header is not None and body is not None
    security = etree.SubElement(header, SECURITY, nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
    security.set(qname(soap, "mustUnderstand"), "true" if soap == ns.SOAP12 else "1")
    token = etree.SubElement(security, TOKEN, EncodingType=BASE64, ValueType=X509V3)
    token.set(WSU_ID, _new_id("X509"))
    token.text = base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode("ascii")
    timestamp = etree.SubElement(security, TIMESTAMP)
    etree.SubElement(timestamp, qname(ns.WSU, "Created")).text = _xs_datetime(now)
    etree.SubElement(timestamp, qname(ns.WSU, "Expires")).text = _xs_datetime(now + ANSWER_LIFETIME)
    targets = [body, timestamp, *(h for h in header if etree.QName(h).namespace == ns.WSA)]
    documents = {attachment.href: attachment for attachment in attachments}
    signature = etree.SubElement(security, SIGNATURE, nsmap={"ds": ns.DS})
    signed_info = etree.SubElement(signature, qname(ns.DS, "SignedInfo"))
    etree.SubElement(signed_info, qname(ns.DS, "CanonicalizationMethod"), Algorithm=CANONICALIZATION.href)
    etree.SubElement(signed_info, qname(ns.DS, "SignatureMethod"), Algorithm=signer.method.href)
    for element in targets:
        if element.get(WSU_ID) is None:
            element.set(WSU_ID, _new_id(etree.QName(element).localname))
        reference = etree.SubElement(signed_info, qname(ns.DS, "Reference"), URI=f"#{element.get(WSU_ID)}")
        transforms = etree.SubElement(reference, qname(ns.DS, "Transforms"))
        etree.SubElement(transforms, qname(ns.DS, "Transform"), Algorithm=CANONICALIZATION.href)
        etree.SubElement(reference, qname(ns.DS, "DigestMethod"), Algorithm=T.TransformSha256.href)
        etree.SubElement(reference, qname(ns.DS, "DigestValue")).text = _b64(_digest(element, documents))
    value = etree.SubElement(signature, qname(ns.DS, "SignatureValue"))
    key_info = etree.SubElement(signature, qname(ns.DS, "KeyInfo"))
    token_reference = etree.SubElement(key_info, TOKEN_REFERENCE)
    etree.SubElement(token_reference, qname(ns.WSSE, "Reference"), URI=f"#{token.get(WSU_ID)}", ValueType=X509V3)
    value.text = _b64(signer.sign(_canonical(signed_info)))


def _canonical(element: etree._Element) -> bytes:
    """Exclusive XML Canonicalization 1.0 of ``element`` as a document subset, without comments."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _digest(element: etree._Element, documents: dict[str, Attachment]) -> bytes:
    """SHA-256 of the canonical form of ``element``'s XOP infoset: each xop:Include replaced by
    the base64 of the document it names, hashed as the document is read (memory stays flat)."""
    includes = list(element.iter(qname(ns.XOP, "Include")))
    if not includes:
        return hashlib.sha256(_canonical(element)).digest()
    infoset = copy.deepcopy(element)
    markers: list[tuple[bytes, Attachment]] = []
    for include in list(infoset.iter(qname(ns.XOP, "Include"))):
        # XOP 1.0 3.2: an xop:Include is its parent's only content, standing for its base64 text.
        text = f"xop-{uuid.uuid4().hex}"
        parent = include.getparent()
        assert parent is not None
        parent.remove(include)
        parent.text = text
        markers.append((text.encode("ascii"), documents[include.get("href", "")]))
    digest = hashlib.sha256()
    rest = _canonical(infoset)
    for marker, attachment in markers:
        before, _, rest = rest.partition(marker)
        digest.update(before)
        _hash_base64(digest, attachment.produce())
    digest.update(rest)
    return digest.digest()


def _hash_base64(digest: hashlib._Hash, chunks: Iterable[bytes]) -> None:
    """Feed the base64 of the concatenated ``chunks`` (no line breaks: canonical xs:base64Binary)."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = len(data) - len(data) % 3
        digest.update(base64.b64encode(data[:cut]))
        carry = data[cut:]
    digest.update(base64.b64encode(carry))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_settings(settings: Settings) -> WsSecurity | None:
    """The hook the settings call for, or None when WS-Security is not configured.

    Signing is tried once here (sign, then verify the answer with its own certificate), so a key
    that does not match its certificate, or an xmlsec whose libxml2 differs from lxml's, stops
    the server at start-up instead of failing its first answer.
    """
    trust = signer = None
    if settings.wssec_trust_store is not None:
        try:
            trust = TrustStore.from_pem_file(settings.wssec_trust_store)
        except (OSError, ValueError) as exc:
            raise ConfigError([f"wssec_trust_store: no PEM certificates could be read ({exc})"]) from None
    if settings.wssec_sign_key is not None and settings.wssec_sign_cert is not None:
        try:
            certificate = x509.load_pem_x509_certificate(settings.wssec_sign_cert.read_bytes())
            signer = Signer(settings.wssec_sign_key.read_bytes(), settings.wssec_sign_key_password, certificate)
            _self_test(signer)
        except (OSError, ValueError, TypeError, xmlsec.Error, SecurityRefused) as exc:
            raise ConfigError([f"wssec_sign_key / wssec_sign_cert: signing a test message failed ({exc}); "
                               "are they a PEM key and its certificate, and the password right?"]) from None
    if trust is None and signer is None:
        return None
    return WsSecurity(trust, settings.wssec_require, signer)


def _self_test(signer: Signer) -> None:
    now = datetime.now(UTC)
    probe = envelope.response(envelope.SOAP12, ns.FAULT_ACTION, None, etree.Element(qname(ns.WADO, "SelfTest")))
    sign(probe, signer, now)
    probe = etree.fromstring(envelope.serialize(probe), envelope.parser())  # as a peer reads it
    checker = WsSecurity(TrustStore([signer.certificate]), True, None)
    checker.verified_signer(probe, ns.SOAP12, probe.findall(qname(ns.SOAP12, "Header")),
                            probe.findall(f"{qname(ns.SOAP12, 'Header')}/{SECURITY}"), now)


# -- the checks ---------------------------------------------------------------------------------------

def identified_elements(root: etree._Element) -> dict[str, tuple[etree._Element, str]]:
    """Id value -> (element, Id attribute) over the whole envelope; a value given twice is refused,
    so an Id resolves to one element for xmlsec and for these checks alike."""
    found: dict[str, tuple[etree._Element, str]] = {}
    for element in root.iter(etree.Element):
        for attribute in _ID_ATTRIBUTES:
            value = element.get(attribute)
            if value is None:
                continue
            if value in found:
                raise InvalidSecurity(f"the Id {value[:64]!r} is given to more than one element")
            found[value] = (element, attribute)
    return found


def _only(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise InvalidSecurity(f"a signed message needs exactly one {what}")
    return found[0]


def _references(signature: etree._Element, identified: dict[str, tuple[etree._Element, str]]) -> set[etree._Element]:
    """The elements the SignedInfo references, after checking its algorithms (XML-DSig 4.4-4.4.3)."""
    signed_info = _only(signature, qname(ns.DS, "SignedInfo"), "ds:SignedInfo")
    algorithm(signed_info, "CanonicalizationMethod", (CANONICALIZATION,))
    algorithm(signed_info, "SignatureMethod", SIGNATURE_METHODS)
    references = signed_info.findall(qname(ns.DS, "Reference"))
    if not 1 <= len(references) <= MAX_REFERENCES:
        raise InvalidSecurity(f"a signature has 1 to {MAX_REFERENCES} references, not {len(references)}")
    covered = set()
    for reference in references:
        match = _BARE_NAME.fullmatch(reference.get("URI") or "")
        if match is None:
            raise InvalidSecurity("a reference must name an element of the message by its Id (URI=\"#Id\")")
        target = identified.get(match.group(1))
        if target is None:
            raise InvalidSecurity(f"a reference names the Id {match.group(1)[:64]!r}, which no element has")
        transforms = reference.find(qname(ns.DS, "Transforms"))
        for transform in [] if transforms is None else transforms:
            if transform.tag != qname(ns.DS, "Transform") or transform.get("Algorithm") != CANONICALIZATION.href:
                raise UnsupportedAlgorithm("a reference may only be transformed by exclusive canonicalization")
        algorithm(reference, "DigestMethod", DIGEST_METHODS)
        covered.add(target[0])
    return covered


def algorithm(parent: etree._Element, name: str, allowed: Iterable[Transform]) -> None:
    element = parent.find(qname(ns.DS, name))
    algorithm = None if element is None else element.get("Algorithm")
    if algorithm not in {a.href for a in allowed}:
        raise UnsupportedAlgorithm(f"{name} {str(algorithm)[:100]} is not accepted")


def _certificate(signature: etree._Element, security: etree._Element,
                 identified: dict[str, tuple[etree._Element, str]]) -> x509.Certificate:
    """The X.509 certificate of the BinarySecurityToken the KeyInfo references (X.509 Token Profile 3.3.2)."""
    reference = signature.find(f"{qname(ns.DS, 'KeyInfo')}/{TOKEN_REFERENCE}/{qname(ns.WSSE, 'Reference')}")
    match = _BARE_NAME.fullmatch("" if reference is None else reference.get("URI") or "")
    if match is None:
        raise SecurityTokenUnavailable("the signature's KeyInfo must reference a BinarySecurityToken of the message")
    target = identified.get(match.group(1))
    token = None if target is None else target[0]
    if token is None or token.tag != TOKEN or token.getparent() is not security:
        raise SecurityTokenUnavailable("the signature's KeyInfo references no BinarySecurityToken of this header")
    if token.get("ValueType") != X509V3:
        raise UnsupportedSecurityToken("the security token is not an X.509 v3 certificate")
    if token.get("EncodingType", BASE64) != BASE64:
        raise InvalidSecurityToken("the BinarySecurityToken is not Base64Binary")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((token.text or "").split()), validate=True))
    except ValueError:
        raise InvalidSecurityToken("the BinarySecurityToken does not hold a readable X.509 certificate") from None


def _check_freshness(timestamp: etree._Element, now: datetime) -> None:
    """WSS SOAP Message Security 1.1 10: Created not in the future, Expires not in the past (skew allowed)."""
    created = parse_time(timestamp.findtext(qname(ns.WSU, "Created")), "the wsu:Timestamp Created")
    if created is None:
        raise InvalidSecurity("the wsu:Timestamp has no Created time")
    if created > now + CLOCK_SKEW:
        raise MessageExpired("the wsu:Timestamp is created in the future")
    expires = parse_time(timestamp.findtext(qname(ns.WSU, "Expires")), "the wsu:Timestamp Expires")
    if expires is not None and expires < now - CLOCK_SKEW:
        raise MessageExpired("the message has expired (wsu:Timestamp Expires is past)")


def parse_time(value: str | None, what: str, refusal: type[SecurityRefused] = InvalidSecurity) -> datetime | None:
    """An xs:dateTime of a security header (UTC when it names no zone); ``refusal`` names ``what`` is not one."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise refusal(f"{what} is not an xs:dateTime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _valid_at(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _extension(certificate, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def _xs_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

