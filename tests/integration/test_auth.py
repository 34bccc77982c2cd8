"""Authentication and access at the edge: every route of every protocol refuses a request without credentials
when authentication is on; Basic and bearer credentials, good and bad, over real HTTP to the real server; 403 for a
known caller without the role; CORS and SOAP forms of the refusal; ``xdsi user add`` and the bind rule of
``xdsi serve``."""

from __future__ import annotations

import base64
import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import DATABASES, make_settings
from tests.dicomfiles import make_instance
from tests.live import LiveServer, clean_env, free_port
from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from xdsi.app import create_app
from xdsi.config import ConfigError, Settings
from xdsi.security.access import PUBLIC
from xdsi.security.basic import add_user
from xdsi.services.archive import Archive
from xdsi.web.auth import Gate

BOUNDARY = "xdsi-auth-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
ORIGIN = "https://viewer.example.org"


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stow_body(**attributes: object) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + make_instance(**attributes)
            + f"\r\n--{BOUNDARY}--\r\n".encode())


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(path, "reader", "read-only pass", ["read"])
    add_user(path, "modality", "store pass", ["store"])
    add_user(path, "admin", "admin pass", ["admin"])
    return path


def auth_settings(users_file: Path, idp: TokenIssuer) -> dict[str, str]:
    return {"auth": "basic,bearer", "users_file": str(users_file), "jwks": str(idp.jwks_file),
            "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "cors_origins": ORIGIN, "delete_enabled": "true"}


# --- every route, through the Flask test client ----------------------------------------------------------------

@pytest.fixture
def guarded_app(database_url: str, tmp_path: Path, users_file: Path, idp: TokenIssuer) -> Iterator[Flask]:
    settings = make_settings(database_url, tmp_path / "store", **auth_settings(users_file, idp))
    archive = Archive.open(settings)
    archive.prepare()
    yield create_app(settings, archive)
    archive.close()


def every_request(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every rule of the URL map and every announced service path, with UIDs filled in."""
    adapter = app.url_map.bind("localhost")
    found = set()
    for rule in app.url_map.iter_rules():
        path = adapter.build(rule.endpoint, {name: "1.2.3" for name in rule.arguments}, append_unknown=False)
        found |= {(method, path) for method in rule.methods or ()}
    for endpoint in app.config["XDSI_ENDPOINTS"]:
        path = endpoint.path.replace("{study}", "1.2.3").replace("{series}", "1.2.4").replace("{instance}", "1.2.5")
        found |= {("GET", path), ("POST", path)}
    # A path nothing is mounted at, and the SOAP endpoint whether or not it is mounted yet.
    found |= {("GET", "/nothing/here"), ("POST", "/wado-ws"), ("GET", "/wado-ws")}
    return sorted(request for request in found if request[1] not in PUBLIC)


def test_the_gate_wraps_the_whole_application(guarded_app: Flask) -> None:
    assert isinstance(guarded_app.wsgi_app, Gate)


def test_every_route_refuses_a_request_without_credentials(guarded_app: Flask) -> None:
    client = guarded_app.test_client()
    requests = every_request(guarded_app)
    # The table covers the transactions the server has today, so that it cannot pass by being empty.
    assert {("GET", "/dicom-web/studies"), ("POST", "/dicom-web/studies"), ("DELETE", "/dicom-web/studies/1.2.3"),
            ("GET", "/dicom-web/studies/1.2.3/series/1.2.3/instances/1.2.3/frames/1.2.3"),
            ("GET", "/"), ("POST", "/wado-ws")} <= set(requests)
    for method, path in requests:
        response = client.open(path, method=method)
        assert response.status_code == 401, (method, path, response.status_code)
        challenges = response.headers.getlist("WWW-Authenticate")
        assert challenges == ['Basic realm="xdsi", charset="UTF-8"', 'Bearer realm="xdsi"'], (method, path)


def test_every_route_refuses_a_refused_credential(guarded_app: Flask, idp: TokenIssuer) -> None:
    client = guarded_app.test_client()
    expired = bearer(idp.token(exp=int(time.time()) - 120, nbf=None))
    for method, path in every_request(guarded_app):
        for headers in (basic("reader", "wrong"), expired, {"Authorization": "Negotiate YIIB"}):
            assert client.open(path, method=method, headers=headers).status_code == 401, (method, path, headers)


def test_the_health_check_stays_public(guarded_app: Flask) -> None:
    assert guarded_app.test_client().get("/healthz").status_code == 200


def test_a_missing_users_file_stops_the_start(database_url: str, tmp_path: Path, idp: TokenIssuer) -> None:
    settings = make_settings(database_url, tmp_path / "store", **auth_settings(tmp_path / "absent", idp))
    with pytest.raises(ConfigError, match="users_file"):
        create_app(settings, Archive.open(settings))


# --- the real server ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, users_file: Path,
           idp: TokenIssuer) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp(f"auth-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    live = LiveServer(url, folder / "store", **auth_settings(users_file, idp))
    yield live
    live.stop()


def test_basic_credentials_are_checked(server: LiveServer) -> None:
    assert server.request("GET", "/dicom-web/studies", headers=basic("reader", "read-only pass")).status == 200
    refused = server.request("GET", "/dicom-web/studies", headers=basic("reader", "read-only pas"))
    assert refused.status == 401
    assert refused.headers.get_all("WWW-Authenticate") == ['Basic realm="xdsi", charset="UTF-8"',
                                                           'Bearer realm="xdsi"']
    assert b"user name or password is wrong" in refused.body
    assert server.request("GET", "/dicom-web/studies", headers=basic("nobody", "read-only pass")).status == 401


def test_bearer_tokens_are_checked(server: LiveServer, idp: TokenIssuer) -> None:
    assert server.request("GET", "/dicom-web/studies", headers=bearer(idp.token())).status == 200
    now = int(time.time())
    for token in (idp.token(exp=now - 120, nbf=None), idp.token(aud="https://elsewhere.example.org"),
                  idp.token(iss="https://evil.example.org"), idp.unsigned(), idp.hs256_with_public_key()):
        refused = server.request("GET", "/dicom-web/studies", headers=bearer(token))
        assert refused.status == 401
        # RFC 6750 3.1: a token presented and refused is named invalid_token.
        assert 'Bearer realm="xdsi", error="invalid_token"' in refused.headers.get_all("WWW-Authenticate")


def test_a_known_caller_without_the_role_is_forbidden(server: LiveServer, idp: TokenIssuer) -> None:
    study = "1.2.826.0.1.3680043.10.1400.1"
    body = stow_body(study_uid=study)
    refused = server.request("POST", "/dicom-web/studies", body,
                             {"Content-Type": STOW_TYPE, **basic("reader", "read-only pass")})
    assert refused.status == 403
    assert b"reader lacks the store role" in refused.body
    assert refused.headers.get_all("WWW-Authenticate") == ['Bearer realm="xdsi", error="insufficient_scope", '
                                                           'scope="xdsi.store"']
    read_only_token = bearer(idp.token(scope="xdsi.read"))
    assert server.request("POST", "/dicom-web/studies", body,
                          {"Content-Type": STOW_TYPE, **read_only_token}).status == 403
    # Refused means nothing was stored.
    assert server.request("GET", f"/dicom-web/studies?StudyInstanceUID={study}",
                          headers=read_only_token).body == b"[]"
    stored = server.request("POST", "/dicom-web/studies", body, {"Content-Type": STOW_TYPE,
                                                                 **basic("modality", "store pass")})
    assert stored.status == 200
    # The modality may store but not read back; a token with the store scope may store too.
    assert server.request("GET", f"/dicom-web/studies/{study}/metadata",
                          headers=basic("modality", "store pass")).status == 403
    assert server.request("POST", "/dicom-web/studies", stow_body(study_uid=study),
                          {"Content-Type": STOW_TYPE, **bearer(idp.token(scope="xdsi.store"))}).status == 200
    assert server.request("DELETE", f"/dicom-web/studies/{study}", headers=read_only_token).status == 403
    # admin holds every role.
    assert server.request("GET", f"/dicom-web/studies/{study}/metadata",
                          headers=basic("admin", "admin pass")).status == 200
    assert server.request("DELETE", f"/dicom-web/studies/{study}",
                          headers=bearer(idp.token(scope="xdsi.admin"))).status == 204


def test_a_browser_reads_the_refusal_and_its_preflight_needs_no_credentials(server: LiveServer) -> None:
    preflight = server.request("OPTIONS", "/dicom-web/studies", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status == 204
    assert "Authorization" in preflight.header("Access-Control-Allow-Headers")
    assert preflight.header("Access-Control-Allow-Credentials") == "true"
    refused = server.request("GET", "/dicom-web/studies", headers={"Origin": ORIGIN})
    assert refused.status == 401
    assert refused.header("Access-Control-Allow-Origin") == ORIGIN
    assert refused.header("Access-Control-Allow-Credentials") == "true"
    other = server.request("GET", "/dicom-web/studies", headers={"Origin": "https://evil.example.org"})
    assert other.status == 401 and not other.header("Access-Control-Allow-Origin")


def test_the_soap_endpoint_is_refused_with_a_soap_fault(server: LiveServer) -> None:
    refused = server.request("POST", "/wado-ws", b"<env:Envelope/>", {"Content-Type": "application/soap+xml"})
    assert refused.status == 401
    assert refused.header("Content-Type").startswith("application/soap+xml")
    from lxml import etree

    fault = etree.fromstring(refused.body, etree.XMLParser(resolve_entities=False, no_network=True))
    ns = {"env": "http://www.w3.org/2003/05/soap-envelope"}
    assert fault.xpath("string(//env:Code/env:Value)", namespaces=ns) == "env:Sender"
    assert fault.xpath("string(//env:Subcode/env:Value)", namespaces=ns) == "wsse:FailedAuthentication"
    assert "requires authentication" in fault.xpath("string(//env:Reason/env:Text)", namespaces=ns)


def test_a_user_added_while_the_server_runs_may_log_in(server: LiveServer, users_file: Path,
                                                      request: pytest.FixtureRequest) -> None:
    # The users file is shared by the server of each database: a name of its own per server.
    name = f"late-{request.node.callspec.params['server']}"
    added = subprocess.run([sys.executable, "-m", "xdsi", "user", "add", name, "--role", "read"],
                           input="arrived late\n", capture_output=True, text=True, timeout=60,
                           env={**clean_env(), "XDSI_USERS_FILE": str(users_file)})
    assert added.returncode == 0, added.stderr
    assert f"added {name} (read)" in added.stdout
    assert server.request("GET", "/dicom-web/studies", headers=basic(name, "arrived late")).status == 200
    assert server.request("GET", "/dicom-web/studies", headers=basic(name, "arrived late\n")).status == 401


# --- xdsi serve's bind rule --------------------------------------------------------------------------------------

def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {**clean_env(), "XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'xdsi.db'}",
                   "XDSI_STORAGE": str(tmp_path / "store"), **env}
    return subprocess.Popen([sys.executable, "-m", "xdsi", "serve", "--workers", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)


def test_serve_refuses_a_wide_bind_without_authentication(tmp_path: Path) -> None:
    process = _serve(tmp_path, "--bind", f"0.0.0.0:{free_port()}")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "no authentication is configured" in output and "--insecure" in output


def _first_status(process: subprocess.Popen[str], port: int) -> int:
    """The status of GET /dicom-web/studies once the server answers on 127.0.0.1:``port``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/dicom-web/studies")
            return connection.getresponse().status
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    raise AssertionError("xdsi serve did not answer")


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    return output


def test_serve_binds_wide_when_told_it_is_insecure_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    process = _serve(tmp_path, "--bind", f"0.0.0.0:{port}", "--insecure")
    try:
        assert _first_status(process, port) == 200
    finally:
        output = _stop(process)
    assert "INSECURE: serving 0.0.0.0" in output
    assert "authentication: none" in output


def test_serve_binds_wide_with_authentication(tmp_path: Path, users_file: Path) -> None:
    port = free_port()
    process = _serve(tmp_path, "--bind", f"0.0.0.0:{port}", XDSI_AUTH="basic", XDSI_USERS_FILE=str(users_file))
    try:
        assert _first_status(process, port) == 401
    finally:
        output = _stop(process)
    assert "INSECURE" not in output
    assert "authentication: basic" in output


def test_settings_of_a_secure_server_load(users_file: Path) -> None:
    settings = Settings.load(environ={}, auth="basic", users_file=str(users_file), bind="0.0.0.0:8080")
    assert settings.binds_beyond_loopback and settings.auth_mechanisms == ("basic",)
