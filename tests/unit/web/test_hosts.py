"""The Host allow-list: which Host values are admitted, by default and as configured."""

from __future__ import annotations

import socket

import pytest

from xdsi.config import Settings
from xdsi.web.hosts import AllowedHosts, host_name


@pytest.mark.parametrize(("host", "name"), [
    ("PACS.Example.org.", "pacs.example.org"), ("pacs:8080", "pacs"), ("127.0.0.1:8080", "127.0.0.1"),
    ("[::1]", "::1"), ("[2001:db8::5]:443", "2001:db8::5"),
    ("pacs:80x", None), ("[::1", None), ("[pacs]", None), ("a b", None), ('x"><script>', None), ("", None),
    ("-pacs", None), ("pacs/../x", None),
])
def test_host_name(host: str, name: str | None) -> None:
    assert host_name(host) == name


def test_by_default_localhost_this_machine_and_the_bound_host_are_admitted_and_addresses_always() -> None:
    allowed = AllowedHosts.of(Settings.load(environ={}, bind="pacs.internal:8080"))
    for host in ("localhost:8080", "viewer.localhost", socket.gethostname(), "pacs.internal:8080",
                 "127.0.0.1", "10.1.2.3:8080", "[::1]:8080", "[2001:db8::1]"):
        assert allowed.admits(host), host
    for host in ("evil.example", "localhost.evil.example", "pacs.internal.evil.example", "pacs:x"):
        assert not allowed.admits(host), host


def test_a_configured_list_replaces_the_defaults_and_keeps_bind_and_base_url() -> None:
    settings = Settings.load(environ={}, allowed_hosts=" pacs.example.org, .Hospital.org ",
                             base_url="https://public.example.net/archive")
    allowed = AllowedHosts.of(settings)
    for host in ("pacs.example.org", "PACS.example.org.:443", "hospital.org", "ct.radiology.hospital.org",
                 "public.example.net", "127.0.0.1:8080", "192.0.2.7"):
        assert allowed.admits(host), host
    for host in ("localhost", "example.org", "evilhospital.org", "hospital.org.evil.example"):
        assert not allowed.admits(host), host


def test_star_admits_any_well_formed_host() -> None:
    allowed = AllowedHosts.of(Settings.load(environ={}, allowed_hosts="*"))
    assert allowed.admits("anything.example:8080")
    assert not allowed.admits("not a host")
