"""WS-Security test kit: a throwaway PKI made at test time (never committed), and a request signer
written here with xmlsec's template API and zeep's, independent of xdsi's own signing code."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
NS = {"s": SOAP12, "wsse": WSSE, "wsu": WSU, "ds": DS, "wsa": WSA}
WSU_ID = f"{{{WSU}}}Id"


@dataclass(frozen=True)
class Identity:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        key, cert = folder / f"{name}.key.pem", folder / f"{name}.cert.pem"
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        cert.write_bytes(self.cert_pem)
        return key, cert


def identity(name: str, issuer: Identity | None = None, *, ca: bool = False, elliptic: bool = False,
             not_before: datetime | None = None, days: int = 30) -> Identity:
    """A key and a certificate, self-signed or issued by ``issuer``."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if elliptic else rsa.generate_private_key(65537, 2048))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.certificate.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True))
    signer = issuer.key if issuer else key
    return Identity(key, builder.sign(signer, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    ca: Identity
    client: Identity  # issued by ca
    rogue_ca: Identity  # trusted by nobody
    rogue: Identity  # issued by rogue_ca
    expired: Identity  # issued by ca, validity over


def make_pki() -> Pki:
    ca = identity("xdsi test CA", ca=True, days=365)
    rogue_ca = identity("rogue CA", ca=True)
    return Pki(ca, identity("consumer.example", ca), rogue_ca, identity("consumer.example", rogue_ca),
               identity("old.example", ca, not_before=datetime.now(UTC) - timedelta(days=60), days=30))


def timestamp(created: datetime | None = None, lifetime: timedelta = timedelta(minutes=5)) -> str:
    created = created or datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (f'<wsu:Timestamp xmlns:wsu="{WSU}" wsu:Id="TS-{uuid.uuid4().hex}">'
            f"<wsu:Created>{created.strftime(fmt)}</wsu:Created>"
            f"<wsu:Expires>{(created + lifetime).strftime(fmt)}</wsu:Expires></wsu:Timestamp>")


def add_security(message: str | bytes, *, stamp: str | None = None, must_understand: bool = True) -> etree._Element:
    """The envelope with a wsse:Security header holding a Timestamp, ready for signing."""
    root = etree.fromstring(message.encode() if isinstance(message, str) else message)
    header = root.find(f"{{{SOAP12}}}Header")
    assert header is not None
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    if must_understand:
        security.set(f"{{{SOAP12}}}mustUnderstand", "true")
    security.append(etree.fromstring(stamp or timestamp()))
    return root


def sign(root: etree._Element, signer: Identity, targets: Iterable[etree._Element] | None = None, *,
         method: object = xmlsec.constants.TransformRsaSha256, digest: object = xmlsec.constants.TransformSha256,
         transforms: Iterable[object] = (xmlsec.constants.TransformExclC14N,),
         xpath: tuple[str, dict[str, str]] | None = None,
         token_certificate: x509.Certificate | None = None, sign_token: bool = False) -> etree._Element:
    """Sign ``targets`` (default: Body and Timestamp) of ``root`` in its wsse:Security header
    with an X.509 BinarySecurityToken (WSS X.509 Token Profile 1.1), by xmlsec's template API;
    ``xpath`` (expression, namespaces): an XPath filter transform on each reference.

    The answer is the signed message parsed again: lxml's find() misses elements xmlsec's
    templates create until they are read back."""
    security = root.find("s:Header/wsse:Security", NS)
    assert security is not None
    if targets is None:
        targets = [root.find("s:Body", NS), security.find("wsu:Timestamp", NS)]
    token = etree.Element(f"{{{WSSE}}}BinarySecurityToken", EncodingType=BASE64, ValueType=X509V3)
    token.set(WSU_ID, f"X509-{uuid.uuid4().hex}")
    certificate = token_certificate or signer.certificate
    token.text = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    security.insert(0, token)
    if sign_token:
        targets = [*targets, token]
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, method, ns="ds")
    security.append(signature)
    context = xmlsec.SignatureContext()
    for target in targets:
        assert target is not None
        if target.get(WSU_ID) is None:
            target.set(WSU_ID, f"id-{uuid.uuid4().hex}")
        reference = xmlsec.template.add_reference(signature, digest, uri=f"#{target.get(WSU_ID)}")
        for transform in transforms:
            xmlsec.template.add_transform(reference, transform)
        if xpath is not None:
            node = xmlsec.template.add_transform(reference, xmlsec.constants.TransformXPath)
            etree.SubElement(node, f"{{{DS}}}XPath", nsmap=xpath[1]).text = xpath[0]
        context.register_id(target, "Id", WSU)
    key_info = xmlsec.template.ensure_key_info(signature)
    reference_to_token = etree.SubElement(etree.SubElement(key_info, f"{{{WSSE}}}SecurityTokenReference"),
                                          f"{{{WSSE}}}Reference", ValueType=X509V3)
    reference_to_token.set("URI", f"#{token.get(WSU_ID)}")
    context.key = xmlsec.Key.from_memory(signer.key_pem, xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)
    return etree.fromstring(serialize(root))


def zeep_sign(root: etree._Element, signer: Identity, folder: Path) -> etree._Element:
    """Sign as zeep's BinarySignature does (Body and Timestamp, RSA-SHA256): a real client's signer."""
    from zeep.wsse.signature import BinarySignature

    key, cert = signer.write(folder, f"zeep-{uuid.uuid4().hex}")
    BinarySignature(str(key), str(cert), signature_method=xmlsec.constants.TransformRsaSha256,
                    digest_method=xmlsec.constants.TransformSha256).apply(root, {})
    return root


def zeep_verify(message: bytes, certificate_pem: bytes, folder: Path, attachments: dict[str, bytes] | None = None) -> None:
    """zeep's own check of a signed answer (raises SignatureVerificationFailed), made as zeep makes
    it: on the XOP infoset, each xop:Include replaced by the base64 of the part it names."""
    from zeep.wsse.signature import verify_envelope

    root = etree.fromstring(message)
    for include in list(root.iter("{http://www.w3.org/2004/08/xop/include}Include")):
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode((attachments or {})[unquote(include.get("href", "")[4:])]).decode()
    cert = folder / f"answer-{uuid.uuid4().hex}.cert.pem"
    cert.write_bytes(certificate_pem)
    verify_envelope(root, str(cert))


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def saml_assertion(signer: Identity | None, name: str = "dr.who@hospital.example", *,
                   audience: str | None = "https://xdsi.example/wado-ws",
                   not_before: datetime | None = None, not_on_or_after: datetime | None = None) -> etree._Element:
    """An X-User Assertion (SAML 2.0, as an IHE XUA X-Assertion Provider writes it) for ``name``,
    signed enveloped by ``signer`` with its certificate in the KeyInfo (unsigned when None)."""
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start, end = not_before or now - timedelta(minutes=1), not_on_or_after or now + timedelta(minutes=10)
    restriction = (f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>"
                   if audience else "")
    assertion = etree.fromstring(
        f'<saml:Assertion xmlns:saml="{SAML}" ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{now.strftime(fmt)}">'
        f"<saml:Issuer>https://idp.hospital.example</saml:Issuer>"
        f'<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">{name}'
        f'</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"/></saml:Subject>'
        f'<saml:Conditions NotBefore="{start.strftime(fmt)}" NotOnOrAfter="{end.strftime(fmt)}">{restriction}'
        f"</saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{now.strftime(fmt)}"><saml:AuthnContext><saml:AuthnContextClassRef>'
        f"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>"
        f"</saml:AuthnContext></saml:AuthnStatement></saml:Assertion>")
    if signer is None:
        return assertion
    signature = xmlsec.template.create(assertion, xmlsec.constants.TransformExclC14N,
                                       xmlsec.constants.TransformRsaSha256, ns="ds")
    assertion.insert(1, signature)  # SAML 2.0 Core 2.3.3: after the Issuer
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256,
                                              uri=f"#{assertion.get('ID')}")
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    context = xmlsec.SignatureContext()
    context.register_id(assertion, "ID")
    key = xmlsec.Key.from_memory(signer.key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(signer.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.key = key
    context.sign(signature)
    return etree.fromstring(etree.tostring(assertion))


def with_assertion(message: str, assertion: etree._Element | None, *, must_understand: bool = True) -> bytes:
    """``message`` with a wsse:Security header holding ``assertion`` (and a Timestamp)."""
    root = add_security(message, must_understand=must_understand)
    if assertion is not None:
        root.find("s:Header/wsse:Security", NS).append(assertion)
    return serialize(root)
