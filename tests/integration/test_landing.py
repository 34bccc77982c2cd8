"""The landing page (/ and /dicom-web/), and the short answers to unknown paths and methods, over real HTTP."""

from __future__ import annotations

import json

import pytest

from tests.live import LiveServer
from xdsi import __version__

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
AVAILABLE = {"STOW-RS (store)": "/dicom-web/studies", "QIDO-RS (search)": "/dicom-web/studies",
             "WADO-RS (retrieve)": "/dicom-web/studies/{study}", "Health check": "/healthz",
             "WADO-URI": "/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={object}",
             "WADO-WS (RAD-69 retrieve, rendered, metadata)": "/wado-ws", "WADO-WS WSDL": "/wado-ws?wsdl"}


def services(live: LiveServer, path: str, **headers: str) -> dict[str, dict[str, str]]:
    reply = live.request("GET", path, headers={"Accept": "application/json", **headers})
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "application/json"
    body = json.loads(reply.body)
    assert body["server"] == "xdsi" and body["version"] == __version__
    return {service["name"]: service for service in body["services"]}


@pytest.mark.parametrize("path", ["/", "/dicom-web/", "/dicom-web"])
def test_json_names_every_service_with_its_url_and_state(live: LiveServer, path: str) -> None:
    found = services(live, path)
    for name, service_path in AVAILABLE.items():
        assert found[name] == {"name": name, "url": live.base + service_path, "status": "available"}
    # delete_enabled is off by default: the service is listed, switched off.
    assert found["DELETE (studies, series, instances)"]["status"] == "disabled"


def test_urls_follow_the_public_url_rule(live: LiveServer) -> None:
    # A Host without its port (as Python clients send it) still gets URLs that lead here.
    found = services(live, "/", Host="127.0.0.1", X_Forwarded_Host="evil.example")
    assert found["Health check"]["url"] == f"http://127.0.0.1:{live.port}/healthz"


def test_accept_query_parameter_selects_json(live: LiveServer) -> None:
    reply = live.request("GET", "/dicom-web/?accept=application/json", headers={"Accept": BROWSER})
    assert reply.status == 200 and json.loads(reply.body)["version"] == __version__


@pytest.mark.parametrize("accept", [BROWSER, "*/*", None])
def test_html_for_a_browser_with_security_headers(live: LiveServer, accept: str | None) -> None:
    reply = live.request("GET", "/", headers={"Accept": accept} if accept else {})
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert "default-src 'none'" in reply.header("Content-Security-Policy")
    assert "Accept" in reply.header("Vary")
    page = reply.body.decode()
    assert page.startswith("<!DOCTYPE html>") and f"xdsi {__version__}" in page
    assert f'<a href="{live.base}/healthz">' in page
    assert f"{live.base}/dicom-web/studies/{{study}}</td><td>available" in page
    assert f"{live.base}/wado?requestType=WADO&amp;studyUID={{study}}" in page


def test_markup_sent_by_the_client_is_not_echoed(live: LiveServer) -> None:
    reply = live.request("GET", "/?<script>=1", headers={"Accept": "text/html", "X-Forwarded-Host": "<script>"})
    assert reply.status == 200 and b"<script>" not in reply.body


def test_head(live: LiveServer) -> None:
    reply = live.request("HEAD", "/dicom-web/")
    assert reply.status == 200 and reply.body == b"" and int(reply.header("Content-Length")) > 0


@pytest.mark.parametrize(("accept", "status"), [("image/png", 406), ("text/html; q=2", 400), ("text", 400)])
def test_bad_accept(live: LiveServer, accept: str, status: int) -> None:
    reply = live.request("GET", "/", headers={"Accept": accept})
    assert reply.status == status
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.body.startswith(f"{status} ".encode())


@pytest.mark.parametrize(("path", "reason"), [
    ("/dicom-web/nothing", "/dicom-web has no resource at this path"),
    ("/dicom-web/studies/1.2.3/bogus", "/dicom-web has no resource at this path"),
    ("/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames", "/dicom-web has no resource at this path"),
    ("/nothing-here", "there is no resource at this path"),
    ("/dicom-webx", "there is no resource at this path"),
    ("/wado/nothing", "/wado has no resource at this path"),
])
def test_unknown_paths_get_a_short_404_naming_the_service_root(live: LiveServer, path: str, reason: str) -> None:
    reply = live.request("GET", path, headers={"Accept": "application/dicom+json"})
    assert reply.status == 404
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.body.decode() == f"404 Not Found: {reason}; GET / lists the services of this server\n"


def test_a_missing_resource_keeps_its_own_reason(live: LiveServer) -> None:
    reply = live.request("GET", "/dicom-web/studies/1.2.3/metadata")
    assert reply.status == 404 and b"has no resource at this path" not in reply.body


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/", "GET, HEAD, OPTIONS"),
    ("DELETE", "/dicom-web/", "GET, HEAD, OPTIONS"),
    ("PUT", "/dicom-web/studies", "GET, HEAD, OPTIONS, POST"),
    ("POST", "/healthz", "GET, HEAD, OPTIONS"),
])
def test_methods_not_allowed_get_405_with_allow(live: LiveServer, method: str, path: str, allowed: str) -> None:
    reply = live.request(method, path, body=b"", headers={"Content-Type": "application/dicom"})
    assert reply.status == 405
    assert reply.header("Allow") == allowed
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.body.decode() == f"405 Method Not Allowed: {method} is not allowed here; use {allowed}\n"
