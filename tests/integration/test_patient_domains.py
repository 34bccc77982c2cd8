"""Per-domain access: a caller limited to some Issuers of Patient ID finds and retrieves nothing of other
patients, by any protocol (QIDO-RS at every level, WADO-RS, metadata, rendered, thumbnail, WADO-URI, RAD-69,
WADO-WS metadata, DELETE), over real HTTP to the real server, for users of the users file and bearer tokens."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from pydicom.uid import generate_uid

from tests.conftest import DATABASES
from tests.dicomfiles import make_instance
from tests.integration import test_auth as auth_test
from tests.live import LiveServer, clean_env
from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from tests.wadows import FAILURE, SUCCESS, answer, envelope, post, rad69_body
from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.security.basic import add_user, read_users

BOUNDARY = "xdsi-domains-boundary"
CLAIM = "patient_issuers"
INFORMATION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
WADO = "http://dicom.nema.org/PS3.18/2013/wado"
IHE = "urn:ihe:iti:xds-b:2007"
# One study per domain: name -> (Issuer of Patient ID, study, series, instance)
DOMAINS = {"A": "HOSP-A", "B": "HOSP-B", "none": ""}


def basic(name: str) -> dict[str, str]:
    return auth_test.basic(name, f"{name} pass")


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(path, "admin", "admin pass", ["admin"])
    add_user(path, "reader-a", "reader-a pass", ["read"], ["HOSP-A"])
    add_user(path, "reader-none", "reader-none pass", ["read"], [""])
    add_user(path, "deleter-a", "deleter-a pass", ["read", "delete"], ["HOSP-A"])
    return path


@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, users_file: Path,
           idp: TokenIssuer) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp(f"domains-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    live = LiveServer(url, folder / "store", auth="basic,bearer", users_file=str(users_file),
                      jwks=str(idp.jwks_file), jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_issuers_claim=CLAIM,
                      delete_enabled="true")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def studies(server: LiveServer) -> dict[str, tuple[str, str, str]]:
    """Stored by the administrator: domain name -> (study, series, instance)."""
    found = {}
    for name, issuer in DOMAINS.items():
        uids = (generate_uid(), generate_uid(), generate_uid())
        domain = {"IssuerOfPatientID": issuer} if issuer else {}
        instance = make_instance(study_uid=uids[0], series_uid=uids[1], sop_uid=uids[2], patient_id=f"PAT-{name}",
                                 rows=8, columns=8, **domain)
        body = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + instance
                + f"\r\n--{BOUNDARY}--\r\n".encode())
        reply = server.request("POST", "/dicom-web/studies", body, {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
            "Accept": "application/dicom+json", **basic("admin")})
        assert reply.status == 200, reply.body[:500]
        found[name] = uids
    return found


def _studies_seen(server: LiveServer, headers: dict[str, str], query: str = "") -> set[str]:
    reply = server.request("GET", f"/dicom-web/studies{query}", headers={"Accept": "application/dicom+json", **headers})
    assert reply.status in (200, 204), reply.body[:300]
    return {item["0020000D"]["Value"][0] for item in json.loads(reply.body or b"[]")}


def _retrievals(study: str, series: str, instance: str) -> list[str]:
    instance_url = f"/dicom-web/studies/{study}/series/{series}/instances/{instance}"
    uri = "/wado?" + urllib.parse.urlencode({"requestType": "WADO", "studyUID": study, "seriesUID": series,
                                             "objectUID": instance, "contentType": "image/jpeg"})
    return [f"/dicom-web/studies/{study}", f"/dicom-web/studies/{study}/metadata",
            f"/dicom-web/studies/{study}/series/{series}/metadata", instance_url, f"{instance_url}/metadata",
            f"{instance_url}/frames/1", f"{instance_url}/rendered", f"{instance_url}/thumbnail",
            f"/dicom-web/studies/{study}/rendered", f"/dicom-web/studies/{study}/series/{series}/thumbnail", uri]


def _searches(study: str, series: str) -> list[str]:
    return [f"/dicom-web/studies?StudyInstanceUID={study}", f"/dicom-web/series?StudyInstanceUID={study}",
            f"/dicom-web/instances?StudyInstanceUID={study}", f"/dicom-web/studies/{study}/series",
            f"/dicom-web/studies/{study}/instances", f"/dicom-web/studies/{study}/series/{series}/instances",
            f"/dicom-web/instances?SeriesInstanceUID={series}"]


def test_a_limited_reader_searches_only_its_domain(server: LiveServer, studies: dict) -> None:
    assert _studies_seen(server, basic("reader-a")) == {studies["A"][0]}
    assert _studies_seen(server, basic("reader-none")) == {studies["none"][0]}
    assert _studies_seen(server, basic("admin")) >= {uids[0] for uids in studies.values()}
    assert _studies_seen(server, basic("reader-a"), "?PatientID=PAT-B") == set()
    assert _studies_seen(server, basic("admin"), "?PatientID=PAT-B") == {studies["B"][0]}


@pytest.mark.parametrize("level", range(7))
def test_searches_at_every_level_show_nothing_of_another_domain(server: LiveServer, studies: dict,
                                                               level: int) -> None:
    own, other = _searches(*studies["A"][:2])[level], _searches(*studies["B"][:2])[level]
    accept = {"Accept": "application/dicom+json"}
    assert server.request("GET", own, headers={**accept, **basic("reader-a")}).status == 200
    refused = server.request("GET", other, headers={**accept, **basic("reader-a")})
    assert refused.status == 204 or json.loads(refused.body) == [], (other, refused.body[:300])
    assert server.request("GET", other, headers={**accept, **basic("admin")}).status == 200


@pytest.mark.parametrize("which", range(11))
def test_every_retrieval_of_another_domain_is_not_found(server: LiveServer, studies: dict, which: int) -> None:
    own, other = _retrievals(*studies["A"])[which], _retrievals(*studies["B"])[which]
    assert server.request("GET", own, headers=basic("reader-a")).status == 200, own
    assert server.request("GET", other, headers=basic("reader-a")).status == 404, other
    assert server.request("GET", other, headers=basic("admin")).status == 200, other


def test_rad69_finds_no_document_of_another_domain(server: LiveServer, studies: dict) -> None:
    def retrieve(domain: str, user: str):
        study, series, instance = studies[domain]
        body = rad69_body({(study, series): [instance]}, None, (EXPLICIT_VR_LITTLE_ENDIAN,))
        reply = post(server, envelope(body), **basic(user))
        assert reply.status == 200, reply.body[:500]
        return answer(reply)

    own = retrieve("A", "reader-a")
    assert own.status() == SUCCESS and set(own.documents()) == {studies["A"][2]}
    other = retrieve("B", "reader-a")
    assert other.status() == FAILURE and not other.documents()
    assert [code for code, _ in other.errors()] == ["XDSMissingDocument"]
    assert retrieve("B", "admin").status() == SUCCESS


def test_wado_ws_metadata_by_document_uid_alone_hides_another_domain(server: LiveServer, studies: dict) -> None:
    def information(domain: str, user: str):
        request = (f'<w:RetrieveImagingDocumentSetInformationRequest xmlns:w="{WADO}" xmlns:i="{IHE}">'
                   f"<w:StudyRequest><w:SeriesRequest><w:DocumentInformationRequest>"
                   f"<i:DocumentUniqueId>{studies[domain][2]}</i:DocumentUniqueId>"
                   f"</w:DocumentInformationRequest></w:SeriesRequest></w:StudyRequest>"
                   f"</w:RetrieveImagingDocumentSetInformationRequest>")
        reply = post(server, envelope(request, action=INFORMATION), **basic(user))
        assert reply.status == 200, reply.body[:500]
        return answer(reply)

    assert information("A", "reader-a").status() == SUCCESS
    other = information("B", "reader-a")
    assert other.status() == FAILURE and b"PAT-B" not in etree.tostring(other.envelope)
    assert information("B", "admin").status() == SUCCESS


def test_a_limited_deleter_cannot_delete_another_domain(server: LiveServer, studies: dict) -> None:
    study = studies["B"][0]
    assert server.request("DELETE", f"/dicom-web/studies/{study}", headers=basic("deleter-a")).status == 404
    assert _studies_seen(server, basic("admin"), f"?StudyInstanceUID={study}") == {study}


def test_bearer_tokens_are_limited_by_their_issuers_claim(server: LiveServer, studies: dict,
                                                          idp: TokenIssuer) -> None:
    def seen(**claims: object) -> set[str]:
        return _studies_seen(server, {"Authorization": f"Bearer {idp.token(**claims)}"})

    everything = {uids[0] for uids in studies.values()}
    assert seen(patient_issuers=["HOSP-B"]) == {studies["B"][0]}
    assert seen(patient_issuers="HOSP-A") == {studies["A"][0]}
    assert seen(patient_issuers=["HOSP-A", ""]) == {studies["A"][0], studies["none"][0]}
    assert seen(patient_issuers=["*"]) >= everything
    assert seen() == set()  # the claim is configured: a token without it sees no patient
    assert seen(patient_issuers=42) == set()


def test_the_users_file_keeps_issuers_with_any_character(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "odd", "a pass", ["read"], ["A,B:C;D%", ""])
    add_user(path, "free", "a pass", ["read"])
    users = read_users(path)
    assert users["odd"].issuers == frozenset({"A,B:C;D%", ""}) and users["free"].issuers is None


def test_user_add_limits_a_user_to_the_issuers_named(server: LiveServer, users_file: Path, studies: dict,
                                                     request: pytest.FixtureRequest) -> None:
    # The users file is shared by the server of each database: a name of its own per server.
    name = f"cli-{request.node.callspec.params['server']}"
    added = subprocess.run([sys.executable, "-m", "xdsi", "user", "add", name, "--role", "read", "--issuer", "HOSP-B",
                            "--issuer", ""], input=f"{name} pass\n", capture_output=True, text=True, timeout=60,
                           env={**clean_env(), "XDSI_USERS_FILE": str(users_file)})
    assert added.returncode == 0, added.stderr
    assert f"added {name} (read; patients of '', 'HOSP-B')" in added.stdout
    assert _studies_seen(server, basic(name)) == {studies["B"][0], studies["none"][0]}
