"""The Host allow-list: a request that names a host this server does not answer for is refused (421).

A page of any web site can make a browser send requests to an archive on the user's machine or
network: its script names its own host, whose DNS record the site then points at the archive's
address (DNS rebinding), and the browser's same-origin rule no longer protects the archive. Such
a request still carries the site's name in ``Host``, so it is refused unless that name is one
this server answers for (``allowed_hosts``). An IP address can never be rebound, so one is always
admitted. Requests from ``trusted_proxies`` are left to the proxy, which chose this server by name.

This wraps the whole WSGI application, so every service (Flask's and WADO-WS's) is behind it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from xdsi import errormap
from xdsi.config import Settings
from xdsi.errors import MisdirectedRequest
from xdsi.web.errors import text_response
from xdsi.web.urls import is_trusted

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?")


class AllowedHosts:
    """Names admitted exactly, and suffixes ('.example.org') admitting the name and its subdomains."""

    def __init__(self, entries: Iterable[str]) -> None:
        cleaned = {entry.strip().lower().rstrip(".") for entry in entries if entry.strip()}
        self.any = "*" in cleaned
        self.suffixes = tuple(entry for entry in cleaned if entry.startswith("."))
        self.names = frozenset(entry for entry in cleaned if not entry.startswith("."))

    @classmethod
    def of(cls, settings: Settings) -> AllowedHosts:
        """``allowed_hosts``, or by default: localhost (RFC 6761 6.3: its subdomains too), this
        machine's names, and the hosts of ``bind`` and ``base_url`` (added to a configured list too)."""
        configured = [entry for entry in settings.allowed_hosts.split(",") if entry.strip()]
        own = [settings.host_port[0], urlsplit(settings.base_url or "").hostname or ""]
        if not configured:
            configured = ["localhost", ".localhost", socket.gethostname(), socket.getfqdn()]
        return cls([*configured, *own])

    def admits(self, host: str) -> bool:
        """Whether a Host header value (a name or address, with an optional port) is served here."""
        name = host_name(host)
        if name is None:
            return False
        if self.any or _is_address(name) or name in self.names:
            return True
        return any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes)


def host_name(host: str) -> str | None:
    """The name or address of a Host value, lower-case, without port or trailing dot; None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        address, bracket, port = host[1:].partition("]")
        ok = bracket and (not port or (port[:1] == ":" and port[1:].isdigit()))
        return address if ok and _is_address(address) else None
    name, colon, port = host.rpartition(":")
    if not colon:
        name = port
    elif not port.isdigit():
        return None
    name = name.rstrip(".")
    return name if _NAME.fullmatch(name) else None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """WSGI middleware answering 421 to a request whose Host is not admitted (see the module docstring)."""

    def __init__(self, app: WSGIApplication, settings: Settings) -> None:
        self.app = app
        self.allowed = AllowedHosts.of(settings)
        self.trusted = settings.trusted_proxy_networks

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        host = environ.get("HTTP_HOST")
        # Without Host (HTTP/1.0) the client named no host at all: nothing to rebind.
        if host is None or self.allowed.admits(host) or is_trusted(environ.get("REMOTE_ADDR"), self.trusted):
            return self.app(environ, start_response)
        name = host_name(host)
        shown = f"the host {name!r}" if name else "the Host header's value"
        error = MisdirectedRequest(f"this server does not answer for {shown}; address it by one of its "
                                   "names (setting allowed_hosts) or by its IP address")
        return text_response(errormap.lookup(error).http_status, str(error))(environ, start_response)
