"""The public base URL rule of xdsi.web.urls on WSGI requests as servers build them."""

from __future__ import annotations

import ipaddress

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from xdsi.web.urls import public_base

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


def request(peer: str, headers: dict[str, str], port: str = "8080") -> Request:
    environ = EnvironBuilder(path="/dicom-web/studies", headers=headers, base_url="http://placeholder").get_environ()
    environ.update(REMOTE_ADDR=peer, SERVER_NAME="0.0.0.0", SERVER_PORT=port)
    if "Host" not in headers:
        environ.pop("HTTP_HOST", None)
    return Request(environ)


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("192.0.2.1", {"Host": "pacs"}, "http://pacs:8080"),
    ("192.0.2.1", {"Host": "pacs:9000"}, "http://pacs:9000"),
    ("192.0.2.1", {"Host": "[2001:db8::5]"}, "http://[2001:db8::5]:8080"),
    # No Host at all (HTTP/1.0): the listening address is all there is.
    ("192.0.2.1", {}, "http://0.0.0.0:8080"),
    ("192.0.2.1", {"Host": "pacs", "X-Forwarded-Host": "evil.example"}, "http://pacs:8080"),
    ("10.1.2.3", {"Host": "pacs", "X-Forwarded-Host": "public.example"}, "http://public.example"),
    # A dual-stack listener sees an IPv4 proxy as an IPv4-mapped IPv6 address.
    ("::ffff:10.1.2.3", {"Host": "pacs", "X-Forwarded-Proto": "HTTPS"}, "https://pacs"),
    ("2001:db8::7", {"Host": "pacs", "X-Forwarded-Port": "8443"}, "http://pacs:8443"),
    ("10.1.2.3", {"Host": "pacs", "X-Forwarded-Port": "99999"}, "http://pacs"),
    ("10.1.2.3", {"Host": "pacs", "Forwarded": 'for=192.0.2.9;host="a.example", for="[2001:db8::1]:4711";host=b'},
     "http://a.example"),
    ("10.1.2.3", {"Host": "pacs", "Forwarded": 'for=unknown;host="a.example", for=_hidden;host=b.example'},
     "http://b.example"),
])
def test_public_base(peer: str, headers: dict[str, str], expected: str) -> None:
    assert public_base(request(peer, headers), TRUSTED) == expected


def test_nothing_is_trusted_by_default() -> None:
    forwarded = {"Host": "pacs", "X-Forwarded-Host": "public.example", "Forwarded": "host=public.example"}
    assert public_base(request("127.0.0.1", forwarded), ()) == "http://pacs:8080"
