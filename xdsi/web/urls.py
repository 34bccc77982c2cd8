"""The public base URL of a request, so RetrieveURLs and BulkDataURIs are right behind a proxy.

Order: the configured ``base_url``; else RFC 7239 ``Forwarded`` (first hop); else
``X-Forwarded-Proto``/``-Host``/``-Prefix``; else the request's own host. These headers only
change the URLs an answer names, never what is read or written.
"""

from __future__ import annotations

import re

from flask import Request

DICOMWEB = "/dicom-web"
_TOKEN = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]]{1,255}")


def base_url(request: Request, configured: str | None) -> str:
    """Scheme, host and path prefix under which the client reached this server (no trailing '/')."""
    if configured:
        return configured.rstrip("/")
    scheme, host, prefix = request.scheme, request.host, request.script_root
    forwarded = _first_forwarded(request.headers.get("Forwarded", ""))
    if forwarded:
        scheme = forwarded.get("proto", scheme)
        host = forwarded.get("host", host)
    else:
        scheme = _first(request.headers.get("X-Forwarded-Proto")) or scheme
        host = _first(request.headers.get("X-Forwarded-Host")) or host
        prefix = (_first(request.headers.get("X-Forwarded-Prefix")) or "").rstrip("/") + prefix
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        scheme, host = request.scheme, request.host
    if not re.fullmatch(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*", prefix):
        prefix = request.script_root
    return f"{scheme}://{host}{prefix}"


def dicomweb_root(request: Request, configured: str | None) -> str:
    return base_url(request, configured) + DICOMWEB


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() if value else None


def _first_forwarded(header: str) -> dict[str, str]:
    """Parameters of the first element of an RFC 7239 Forwarded header."""
    element = header.split(",")[0]
    result = {}
    for part in element.split(";"):
        match = _TOKEN.fullmatch(part)
        if match:
            value = match.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            result[match.group(1).lower()] = value
    return result
