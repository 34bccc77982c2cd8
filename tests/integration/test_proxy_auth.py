"""Users authenticated by a fronting proxy (Kerberos, NTLM, Digest): the user header is believed from
the trusted proxy's address only, gets the roles and patient domains the users file gives it (else
``proxy_roles``), and a client that reaches the server directly cannot name itself."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_auth import basic, stow_body
from tests.live import LiveServer
from xdsi.security.basic import add_user

PROXY = "127.0.0.2"  # the fronting proxy's address; the tests' own connections come from 127.0.0.1
STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=xdsi-auth-boundary'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("proxy-auth")
    users = folder / "users"
    add_user(users, "admin", "admin pass", ["admin"])
    add_user(users, "CT-ROUTER", "unused", ["store"])
    add_user(users, "dr.house", "unused", ["read"], ["HOSP-A"])
    live = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", auth="proxy,basic",
                      users_file=str(users), trusted_proxies=PROXY, proxy_user_header="X-Authenticated-User")
    yield live
    live.stop()


def _from(server: LiveServer, address: str, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(address, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def studies(server: LiveServer) -> dict[str, str]:
    found = {}
    for issuer in ("HOSP-A", "HOSP-B"):
        study = f"1.2.826.0.1.3680043.10.1401.{len(found) + 1}"
        status, _ = _from(server, "127.0.0.1", "POST", "/dicom-web/studies",
                          stow_body(study_uid=study, patient_id=f"P-{issuer}", IssuerOfPatientID=issuer),
                          {"Content-Type": STOW_TYPE, **basic("admin", "admin pass")})
        assert status == 200
        found[issuer] = study
    return found


def _seen(server: LiveServer, address: str, user: str) -> tuple[int, set[str]]:
    status, body = _from(server, address, "GET", "/dicom-web/studies",
                         headers={"Accept": "application/dicom+json", "X-Authenticated-User": user})
    return status, {item["0020000D"]["Value"][0] for item in json.loads(body or b"[]")} if status == 200 else set()


def test_a_user_named_by_the_trusted_proxy_gets_its_roles_and_domains(server: LiveServer, studies: dict) -> None:
    assert _seen(server, PROXY, "dr.house") == (200, {studies["HOSP-A"]})
    assert _seen(server, PROXY, "nurse.jackie") == (200, set(studies.values()))  # proxy_roles: read, every patient


def test_the_user_header_from_anyone_else_is_ignored(server: LiveServer, studies: dict) -> None:
    status, _ = _seen(server, "127.0.0.1", "admin")
    assert status == 401


def test_roles_of_proxied_users_are_enforced(server: LiveServer, studies: dict) -> None:
    body = stow_body(study_uid="1.2.826.0.1.3680043.10.1401.9")
    as_user = {"Content-Type": STOW_TYPE}
    assert _from(server, PROXY, "POST", "/dicom-web/studies", body, {**as_user, "X-Authenticated-User": "nurse.jackie"}
                 )[0] == 403
    assert _from(server, PROXY, "POST", "/dicom-web/studies", body, {**as_user, "X-Authenticated-User": "CT-ROUTER"}
                 )[0] == 200


def test_a_proxied_request_without_the_header_needs_other_credentials(server: LiveServer, studies: dict) -> None:
    assert _from(server, PROXY, "GET", "/dicom-web/studies")[0] == 401
    assert _from(server, PROXY, "GET", "/dicom-web/studies", headers=basic("admin", "admin pass"))[0] == 200
    assert _from(server, PROXY, "GET", "/dicom-web/studies", headers={"X-Authenticated-User": "bad:name"})[0] == 401


def test_proxy_authentication_needs_trusted_proxies(tmp_path: Path) -> None:
    from xdsi.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="trusted_proxies: required when auth includes proxy"):
        Settings.load(environ={"XDSI_AUTH": "proxy"})
