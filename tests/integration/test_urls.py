"""The URLs answers name (STOW-RS RetrieveURL, WADO-RS BulkDataURI, QIDO-RS RetrieveURL) over real HTTP:
a direct client, a client that only pretends to be a proxy, a trusted proxy, and a configured base_url."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer

RETRIEVE_URL = "00081190"
PIXEL_DATA = "7FE00010"
FORWARDED_HEADERS = {
    "X-Forwarded-Proto": "https", "X-Forwarded-Host": "archive.example.org", "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/pacs", "Forwarded": 'for=192.0.2.60;proto=https;host="archive.example.org"',
}


def named_urls(server: LiveServer, headers: dict[str, str]) -> dict[str, str]:
    """Store one instance, then read the URL each of the three transactions names for it."""
    study = generate_uid()
    ds = make_dataset(study_uid=study, rows=64, columns=64)  # 8 KiB of pixel data: a BulkDataURI
    stored = post(server, dicom_parts(to_bytes(ds)), **{k.replace("-", "_"): v for k, v in headers.items()})
    assert stored.status == 200, stored.body
    stow = json.loads(stored.body)
    instance = f"/dicom-web/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    metadata = server.request("GET", instance + "/metadata", headers={"Accept": "application/dicom+json", **headers})
    assert metadata.status == 200, metadata.body
    found = server.request("GET", f"/dicom-web/studies?StudyInstanceUID={study}",
                           headers={"Accept": "application/dicom+json", **headers})
    assert found.status == 200, found.body
    return {
        "stow": stow[RETRIEVE_URL]["Value"][0],
        "stow instance": stow["00081199"]["Value"][0][RETRIEVE_URL]["Value"][0],
        "bulk data": json.loads(metadata.body)[0][PIXEL_DATA]["BulkDataURI"],
        "qido": json.loads(found.body)[0][RETRIEVE_URL]["Value"][0],
        "instance": instance,
        "study": study,
    }


def assert_rooted(urls: dict[str, str], base: str) -> None:
    root = base + "/dicom-web"
    assert urls["stow"] == f"{root}/studies/{urls['study']}"
    assert urls["stow instance"] == root + urls["instance"].removeprefix("/dicom-web")
    assert urls["bulk data"] == root + urls["instance"].removeprefix("/dicom-web") + f"/bulkdata/{PIXEL_DATA}"
    assert urls["qido"] == f"{root}/studies/{urls['study']}"


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("behind-proxy")
    server = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", workers=1, trusted_proxies="127.0.0.1")
    yield server
    server.stop()


def test_a_direct_client_whose_host_has_no_port_gets_the_port_it_connected_to(live: LiveServer) -> None:
    urls = named_urls(live, {"Host": "127.0.0.1"})
    assert_rooted(urls, f"http://127.0.0.1:{live.port}")
    # The bulk data URI really leads back to the value.
    path = urls["bulk data"].removeprefix(live.base)
    value = live.request("GET", path, headers={"Accept": "application/octet-stream"})
    assert value.status == 200 and len(value.body) == 64 * 64 * 2


def test_a_direct_client_keeps_the_host_and_port_it_named(live: LiveServer) -> None:
    assert_rooted(named_urls(live, {"Host": f"localhost:{live.port}"}), f"http://localhost:{live.port}")
    assert_rooted(named_urls(live, {"Host": "[::1]"}), f"http://[::1]:{live.port}")


def test_forwarded_headers_from_a_client_that_is_not_a_trusted_proxy_are_ignored(live: LiveServer) -> None:
    urls = named_urls(live, {"Host": "127.0.0.1", **FORWARDED_HEADERS})
    assert_rooted(urls, f"http://127.0.0.1:{live.port}")


@pytest.mark.parametrize(("headers", "base"), [
    (FORWARDED_HEADERS, "https://archive.example.org:8443/pacs"),
    ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "archive.example.org", "X-Forwarded-Prefix": "/pacs/"},
     "https://archive.example.org/pacs"),
    ({"Forwarded": 'for=192.0.2.60;proto=https;host="archive.example.org:8443"'}, "https://archive.example.org:8443"),
    # Without port information the proxy is taken to listen on the scheme's default port.
    ({"Host": "archive.example.org"}, "http://archive.example.org"),
    ({"Host": "archive.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
     "https://archive.example.org"),
    # Each proxy appends; a value the client itself sent comes first and is not believed.
    ({"X-Forwarded-Host": "evil.example, archive.example.org"}, "http://archive.example.org"),
    ({"Forwarded": "for=192.0.2.1;host=evil.example, for=192.0.2.60;host=archive.example.org;proto=https"},
     "https://archive.example.org"),
    # An element whose client is itself a trusted proxy lets the one before it be believed.
    ({"Forwarded": "for=192.0.2.60;host=archive.example.org;proto=https, for=127.0.0.1;host=inner:8080"},
     "https://archive.example.org"),
    # Values that are no scheme, host or path are ignored, not copied into the answer.
    ({"Host": "inner.local", "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a<b>",
      "X-Forwarded-Prefix": "/x\"y"}, "http://inner.local"),
])
def test_a_trusted_proxy_names_the_public_url(behind_proxy: LiveServer, headers: dict[str, str], base: str) -> None:
    assert_rooted(named_urls(behind_proxy, headers), base)


def test_the_configured_base_url_wins_over_everything(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'xdsi.db'}", tmp_path / "store", workers=1,
                        trusted_proxies="127.0.0.1", base_url="https://public.example.org/archive/")
    try:
        urls = named_urls(server, {"Host": "127.0.0.1", **FORWARDED_HEADERS})
        assert_rooted(urls, "https://public.example.org/archive")
    finally:
        server.stop()
