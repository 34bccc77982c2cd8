"""The public base URL of a request, so RetrieveURLs and BulkDataURIs lead back to this server.

The first rule that applies:

1. the configured ``base_url``;
2. a request whose peer is one of ``trusted_proxies``: the scheme and host of RFC 7239
   ``Forwarded``, else of ``X-Forwarded-Proto`` / ``-Host`` (with ``-Port`` when that host has
   none), else the request's own; the path prefix of ``X-Forwarded-Prefix``. A host that still
   has no port gets none: the proxy listens on the scheme's default port;
3. any other client: forwarded headers are ignored, since anyone can send them; the request's
   scheme and Host, and when Host has no port (Python's http.client, so dicomweb-client, sends
   ``Host: 127.0.0.1`` on any port) the port the connection arrived on.

These headers only change the URLs an answer names, never what is read or written.
"""

from __future__ import annotations

import ipaddress
import re
from wsgiref.types import WSGIEnvironment

from flask import Request

from xdsi.config import Network, Settings
from xdsi.web.context import archive

DICOMWEB = "/dicom-web"
DEFAULT_PORTS = {"http": 80, "https": 443}

_TOKEN = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
_HOST = re.compile(r"([A-Za-z0-9._\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::([0-9]{1,5}))?")
_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*")
# RFC 7239 6: a node is an address with an optional port, IPv6 in brackets.
_NODE = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::[0-9]+)?|([0-9.]+)(?::[0-9]+)?")


def base_url(request: Request) -> str:
    """Scheme, host and path prefix under which the client reached this server (no trailing '/'),
    by the current app's ``base_url`` and ``trusted_proxies`` settings."""
    settings = archive().settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return public_base(request, settings.trusted_proxy_networks)


def dicomweb_root(request: Request) -> str:
    return base_url(request) + DICOMWEB


def mounted_base(environ: WSGIEnvironment, settings: Settings, mount: str) -> str:
    """The public base URL (as ``base_url`` gives it) of a request to a WSGI application mounted
    beside Flask at ``mount``, whose SCRIPT_NAME ends with that path."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return public_base(Request(environ), settings.trusted_proxy_networks).removesuffix(mount)


def public_base(request: Request, trusted: tuple[Network, ...]) -> str:
    """Rules 2 and 3 of the module docstring, for a request whose peer is ``request.remote_addr``."""
    own_host = _valid_host(request.host) or _valid_host(request.environ.get("SERVER_NAME", "")) or "localhost"
    if not is_trusted(request.remote_addr, trusted):
        # PEP 3333: SERVER_PORT is the port the request came in on; gunicorn sets it from the
        # listening socket (for a TCP listener; only on a Unix socket does it read the Host header).
        port = request.environ.get("SERVER_PORT")
        return f"{request.scheme}://{_with_port(own_host, request.scheme, port)}{request.script_root}"
    headers = request.headers
    forwarded = _forwarded_element(headers.get("Forwarded", ""), trusted)
    scheme = (forwarded.get("proto") or _last(headers.get("X-Forwarded-Proto")) or request.scheme).lower()
    if scheme not in DEFAULT_PORTS:
        scheme = request.scheme
    host = _valid_host(forwarded.get("host") or _last(headers.get("X-Forwarded-Host")) or "") or own_host
    prefix = (_last(headers.get("X-Forwarded-Prefix")) or "").rstrip("/")
    if not _PREFIX.fullmatch(prefix):
        prefix = ""
    port = _last(headers.get("X-Forwarded-Port"))
    return f"{scheme}://{_with_port(host, scheme, port)}{prefix}{request.script_root}"


def is_trusted(address: str | None, trusted: tuple[Network, ...]) -> bool:
    if not address or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in network for network in trusted)


def _valid_host(host: str) -> str | None:
    """``host`` if it is a name or address with an optional port in range, else None."""
    match = _HOST.fullmatch(host)
    if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) < 65536):
        return None
    return host


def _with_port(host: str, scheme: str, port: str | None) -> str:
    """``host`` (already valid) with ``port`` appended when it names none and ``port`` is not the scheme's default."""
    has_port = not host.endswith("]") and ":" in host
    if has_port or not port or not port.isdigit():
        return host
    if not 0 < int(port) < 65536 or int(port) == DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{int(port)}"


def _last(value: str | None) -> str | None:
    """The last value of a comma list: the one the nearest proxy wrote (a client can send the others)."""
    if not value:
        return None
    return value.split(",")[-1].strip() or None


def _forwarded_element(header: str, trusted: tuple[Network, ...]) -> dict[str, str]:
    """The RFC 7239 element written by the first trusted proxy of the chain.

    The last element comes from our peer, a trusted proxy; each element's ``for`` names the
    client of the proxy that wrote it, so while that client is a trusted proxy too, the element
    before is believed as well (RFC 7239 7.4: earlier elements may come from the client itself).
    """
    elements = [_parameters(element) for element in header.split(",")] if header.strip() else []
    if not elements:
        return {}
    index = len(elements) - 1
    while index > 0 and is_trusted(_node_address(elements[index].get("for", "")), trusted):
        index -= 1
    return elements[index]


def _parameters(element: str) -> dict[str, str]:
    result = {}
    for part in element.split(";"):
        match = _TOKEN.fullmatch(part)
        if match:
            value = match.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            result[match.group(1).lower()] = value
    return result


def _node_address(node: str) -> str | None:
    match = _NODE.fullmatch(node)
    return None if match is None else match.group(1) or match.group(2)
