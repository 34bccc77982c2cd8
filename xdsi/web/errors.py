"""HTTP answers for domain errors and framework errors, from the one table in ``errormap``.

Bodies are short plain text naming the reason; they never echo markup or carry a traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from xdsi import errormap
from xdsi.errors import XdsiError

log = logging.getLogger(__name__)


def warning(root: str, text: str) -> str:
    """A ``Warning: 299 <service>: <text>`` value (PS3.18 8.3.4.5), one ASCII line whatever the text."""
    flat = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return f"299 {root}: {flat[:500]}"


def text_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    phrase = HTTPStatus(status).phrase
    response = Response(f"{status} {phrase}: {reason}\n", status=status, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def retry_headers(status: int) -> dict[str, str]:
    """RFC 9110 10.2.3: a 503 says when to try again (what it waits on, a lock or a budget, frees in seconds)."""
    return {"Retry-After": "1"} if status == 503 else {}


def _domain_error(error: XdsiError) -> Response:
    status = errormap.lookup(error).http_status
    if status >= 500:
        log.error("%s: %s", type(error).__name__, error)
    return text_response(status, str(error), retry_headers(status))


def _http_error(error: HTTPException) -> Response:
    response = text_response(error.code or 500, error.description or error.name)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _no_route(error: NotFound) -> Response:
    """A path nothing is mounted at: say which service root it lies under, instead of Werkzeug's prose."""
    if request.routing_exception is not error:
        return _http_error(error)
    roots = {endpoint.root for endpoint in current_app.config["XDSI_ENDPOINTS"]} - {""}
    root = next((root for root in roots if request.path == root or request.path.startswith(root + "/")), None)
    where = f"{root} has no resource at this path" if root else "there is no resource at this path"
    return text_response(404, f"{where}; GET / lists the services of this server")


def _method_not_allowed(error: MethodNotAllowed) -> Response:
    allowed = ", ".join(sorted(error.valid_methods or ()))
    return text_response(405, f"{request.method} is not allowed here; use {allowed}", {"Allow": allowed})


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return text_response(500, "internal error; the server log has the details")


def init_app(app: Flask) -> None:
    app.register_error_handler(XdsiError, _domain_error)
    app.register_error_handler(NotFound, _no_route)
    app.register_error_handler(MethodNotAllowed, _method_not_allowed)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
