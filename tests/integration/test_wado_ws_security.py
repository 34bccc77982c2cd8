"""WS-Security on the live WADO-WS endpoint: a server that requires signed requests from a trust
store's certificates and signs its answers, spoken to by xmlsec- and zeep-signed raw SOAP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from pydicom.data import get_testdata_file

from tests import wssec_kit as kit
from tests.integration.test_cli import run_xdsi
from tests.integration.test_stow_rs import dicom_parts
from tests.integration.test_stow_rs import post as stow
from tests.live import LiveServer, free_port
from tests.wadows import EXPLICIT, SUCCESS, Answer, answer, envelope, fault, mtom_request, post, rad69_body

REPOSITORY = "1.3.6.1.4.1.21367.13.80.110.1"
IMPLICIT = "1.2.840.10008.1.2"
IHE = "urn:ihe:iti:xds-b:2007"


@pytest.fixture(scope="module")
def pki() -> kit.Pki:
    return kit.make_pki()


@pytest.fixture(scope="module")
def server_identity(pki: kit.Pki) -> kit.Identity:
    return kit.identity("xdsi.example", pki.ca)


@pytest.fixture(scope="module")
def secured(pki: kit.Pki, server_identity: kit.Identity,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("wado-ws-security")
    trust = folder / "trust.pem"
    trust.write_bytes(pki.ca.cert_pem)
    key, cert = server_identity.write(folder, "server")
    server = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", repository_unique_id=REPOSITORY,
                        wssec_trust_store=str(trust), wssec_require="true", wssec_sign_key=str(key),
                        wssec_sign_cert=str(cert))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stored(secured: LiveServer) -> tuple[str, str, str, bytes]:
    path = Path(get_testdata_file("CT_small.dcm"))
    assert stow(secured, dicom_parts(path.read_bytes())).status == 200
    ds = pydicom.dcmread(path)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path.read_bytes()


def message(stored: tuple[str, str, str, bytes], uid: str | None = None,
            syntaxes: tuple[str, ...] = (EXPLICIT,)) -> str:
    study, series, instance, _ = stored
    return envelope(rad69_body({(study, series): [uid or instance]}, REPOSITORY, syntaxes))


def signed(stored: tuple[str, str, str, bytes], signer: kit.Identity, syntaxes: tuple[str, ...] = (EXPLICIT,),
           **stamp: datetime) -> bytes:
    root = kit.add_security(message(stored, syntaxes=syntaxes), stamp=kit.timestamp(**stamp) if stamp else None)
    return kit.serialize(kit.sign(root, signer))


def assert_signed_by(found: Answer, identity: kit.Identity, folder: Path) -> None:
    """zeep's check, over the XOP infoset: the documents are covered by the signature."""
    kit.zeep_verify(etree.tostring(found.envelope), identity.cert_pem, folder, found.attachments)


def test_a_signed_request_is_answered_and_the_answer_is_signed(secured: LiveServer, stored: tuple,
                                                               pki: kit.Pki, server_identity: kit.Identity,
                                                               tmp_path: Path) -> None:
    reply = post(secured, signed(stored, pki.client))
    assert reply.status == 200, reply.body[:2000]
    found = answer(reply)
    assert found.status() == SUCCESS
    assert found.documents() == {stored[2]: stored[3]}
    assert_signed_by(found, server_identity, tmp_path)


def test_a_transcoded_document_is_covered_by_the_answers_signature(secured: LiveServer, stored: tuple,
                                                                    pki: kit.Pki, server_identity: kit.Identity,
                                                                    tmp_path: Path) -> None:
    """Implicit VR Little Endian only: the document is produced for this answer, and the bytes
    the signature covers are the bytes sent."""
    reply = post(secured, signed(stored, pki.client, syntaxes=(IMPLICIT,)))
    assert reply.status == 200, reply.body[:2000]
    found = answer(reply)
    [(uid, data)] = found.documents().items()
    assert uid == stored[2] and pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == IMPLICIT
    assert_signed_by(found, server_identity, tmp_path)


def test_a_deidentified_document_is_covered_by_the_answers_signature(secured: LiveServer, stored: tuple,
                                                                      pki: kit.Pki, server_identity: kit.Identity,
                                                                      tmp_path: Path) -> None:
    """Anonymize: the spliced document is read once for the digest and once for the wire, alike."""
    text = message(stored).replace("</ihe:DocumentUniqueId>", "</ihe:DocumentUniqueId>"
                                   '<w:Anonymize xmlns:w="urn:dicom:wado:ws:2011">true</w:Anonymize>')
    reply = post(secured, kit.serialize(kit.sign(kit.add_security(text), pki.client)))
    assert reply.status == 200, reply.body[:2000]
    found = answer(reply)
    [(uid, data)] = found.documents().items()
    out = pydicom.dcmread(io.BytesIO(data))
    assert uid == stored[2] and out.PatientIdentityRemoved == "YES" and out.SOPInstanceUID != stored[2]
    assert_signed_by(found, server_identity, tmp_path)


def test_a_zeep_signed_request_is_answered(secured: LiveServer, stored: tuple, pki: kit.Pki,
                                          tmp_path: Path) -> None:
    root = kit.zeep_sign(kit.add_security(message(stored)), pki.client, tmp_path)
    reply = post(secured, kit.serialize(root))
    assert reply.status == 200, reply.body[:2000]
    assert answer(reply).documents() == {stored[2]: stored[3]}


def test_a_signed_mtom_request_is_answered(secured: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    data, content_type = mtom_request(signed(stored, pki.client).decode())
    reply = post(secured, data, content_type)
    assert reply.status == 200, reply.body[:2000]
    assert answer(reply).status() == SUCCESS


def test_an_unsigned_request_is_refused(secured: LiveServer, stored: tuple, server_identity: kit.Identity,
                                        tmp_path: Path) -> None:
    reply = post(secured, message(stored))
    assert reply.status == 400
    code, subcode, reason = fault(reply)
    assert (code, subcode) == ("env:Sender", "wsse:InvalidSecurity")
    assert "signed" in (reason or "")
    assert_signed_by(answer(reply), server_identity, tmp_path)  # faults are signed too


def test_a_wrapped_body_is_refused_and_not_acted_on(secured: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    """The signed Body (asking for an unknown document) moves to a header; the attacker's Body asks
    for the stored one. Acted on, the answer would carry the document."""
    root = kit.add_security(message(stored, "1.2.3.999"))
    root = kit.sign(root, pki.client)
    signed_body = root.find("s:Body", kit.NS)
    forged = etree.fromstring(message(stored).encode()).find("s:Body", kit.NS)
    assert signed_body is not None and forged is not None
    signed_body.addprevious(forged)
    header = root.find("s:Header", kit.NS)
    assert header is not None
    etree.SubElement(header, "{urn:example:attacker}Wrapper").append(signed_body)
    reply = post(secured, kit.serialize(root))
    assert reply.status == 400
    assert fault(reply)[:2] == ("env:Sender", "wsse:InvalidSecurity")
    assert not answer(reply).attachments


def test_an_altered_body_fails_its_check(secured: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    root = kit.sign(kit.add_security(message(stored, "1.2.3.999")), pki.client)
    uid = root.find(f".//{{{IHE}}}DocumentUniqueId")
    assert uid is not None
    uid.text = stored[2]
    reply = post(secured, kit.serialize(root))
    assert reply.status == 400
    assert fault(reply)[:2] == ("env:Sender", "wsse:FailedCheck")


def test_an_untrusted_signer_fails_authentication(secured: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    reply = post(secured, signed(stored, pki.rogue))
    assert reply.status == 400
    assert fault(reply)[:2] == ("env:Sender", "wsse:FailedAuthentication")


def test_an_expired_message_is_refused(secured: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    reply = post(secured, signed(stored, pki.client, created=datetime.now(UTC) - timedelta(hours=1)))
    assert reply.status == 400
    assert fault(reply)[:2] == ("env:Sender", "wsse:MessageExpired")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("wado-ws-plain")
    server = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", repository_unique_id=REPOSITORY)
    yield server
    server.stop()


def test_without_ws_security_a_must_understand_security_header_faults(plain: LiveServer, pki: kit.Pki) -> None:
    """Never silently accepted (SOAP 1.2 Part 1 5.2.3): the header is marked, and not processed here."""
    study_series = ("1.2.3", "1.2.3.4", "1.2.3.4.5", b"")
    reply = post(plain, signed(study_series, pki.client))
    assert reply.status == 500
    assert fault(reply)[0] == "env:MustUnderstand"


def test_a_bad_signing_key_stops_the_server_at_start(pki: kit.Pki, server_identity: kit.Identity,
                                                     tmp_path: Path) -> None:
    """`xdsi serve` signs a test message first: a key that is not its certificate's ends it, named."""
    key, _ = pki.client.write(tmp_path, "client")
    _, cert = server_identity.write(tmp_path, "server")
    done = run_xdsi("serve", "--bind", f"127.0.0.1:{free_port()}", env={
        "XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'xdsi.db'}", "XDSI_STORAGE": str(tmp_path / "store"),
        "XDSI_WSSEC_SIGN_KEY": str(key), "XDSI_WSSEC_SIGN_CERT": str(cert)}, timeout=120)
    assert done.returncode == 2
    assert "wssec_sign_key / wssec_sign_cert: signing a test message failed" in done.stderr
    assert "Traceback" not in done.stderr
