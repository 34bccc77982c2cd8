"""CORS for browser viewers: configured origins only, and preflight for DICOMweb's headers.

Off unless ``cors_origins`` names origins (or '*'): a server on a workstation must not let
any web page the user visits read the archive from the user's browser. Credentials (the
browser's Basic login) are allowed to origins named one by one, never through '*' (Fetch 3.2.5).
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_HEADERS = "Accept, Authorization, Content-Type, Range, If-None-Match, If-Modified-Since"
EXPOSED_HEADERS = "Warning, Content-Location, Content-Range, Accept-Ranges, ETag, Last-Modified, Location"
METHODS = "GET, HEAD, POST, OPTIONS"
MAX_AGE = "86400"


def _allowed(origins: tuple[str, ...], origin: str | None) -> str | None:
    if not origin or not origins:
        return None
    if "*" in origins or origin in origins:
        return origin
    return None


def allow(response: Response, origins: tuple[str, ...], origin: str | None) -> None:
    """The CORS headers every answer to an allowed ``origin`` carries, the refusals of ``auth`` included."""
    allowed = _allowed(origins, origin)
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if allowed in origins:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.vary.add("Origin")


def init_app(app: Flask, origins: tuple[str, ...]) -> None:
    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        if _allowed(origins, request.headers.get("Origin")):
            response.headers["Access-Control-Allow-Methods"] = METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        allow(response, origins, request.headers.get("Origin"))
        return response
