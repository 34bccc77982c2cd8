"""CORS for browser viewers: configured origins only, and preflight for DICOMweb's headers.

Off unless ``cors_origins`` names origins (or '*'): a server on a workstation must not let
any web page the user visits read the archive from the user's browser.
"""

from __future__ import annotations

from flask import Flask, Request, Response, request

ALLOWED_HEADERS = "Accept, Authorization, Content-Type, Range, If-None-Match, If-Modified-Since"
EXPOSED_HEADERS = "Warning, Content-Location, Content-Range, Accept-Ranges, ETag, Last-Modified, Location"
METHODS = "GET, HEAD, POST, OPTIONS"
MAX_AGE = "86400"


def _allowed(origins: tuple[str, ...], req: Request) -> str | None:
    origin = req.headers.get("Origin")
    if not origin or not origins:
        return None
    if "*" in origins or origin in origins:
        return origin
    return None


def init_app(app: Flask, origins: tuple[str, ...]) -> None:
    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        if _allowed(origins, request):
            response.headers["Access-Control-Allow-Methods"] = METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = _allowed(origins, request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.vary.add("Origin")
        return response
