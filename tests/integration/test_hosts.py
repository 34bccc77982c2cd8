"""The Host allow-list on a real server: every service refuses a host it does not answer for (421)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, Reply


def get(live: LiveServer, path: str, host: str, source: str = "127.0.0.1") -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30, source_address=(source, 0))
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        reply = Reply(response.status, response.headers, response.read())
    finally:
        connection.close()
    if reply.status >= 400:
        live.assert_nothing_internal(reply)
    return reply


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("hosts")
    server = LiveServer(f"sqlite:///{folder / 'x.db'}", folder / "store", workers=1,
                        allowed_hosts="pacs.example.org,.hospital.org", trusted_proxies="127.0.0.2")
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/healthz", "/dicom-web/studies", "/wado-ws?wsdl", "/wado?requestType=WADO"])
def test_a_rebound_name_is_refused_by_every_service(live: LiveServer, path: str) -> None:
    reply = get(live, path, "attacker.example:8080")
    assert reply.status == 421
    assert b"does not answer for the host 'attacker.example'" in reply.body


@pytest.mark.parametrize("host", ["localhost", "viewer.localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "192.0.2.10"])
def test_by_default_localhost_and_addresses_are_served(live: LiveServer, host: str) -> None:
    assert get(live, "/healthz", host.format(port=live.port)).status == 200


def test_markup_in_the_host_is_refused_without_being_echoed(live: LiveServer) -> None:
    reply = get(live, "/", 'x"><script>alert(1)</script>')
    assert reply.status == 421 and b"<script>" not in reply.body


def test_configured_names_and_subdomains_are_served_and_others_refused(configured: LiveServer) -> None:
    for host in ("pacs.example.org", "ct.hospital.org:8080", "hospital.org"):
        assert get(configured, "/dicom-web/studies", host).status == 200, host
    for host in ("localhost", "example.org", "evilhospital.org"):
        assert get(configured, "/dicom-web/studies", host).status == 421, host


def test_a_trusted_proxy_is_not_held_to_the_list(configured: LiveServer) -> None:
    assert get(configured, "/healthz", "inner-name", source="127.0.0.2").status == 200
    assert get(configured, "/healthz", "inner-name", source="127.0.0.3").status == 421
