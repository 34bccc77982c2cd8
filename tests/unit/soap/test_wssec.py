"""WS-Security on the envelopes the WADO-WS parser reads: signed requests accepted, every
signature-wrapping and policy-bypass shape refused with its WSS fault, answers signed so that
a real client (zeep) verifies them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat
from lxml import etree

from tests import wssec_kit as kit
from tests.wadows import envelope, rad69_body
from xdsi.config import ConfigError, Settings
from xdsi.errors import (
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    MessageExpired,
    SecurityRefused,
    SecurityTokenUnavailable,
    UnsupportedAlgorithm,
)
from xdsi.soap import envelope as soap_envelope
from xdsi.soap import namespaces as ns
from xdsi.soap import wssec
from xdsi.soap.faults import MUST_UNDERSTAND, Fault
from xdsi.soap.mtom import Attachment, new_content_id

STUDY, SERIES, DOCUMENT = "1.2.3", "1.2.3.4", "1.2.3.4.5"
REPOSITORY = "1.3.6.1.4.1.21367.13.80.110"
IHE = "urn:ihe:iti:xds-b:2007"


@pytest.fixture(scope="module")
def pki() -> kit.Pki:
    return kit.make_pki()


@pytest.fixture(scope="module")
def security(pki: kit.Pki) -> wssec.WsSecurity:
    return wssec.WsSecurity(wssec.TrustStore([pki.ca.certificate]), require=True, signer=None)


def request(uid: str = DOCUMENT, **stamp: object) -> etree._Element:
    """A RAD-69 request with a wsse:Security header holding a Timestamp, unsigned yet."""
    message = envelope(rad69_body({(STUDY, SERIES): [uid]}, REPOSITORY))
    return kit.add_security(message, stamp=kit.timestamp(**stamp) if stamp else None)  # type: ignore[arg-type]


def verify(hook: wssec.WsSecurity, root: etree._Element) -> soap_envelope.Request:
    """The server's path: the envelope parser, then the hook, on the same tree."""
    parsed = soap_envelope.parse_request(kit.serialize(root), hook.understood)
    hook.verify(parsed)
    return parsed


def body(root: etree._Element) -> etree._Element:
    found = root.find("s:Body", kit.NS)
    assert found is not None
    return found


def security_header(root: etree._Element) -> etree._Element:
    found = root.find("s:Header/wsse:Security", kit.NS)
    assert found is not None
    return found


def attacker_body(root: etree._Element, *, same_id: bool = False) -> etree._Element:
    """A Body asking for another document, put where the signed Body was; returns the signed one."""
    signed = body(root)
    replacement = etree.fromstring(kit.serialize(request("9.9.9.9")))
    forged = body(replacement)
    if same_id:
        forged.set(kit.WSU_ID, signed.get(kit.WSU_ID) or "")
    signed.addprevious(forged)
    return signed


# --- accepted -------------------------------------------------------------------------------------

def test_a_signed_request_is_accepted_and_the_body_is_the_signed_one(security: wssec.WsSecurity,
                                                                        pki: kit.Pki) -> None:
    parsed = verify(security, kit.sign(request(), pki.client))
    assert parsed.body.findtext(f".//{{{IHE}}}DocumentUniqueId") == DOCUMENT


def test_zeeps_binary_signature_is_accepted(security: wssec.WsSecurity, pki: kit.Pki, tmp_path: Path) -> None:
    verify(security, kit.zeep_sign(request(), pki.client, tmp_path))


def test_an_ecdsa_signature_is_accepted(pki: kit.Pki) -> None:
    client = kit.identity("ec.example", pki.ca, elliptic=True)
    hook = wssec.WsSecurity(wssec.TrustStore([pki.ca.certificate]), require=True, signer=None)
    verify(hook, kit.sign(request(), client, method=xmlsec.constants.TransformEcdsaSha256))


def test_a_directly_trusted_self_signed_certificate_is_accepted() -> None:
    client = kit.identity("self.example")
    hook = wssec.WsSecurity(wssec.TrustStore([client.certificate]), require=True, signer=None)
    verify(hook, kit.sign(request(), client))


def test_signed_ws_addressing_headers_are_accepted(security: wssec.WsSecurity, pki: kit.Pki) -> None:
    root = request()
    header = root.find("s:Header", kit.NS)
    assert header is not None
    targets = [body(root), security_header(root).find("wsu:Timestamp", kit.NS),
               *header.findall("wsa:*", kit.NS)]
    verify(security, kit.sign(root, pki.client, targets))


def test_a_signature_may_cover_its_own_token(security: wssec.WsSecurity, pki: kit.Pki) -> None:
    """Some toolkits sign the BinarySecurityToken too (a public certificate: nothing to wrap)."""
    verify(security, kit.sign(request(), pki.client, sign_token=True))


def test_unsigned_requests_pass_when_signatures_are_not_required(pki: kit.Pki) -> None:
    hook = wssec.WsSecurity(wssec.TrustStore([pki.ca.certificate]), require=False, signer=None)
    verify(hook, etree.fromstring(envelope(rad69_body({(STUDY, SERIES): [DOCUMENT]}, REPOSITORY)).encode()))


# --- refused: each variant, and the fault it earns -------------------------------------------------

def altered_body(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    element = body(root).find(f".//{{{IHE}}}DocumentUniqueId")
    assert element is not None
    element.text = "9.9.9.9"
    return root


def body_wrapped_in_a_header(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    signed = attacker_body(root)
    header = root.find("s:Header", kit.NS)
    assert header is not None
    etree.SubElement(header, "{urn:example:attacker}Wrapper").append(signed)
    return root


def body_wrapped_with_its_id_copied(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    signed = attacker_body(root, same_id=True)
    header = root.find("s:Header", kit.NS)
    assert header is not None
    etree.SubElement(header, "{urn:example:attacker}Wrapper").append(signed)
    return root


def body_moved_into_signature_object(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    signed = attacker_body(root)
    signature = security_header(root).find("ds:Signature", kit.NS)
    assert signature is not None
    etree.SubElement(signature, f"{{{kit.DS}}}Object").append(signed)
    return root


def body_moved_into_the_security_header(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    security_header(root).append(attacker_body(root))
    return root


def second_body_before_the_signed_one(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    attacker_body(root)
    return root


def duplicate_id_on_another_header(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    header = root.find("s:Header", kit.NS)
    assert header is not None
    decoy = etree.SubElement(header, "{urn:example:attacker}Decoy")
    decoy.set(kit.WSU_ID, body(root).get(kit.WSU_ID) or "")
    return root


def xpointer_reference(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    reference = security_header(root).find("ds:Signature/ds:SignedInfo/ds:Reference", kit.NS)
    assert reference is not None
    reference.set("URI", f"#xpointer(id('{reference.get('URI', '')[1:]}'))")
    return root


def whole_document_reference(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    reference = security_header(root).find("ds:Signature/ds:SignedInfo/ds:Reference", kit.NS)
    assert reference is not None
    reference.set("URI", "")
    return root


def signature_over_an_element_inside_the_body(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client, [body(root)[0], security_header(root).find("wsu:Timestamp", kit.NS)])
    body(root)[0].addprevious(body(request("9.9.9.9"))[0])
    return root


def signature_over_the_timestamp_only(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.client, [security_header(root).find("wsu:Timestamp", kit.NS)])


def timestamp_not_signed(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.client, [body(root)])


def second_security_header(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    security_header(root).addnext(etree.fromstring(f'<wsse:Security xmlns:wsse="{kit.WSSE}"/>'))
    return root


def untrusted_certificate(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.rogue)


def expired_certificate(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.expired)


def token_of_another_trusted_certificate(root: etree._Element, pki: kit.Pki) -> etree._Element:
    other = kit.identity("other.example", pki.ca)
    return kit.sign(root, pki.client, token_certificate=other.certificate)


def key_info_pointing_outside_the_header(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    token = security_header(root).find("wsse:BinarySecurityToken", kit.NS)
    header = root.find("s:Header", kit.NS)
    assert token is not None and header is not None
    etree.SubElement(header, "{urn:example:attacker}Tokens").append(token)
    return root


def key_info_with_an_inline_certificate(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    key_info = security_header(root).find("ds:Signature/ds:KeyInfo", kit.NS)
    assert key_info is not None
    key_info.clear()
    data = etree.SubElement(key_info, f"{{{kit.DS}}}X509Data")
    etree.SubElement(data, f"{{{kit.DS}}}X509Certificate").text = "AAAA"
    return root


def expired_timestamp(root: etree._Element, pki: kit.Pki) -> etree._Element:
    stamp = security_header(root).find("wsu:Timestamp", kit.NS)
    assert stamp is not None
    stamp.getparent().replace(stamp, etree.fromstring(kit.timestamp(datetime.now(UTC) - timedelta(minutes=20))))  # type: ignore[union-attr]
    return kit.sign(root, pki.client)


def timestamp_from_the_future(root: etree._Element, pki: kit.Pki) -> etree._Element:
    stamp = security_header(root).find("wsu:Timestamp", kit.NS)
    assert stamp is not None
    stamp.getparent().replace(stamp, etree.fromstring(kit.timestamp(datetime.now(UTC) + timedelta(minutes=20))))  # type: ignore[union-attr]
    return kit.sign(root, pki.client)


def xpath_transform_stripping_the_document_uid(root: etree._Element, pki: kit.Pki) -> etree._Element:
    """A valid signature whose transform leaves the DocumentUniqueId out of the digest."""
    root = kit.sign(root, pki.client, transforms=(),
                    xpath=("not(ancestor-or-self::ihe:DocumentUniqueId)", {"ihe": IHE}))
    element = body(root).find(f".//{{{IHE}}}DocumentUniqueId")
    assert element is not None
    element.text = "9.9.9.9"  # outside the digest: the signature still verifies in xmlsec
    return root


def enveloped_transform(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.client, transforms=(xmlsec.constants.TransformEnveloped,
                                                  xmlsec.constants.TransformExclC14N))


def rsa_sha1_signature(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.client, method=xmlsec.constants.TransformRsaSha1)


def sha1_digest(root: etree._Element, pki: kit.Pki) -> etree._Element:
    return kit.sign(root, pki.client, digest=xmlsec.constants.TransformSha1)


def truncated_hmac(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    method = security_header(root).find("ds:Signature/ds:SignedInfo/ds:SignatureMethod", kit.NS)
    assert method is not None
    method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
    etree.SubElement(method, f"{{{kit.DS}}}HMACOutputLength").text = "8"
    return root


def inclusive_canonicalization(root: etree._Element, pki: kit.Pki) -> etree._Element:
    root = kit.sign(root, pki.client)
    method = security_header(root).find("ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod", kit.NS)
    assert method is not None
    method.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    return root


VARIANTS: list[tuple[Callable[[etree._Element, kit.Pki], etree._Element], type[SecurityRefused]]] = [
    (altered_body, FailedCheck),
    (body_wrapped_in_a_header, InvalidSecurity),
    (body_wrapped_with_its_id_copied, InvalidSecurity),
    (body_moved_into_signature_object, InvalidSecurity),
    (body_moved_into_the_security_header, InvalidSecurity),
    (second_body_before_the_signed_one, InvalidSecurity),
    (duplicate_id_on_another_header, InvalidSecurity),
    (xpointer_reference, InvalidSecurity),
    (whole_document_reference, InvalidSecurity),
    (signature_over_an_element_inside_the_body, InvalidSecurity),
    (signature_over_the_timestamp_only, InvalidSecurity),
    (timestamp_not_signed, InvalidSecurity),
    (second_security_header, InvalidSecurity),
    (untrusted_certificate, FailedAuthentication),
    (expired_certificate, FailedAuthentication),
    (token_of_another_trusted_certificate, FailedCheck),
    (key_info_pointing_outside_the_header, SecurityTokenUnavailable),
    (key_info_with_an_inline_certificate, SecurityTokenUnavailable),
    (expired_timestamp, MessageExpired),
    (timestamp_from_the_future, MessageExpired),
    (xpath_transform_stripping_the_document_uid, UnsupportedAlgorithm),
    (enveloped_transform, UnsupportedAlgorithm),
    (rsa_sha1_signature, UnsupportedAlgorithm),
    (sha1_digest, UnsupportedAlgorithm),
    (truncated_hmac, UnsupportedAlgorithm),
    (inclusive_canonicalization, UnsupportedAlgorithm),
]


@pytest.mark.parametrize(("variant", "refusal"), VARIANTS, ids=[v.__name__ for v, _ in VARIANTS])
def test_variant_is_refused(variant: Callable[[etree._Element, kit.Pki], etree._Element],
                            refusal: type[SecurityRefused], security: wssec.WsSecurity, pki: kit.Pki) -> None:
    root = variant(request(), pki)
    with pytest.raises(SecurityRefused) as info:
        verify(security, root)
    assert type(info.value) is refusal, str(info.value)


def test_the_xpath_stripped_message_does_verify_in_xmlsec_alone(pki: kit.Pki) -> None:
    """The variant above is a real attack: xmlsec by itself accepts the altered message."""
    root = xpath_transform_stripping_the_document_uid(request(), pki)
    signature = security_header(root).find("ds:Signature", kit.NS)
    context = xmlsec.SignatureContext()
    for target in (body(root), security_header(root).find("wsu:Timestamp", kit.NS)):
        context.register_id(target, "Id", kit.WSU)
    context.key = xmlsec.Key.from_memory(pki.client.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.verify(signature)


def test_a_wrapped_body_does_verify_in_xmlsec_alone(pki: kit.Pki) -> None:
    """So does a wrapped Body: only the shape checks stop it."""
    root = body_wrapped_in_a_header(request(), pki)
    signature = security_header(root).find("ds:Signature", kit.NS)
    context = xmlsec.SignatureContext()
    for element in root.iter():
        if element.get(kit.WSU_ID):
            context.register_id(element, "Id", kit.WSU)
    context.key = xmlsec.Key.from_memory(pki.client.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.verify(signature)


def test_unsigned_request_is_refused_when_signatures_are_required(security: wssec.WsSecurity) -> None:
    with pytest.raises(InvalidSecurity, match="requires signed requests"):
        verify(security, etree.fromstring(envelope(rad69_body({(STUDY, SERIES): [DOCUMENT]}, REPOSITORY)).encode()))


def test_must_understand_security_is_a_fault_when_not_verifying(pki: kit.Pki) -> None:
    """No trust store, no verification: a mustUnderstand wsse:Security is not silently accepted."""
    signing_only = wssec.WsSecurity(None, require=False, signer=None)
    with pytest.raises(Fault) as info:
        verify(signing_only, kit.sign(request(), pki.client))
    assert info.value.code == MUST_UNDERSTAND


def test_faults_carry_the_wss_subcode() -> None:
    fault = Fault.of(FailedCheck("the signature does not verify"))
    assert (fault.code, fault.subcode, fault.status) == ("Sender", (ns.WSSE, "FailedCheck"), 400)
    document = soap_envelope.serialize(soap_envelope.fault_envelope(soap_envelope.SOAP12, fault, None))
    parsed = etree.fromstring(document)
    value = parsed.find(".//s:Subcode/s:Value", kit.NS)
    assert value is not None and value.text == "wsse:FailedCheck"
    assert value.nsmap["wsse"] == ns.WSSE


# --- signed answers -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_identity(pki: kit.Pki) -> kit.Identity:
    return kit.identity("xdsi.example", pki.ca)


def answer() -> etree._Element:
    payload = etree.Element(f"{{{IHE}}}RetrieveDocumentSetResponse")
    return soap_envelope.response(soap_envelope.SOAP12, "urn:ihe:iti:2007:RetrieveDocumentSetResponse",
                                  f"urn:uuid:{uuid.uuid4()}", payload)


def signer_of(identity: kit.Identity) -> wssec.Signer:
    return wssec.Signer(identity.key_pem, None, identity.certificate)


def test_signed_answers_verify_in_zeep_and_here(server_identity: kit.Identity, pki: kit.Pki,
                                                tmp_path: Path) -> None:
    hook = wssec.WsSecurity(None, require=False, signer=signer_of(server_identity))
    signed = kit.serialize(hook.secure(answer()))
    kit.zeep_verify(signed, server_identity.cert_pem, tmp_path)
    checker = wssec.WsSecurity(wssec.TrustStore([pki.ca.certificate]), require=True, signer=None)
    verify(checker, etree.fromstring(signed))
    wsa = etree.fromstring(signed).find("s:Header/wsa:Action", kit.NS)
    assert wsa is not None and wsa.get(kit.WSU_ID) is not None  # the addressing headers are signed too


def mtom_answer(documents: dict[str, bytes]) -> tuple[etree._Element, list[Attachment]]:
    """An answer whose Body names each document by an xop:Include, as RAD-69 answers do."""
    payload = etree.Element(f"{{{IHE}}}RetrieveDocumentSetResponse")
    attachments = []
    for number, (uid, data) in enumerate(documents.items(), 1):
        response = etree.SubElement(payload, f"{{{IHE}}}DocumentResponse")
        etree.SubElement(response, f"{{{IHE}}}DocumentUniqueId").text = uid
        attachment = Attachment(new_content_id(number), "application/dicom",
                                lambda data=data: (data[i:i + 1000] for i in range(0, len(data), 1000)), len(data))
        etree.SubElement(etree.SubElement(response, f"{{{IHE}}}Document"), f"{{{ns.XOP}}}Include",
                         href=attachment.href)
        attachments.append(attachment)
    reply = soap_envelope.response(soap_envelope.SOAP12, "urn:ihe:iti:2007:RetrieveDocumentSetResponse", None, payload)
    return reply, attachments


@pytest.mark.parametrize("elliptic", [False, True], ids=["rsa", "ecdsa"])
def test_signed_mtom_answers_cover_the_documents(pki: kit.Pki, elliptic: bool, tmp_path: Path) -> None:
    """The signature is over the XOP infoset: zeep, decoding XOP first, verifies it, and one
    byte changed in a document breaks it. Documents of 0 to 4 bytes past a 1,000-byte chunk
    test the base64 carried across chunk boundaries."""
    identity = kit.identity("xdsi.example", pki.ca, elliptic=elliptic)
    documents = {f"1.2.3.{n}": bytes(range(256)) * 8 + b"x" * n for n in range(5)}
    reply, attachments = mtom_answer(documents)
    hook = wssec.WsSecurity(None, require=False, signer=signer_of(identity))
    signed = kit.serialize(hook.secure(reply, attachments))
    parts = {a.content_id: documents[uid] for a, uid in zip(attachments, documents, strict=True)}
    kit.zeep_verify(signed, identity.cert_pem, tmp_path, parts)
    from zeep.exceptions import SignatureVerificationFailed

    altered = dict(parts)
    first = attachments[0].content_id
    altered[first] = b"\xff" + altered[first][1:]
    with pytest.raises(SignatureVerificationFailed):
        kit.zeep_verify(signed, identity.cert_pem, tmp_path, altered)


def test_a_tampered_signed_answer_fails_in_zeep(server_identity: kit.Identity, tmp_path: Path) -> None:
    from zeep.exceptions import SignatureVerificationFailed

    hook = wssec.WsSecurity(None, require=False, signer=signer_of(server_identity))
    signed = hook.secure(answer())
    body(signed)[0].set("tampered", "yes")
    with pytest.raises(SignatureVerificationFailed):
        kit.zeep_verify(kit.serialize(signed), server_identity.cert_pem, tmp_path)


def test_soap11_answers_are_signed_with_soap11_must_understand(server_identity: kit.Identity) -> None:
    hook = wssec.WsSecurity(None, require=False, signer=signer_of(server_identity))
    reply = soap_envelope.response(soap_envelope.SOAP11, "urn:x", None, etree.Element("{urn:x}R"))
    security = hook.secure(reply).find(f"{{{ns.SOAP11}}}Header/{{{kit.WSSE}}}Security")
    assert security is not None and security.get(f"{{{ns.SOAP11}}}mustUnderstand") == "1"


# --- settings --------------------------------------------------------------------------------------

def test_nothing_configured_means_no_hook(tmp_path: Path) -> None:
    assert wssec.from_settings(Settings.load(environ={})) is None


def test_settings_build_a_verifying_and_signing_hook(pki: kit.Pki, server_identity: kit.Identity,
                                                     tmp_path: Path) -> None:
    trust = tmp_path / "trust.pem"
    trust.write_bytes(pki.ca.cert_pem + kit.identity("another CA", ca=True).cert_pem)
    key, cert = server_identity.write(tmp_path, "server")
    hook = wssec.from_settings(Settings.load(environ={
        "XDSI_WSSEC_TRUST_STORE": str(trust), "XDSI_WSSEC_REQUIRE": "true",
        "XDSI_WSSEC_SIGN_KEY": str(key), "XDSI_WSSEC_SIGN_CERT": str(cert)}))
    assert hook is not None and hook.require and hook.signer is not None
    assert hook.understood == frozenset({ns.WSSE})
    verify(hook, kit.sign(request(), pki.client))


def test_an_encrypted_key_is_read_with_its_password(server_identity: kit.Identity, tmp_path: Path) -> None:
    key = tmp_path / "server.key.pem"
    key.write_bytes(server_identity.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                      BestAvailableEncryption(b"s3cret")))
    cert = tmp_path / "server.cert.pem"
    cert.write_bytes(server_identity.cert_pem)
    env = {"XDSI_WSSEC_SIGN_KEY": str(key), "XDSI_WSSEC_SIGN_CERT": str(cert)}
    assert wssec.from_settings(Settings.load(environ={**env, "XDSI_WSSEC_SIGN_KEY_PASSWORD": "s3cret"})) is not None
    with pytest.raises(ConfigError, match="wssec_sign_key"):
        wssec.from_settings(Settings.load(environ={**env, "XDSI_WSSEC_SIGN_KEY_PASSWORD": "wrong"}))


def test_a_key_that_is_not_the_certificates_stops_start_up(pki: kit.Pki, server_identity: kit.Identity,
                                                          tmp_path: Path) -> None:
    key, _ = pki.client.write(tmp_path, "client")
    _, cert = server_identity.write(tmp_path, "server")
    with pytest.raises(ConfigError, match="signing a test message failed"):
        wssec.from_settings(Settings.load(environ={"XDSI_WSSEC_SIGN_KEY": str(key), "XDSI_WSSEC_SIGN_CERT": str(cert)}))


def test_a_trust_store_without_certificates_stops_start_up(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    with pytest.raises(ConfigError, match="wssec_trust_store"):
        wssec.from_settings(Settings.load(environ={"XDSI_WSSEC_TRUST_STORE": str(empty)}))


def test_the_key_password_is_a_secret(tmp_path: Path) -> None:
    config = tmp_path / "xdsi.toml"
    config.write_text('wssec_sign_key_password = "s3cret"\n')
    with pytest.raises(ConfigError, match="secret"):
        Settings.load(environ={"XDSI_CONFIG": str(config)})


def test_xmlsec_imports_beside_lxml() -> None:
    """Both bundle libxml2; xmlsec refuses to import beside another version (pinned as a pair)."""
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION


def test_deep_copy_keeps_signed_requests_verifiable(security: wssec.WsSecurity, pki: kit.Pki) -> None:
    """The check reads the parsed tree; a copy of it (as a proxy might make) verifies the same."""
    verify(security, copy.deepcopy(kit.sign(request(), pki.client)))
