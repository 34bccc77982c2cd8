"""IHE XUA on the live WADO-WS endpoint: callers named by a signed SAML 2.0 assertion in the message
(``auth = saml``), refused when it is missing, unsigned, signed by a stranger, altered, expired, for
another audience, or wrapped; other routes still need HTTP credentials."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from pydicom.data import get_testdata_file

from tests import wssec_kit as kit
from tests.integration.test_auth import basic
from tests.integration.test_stow_rs import dicom_parts
from tests.integration.test_stow_rs import post as stow
from tests.live import LiveServer
from tests.wadows import EXPLICIT, SUCCESS, answer, envelope, fault, post, rad69_body
from xdsi.security.basic import add_user

REPOSITORY = "1.3.6.1.4.1.21367.13.80.110.1"
AUDIENCE = "https://xdsi.example/wado-ws"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


@pytest.fixture(scope="module")
def pki() -> kit.Pki:
    return kit.make_pki()


@pytest.fixture(scope="module")
def server(pki: kit.Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("xua")
    trust = folder / "idp.pem"
    trust.write_bytes(pki.ca.cert_pem)
    users = folder / "users"
    add_user(users, "modality", "modality pass", ["store"])
    add_user(users, "viewer", "viewer pass", ["read"])
    live = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", repository_unique_id=REPOSITORY,
                      auth="basic,saml", users_file=str(users), saml_trust_store=str(trust), saml_audience=AUDIENCE)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def stored(server: LiveServer) -> tuple[str, str, str, bytes]:
    path = Path(get_testdata_file("CT_small.dcm"))
    assert stow(server, dicom_parts(path.read_bytes()), Authorization=basic("modality", "modality pass")["Authorization"]
                ).status == 200
    ds = pydicom.dcmread(path)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path.read_bytes()


def request(stored: tuple[str, str, str, bytes], assertion: etree._Element | None) -> bytes:
    study, series, instance, _ = stored
    return kit.with_assertion(envelope(rad69_body({(study, series): [instance]}, REPOSITORY, (EXPLICIT,))), assertion)


def test_a_caller_named_by_a_signed_assertion_retrieves(server: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    reply = post(server, request(stored, kit.saml_assertion(pki.client)))
    assert reply.status == 200, reply.body[:1000]
    found = answer(reply)
    assert found.status() == SUCCESS and found.documents() == {stored[2]: stored[3]}


def test_http_credentials_still_serve_the_soap_endpoint(server: LiveServer, stored: tuple) -> None:
    study, series, instance, data = stored
    reply = post(server, envelope(rad69_body({(study, series): [instance]}, REPOSITORY, (EXPLICIT,))),
                 **basic("viewer", "viewer pass"))
    assert reply.status == 200 and answer(reply).documents() == {instance: data}


def _refused(server: LiveServer, message: bytes) -> tuple[str, str | None, str]:
    reply = post(server, message)
    assert reply.status == 400, reply.body[:1000]
    assert b"CT_small" not in reply.body and b"<ihe:Document" not in reply.body
    return fault(reply)


def _wrapped_in_extension(assertion: etree._Element) -> bytes:
    """The genuine signed assertion hidden inside a forged one that names someone else (the signature
    still resolves by ID, to the hidden original)."""
    forged = copy.deepcopy(assertion)
    forged.set("ID", "_forged")
    forged.find(f"{{{kit.SAML}}}Subject/{{{kit.SAML}}}NameID").text = "mallory"
    extension = etree.SubElement(forged, f"{{{kit.SAML}}}Advice")
    extension.append(assertion)
    return forged


def _hidden_in_header(stored: tuple, assertion: etree._Element) -> bytes:
    """The genuine assertion moved to another header; a copy naming someone else, same ID, in Security."""
    forged = copy.deepcopy(assertion)
    forged.find(f"{{{kit.SAML}}}Subject/{{{kit.SAML}}}NameID").text = "mallory"
    root = etree.fromstring(request(stored, forged))
    header = root.find(f"{{{kit.SOAP12}}}Header")
    etree.SubElement(header, "{urn:example:x}Hidden").append(assertion)
    return kit.serialize(root)


def test_refusals(server: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    now = datetime.now(UTC)
    altered = kit.saml_assertion(pki.client)
    altered.find(f"{{{kit.SAML}}}Subject/{{{kit.SAML}}}NameID").text = "mallory"
    cases = {
        "missing": (request(stored, None), "FailedAuthentication", "requires a SAML"),
        "unsigned": (request(stored, kit.saml_assertion(None)), "InvalidSecurity", "one enveloped signature"),
        "stranger": (request(stored, kit.saml_assertion(pki.rogue)), "FailedAuthentication", "not issued by a trusted"),
        "altered": (request(stored, altered), "FailedCheck", "does not verify"),
        "expired": (request(stored, kit.saml_assertion(pki.client, not_before=now - timedelta(hours=2),
                                                       not_on_or_after=now - timedelta(hours=1))),
                    "FailedAuthentication", "expired"),
        "early": (request(stored, kit.saml_assertion(pki.client, not_before=now + timedelta(hours=1),
                                                     not_on_or_after=now + timedelta(hours=2))),
                  "FailedAuthentication", "not valid yet"),
        "audience": (request(stored, kit.saml_assertion(pki.client, audience="https://elsewhere.example")),
                     "FailedAuthentication", "not addressed to"),
        "no audience": (request(stored, kit.saml_assertion(pki.client, audience=None)),
                        "FailedAuthentication", "not addressed to"),
        "wrapped in advice": (request(stored, _wrapped_in_extension(kit.saml_assertion(pki.client))),
                              "InvalidSecurity", "does not cover the assertion"),
        "original hidden": (_hidden_in_header(stored, kit.saml_assertion(pki.client)), "InvalidSecurity",
                            "more than one element"),
        "two assertions": (request(stored, kit.saml_assertion(pki.client))
                           .replace(b"</wsse:Security>", etree.tostring(kit.saml_assertion(pki.client))
                                    + b"</wsse:Security>"), "InvalidSecurity", "one SAML assertion"),
    }
    for name, (message, code, words) in cases.items():
        _, subcode, reason = _refused(server, message)
        assert subcode is not None and subcode.endswith(code) and words in reason, (name, subcode, reason)


def test_rest_routes_still_need_http_credentials(server: LiveServer, stored: tuple, pki: kit.Pki) -> None:
    assert server.request("GET", "/dicom-web/studies").status == 401
    assert server.request("GET", "/dicom-web/studies", headers=basic("viewer", "viewer pass")).status == 200
