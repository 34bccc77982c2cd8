"""IHE XUA (ITI-40, Provide X-User Assertion): the caller of a WADO-WS request named by a SAML 2.0
assertion in its wsse:Security header (OASIS WSS SAML Token Profile 1.1), signed by an identity
provider this source trusts.

The assertion is the credential, so it gets the checks a signed message gets (``wssec``), on the
very element whose Subject is then believed: one wsse:Security header holding one saml2:Assertion;
no ID value twice in the envelope; the assertion's one enveloped ds:Signature with one Reference,
a bare ``#ID`` resolving to that assertion itself (compared by identity: a signature over a copy
hidden elsewhere, the SAML wrapping attacks, is refused), enveloped-signature and exclusive
canonicalization as its only transforms, algorithms from wssec's allow-list; the key an X.509
certificate of its KeyInfo that the trust store vouches for, valid now. Then xmlsec verifies, and
the Conditions (NotBefore, NotOnOrAfter with five minutes of skew; the AudienceRestriction naming
``saml_audience`` when that is set) and the Subject's NameID are read.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from xdsi.config import ConfigError, Settings
from xdsi.errors import FailedAuthentication, FailedCheck, InvalidSecurity, InvalidSecurityToken, UnsupportedAlgorithm
from xdsi.security.identity import Identity
from xdsi.soap import envelope, wssec
from xdsi.soap import namespaces as ns
from xdsi.soap.namespaces import qname

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
ASSERTION = qname(SAML, "Assertion")
ENVELOPED = xmlsec.constants.TransformEnveloped


class XUserAssertions:
    """Reads and checks the X-User Assertion of a request; ``identity`` names its subject."""

    def __init__(self, trust: wssec.TrustStore, audience: str | None, roles: frozenset[str]) -> None:
        self.trust = trust
        self.audience = audience
        self.roles = roles

    def identity(self, request: envelope.Request, now: datetime | None = None) -> Identity:
        """The subject of the request's assertion, once every check holds; the first failing one raises."""
        now = now or datetime.now(UTC)
        root = request.envelope
        securities = [block for header in root.findall(qname(request.version.envelope_ns, "Header"))
                      for block in header if block.tag == wssec.SECURITY]
        assertions = [element for security in securities for element in security if element.tag == ASSERTION]
        if not assertions:
            raise FailedAuthentication("this endpoint requires a SAML 2.0 X-User Assertion (IHE XUA) in the "
                                       "wsse:Security header")
        if len(securities) != 1 or len(assertions) != 1:
            raise InvalidSecurity("a message carries one wsse:Security header with one SAML assertion")
        assertion = assertions[0]
        identified = wssec.identified_elements(root)
        signature = _enveloped_signature(assertion, identified)
        certificate = _certificate(signature)
        self.trust.check(certificate, now)
        context = xmlsec.SignatureContext()
        context.register_id(assertion, "ID")
        context.key = xmlsec.Key.from_memory(certificate.public_bytes(Encoding.PEM),
                                             xmlsec.constants.KeyDataFormatCertPem)
        try:
            context.verify(signature)
        except xmlsec.Error:
            raise FailedCheck("the SAML assertion's signature does not verify: it was altered or signed with "
                              "another key") from None
        self._check_conditions(assertion, now)
        name = (assertion.findtext(f"{qname(SAML, 'Subject')}/{qname(SAML, 'NameID')}") or "").strip()
        if not name:
            raise InvalidSecurityToken("the SAML assertion names no Subject NameID")
        return Identity(name, self.roles, "saml")

    def _check_conditions(self, assertion: etree._Element, now: datetime) -> None:
        """SAML 2.0 Core 2.5.1: the assertion is valid within its Conditions only."""
        conditions = assertion.find(qname(SAML, "Conditions"))
        if conditions is None:
            raise InvalidSecurityToken("the SAML assertion has no Conditions (XUA requires its validity period)")
        not_before = wssec.parse_time(conditions.get("NotBefore"), "the SAML assertion's NotBefore",
                                      InvalidSecurityToken)
        not_on_or_after = wssec.parse_time(conditions.get("NotOnOrAfter"), "the SAML assertion's NotOnOrAfter",
                                           InvalidSecurityToken)
        if not_on_or_after is None:
            raise InvalidSecurityToken("the SAML assertion's Conditions have no NotOnOrAfter")
        if not_before is not None and not_before > now + wssec.CLOCK_SKEW:
            raise FailedAuthentication("the SAML assertion is not valid yet")
        if not_on_or_after <= now - wssec.CLOCK_SKEW:
            raise FailedAuthentication("the SAML assertion has expired")
        if self.audience is not None:
            audiences = {(a.text or "").strip() for a in conditions.iter(qname(SAML, "Audience"))}
            if self.audience not in audiences:
                raise FailedAuthentication(f"the SAML assertion is not addressed to {self.audience}")


def from_settings(settings: Settings) -> XUserAssertions | None:
    """The assertion reader ``auth = saml`` calls for; None when SAML is not among the mechanisms."""
    if "saml" not in settings.auth_mechanisms:
        return None
    if settings.saml_trust_store is None:
        raise ConfigError(["auth = saml needs saml_trust_store: the certificates of the identity providers "
                           "whose assertions are believed"])
    try:
        trust = wssec.TrustStore.from_pem_file(settings.saml_trust_store)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"saml_trust_store: no PEM certificates could be read ({exc})"]) from None
    return XUserAssertions(trust, settings.saml_audience, frozenset(settings.saml_role_list))


def _enveloped_signature(assertion: etree._Element,
                         identified: dict[str, tuple[etree._Element, str]]) -> etree._Element:
    """The assertion's own signature, whose one Reference is the assertion itself (SAML 2.0 Core 5.4)."""
    signatures = [child for child in assertion if child.tag == wssec.SIGNATURE]
    if len(signatures) != 1:
        raise InvalidSecurity("the SAML assertion must carry one enveloped signature")
    signature = signatures[0]
    signed_info = signature.find(qname(ns.DS, "SignedInfo"))
    if signed_info is None:
        raise InvalidSecurity("the SAML assertion's signature has no SignedInfo")
    wssec.algorithm(signed_info, "CanonicalizationMethod", (wssec.CANONICALIZATION,))
    wssec.algorithm(signed_info, "SignatureMethod", wssec.SIGNATURE_METHODS)
    references = signed_info.findall(qname(ns.DS, "Reference"))
    if len(references) != 1:
        raise InvalidSecurity("the SAML assertion's signature must have one Reference, to the assertion")
    [reference] = references
    uri = reference.get("URI") or ""
    identifier = assertion.get("ID")
    if not identifier or uri != f"#{identifier}" or identified.get(identifier, (None,))[0] is not assertion:
        raise InvalidSecurity("the SAML assertion's signature does not cover the assertion it is in")
    transforms = reference.find(qname(ns.DS, "Transforms"))
    for transform in [] if transforms is None else transforms:
        if transform.get("Algorithm") not in (ENVELOPED.href, wssec.CANONICALIZATION.href):
            raise UnsupportedAlgorithm("a SAML assertion's signature may only use the enveloped-signature and "
                                       "exclusive canonicalization transforms")
    wssec.algorithm(reference, "DigestMethod", wssec.DIGEST_METHODS)
    return signature


def _certificate(signature: etree._Element) -> x509.Certificate:
    """The certificate of the signature's KeyInfo (X509Data/X509Certificate, as SAML signers send it)."""
    texts = signature.findall(f"{qname(ns.DS, 'KeyInfo')}/{qname(ns.DS, 'X509Data')}/{qname(ns.DS, 'X509Certificate')}")
    if len(texts) != 1:
        raise InvalidSecurityToken("the SAML assertion's signature must carry its signer's X.509 certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((texts[0].text or "").split()), validate=True))
    except ValueError:
        raise InvalidSecurityToken("the SAML assertion's X509Certificate is not a readable certificate") from None
