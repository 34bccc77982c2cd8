"""The landing page at / and /dicom-web/: what this server is, its version, and every service's URL and state."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from xdsi import __version__
from xdsi.web import negotiation
from xdsi.web.context import Endpoint, accepted, announce
from xdsi.web.urls import DICOMWEB, base_url

blueprint = Blueprint("landing", __name__)

HTML = "text/html"
JSON = "application/json"
# The page first: a browser's Accept and */* get it; a client that asks for JSON gets JSON.
OFFERS = (negotiation.Offer(HTML, multipart=False), negotiation.Offer(JSON, multipart=False))
# The page runs nothing, loads nothing and may not be framed; its URLs come from the request.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@blueprint.get("/")
@blueprint.get(f"{DICOMWEB}/", strict_slashes=False)
def landing() -> Response:
    choice = negotiation.negotiate(accepted(), OFFERS)
    services = _services()
    if choice.offer.media_type == JSON:
        response = jsonify(server="xdsi", version=__version__, services=services)
    else:
        response = Response(_page(services), mimetype=HTML)
        response.headers.update(HTML_HEADERS)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.vary.add("Accept")
    return response


def _services() -> list[dict[str, str]]:
    """Name, absolute URL and status (available, disabled) of every service."""
    endpoints: list[Endpoint] = current_app.config["XDSI_ENDPOINTS"]
    listed = [(endpoint, "available" if endpoint.enabled else "disabled") for endpoint in endpoints]
    base = base_url(request)
    return [{"name": endpoint.name, "url": base + endpoint.path, "status": status} for endpoint, status in listed]


def _page(services: list[dict[str, str]]) -> str:
    rows = []
    for service in services:
        url = escape(service["url"])
        # A path template ({study}) is no link to follow.
        shown = url if "{" in service["url"] or service["status"] != "available" else f'<a href="{url}">{url}</a>'
        rows.append(f"<tr><td>{escape(service['name'])}</td><td>{shown}</td><td>{escape(service['status'])}</td></tr>")
    body = "\n".join(rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>xdsi {escape(__version__)}</title></head>
<body>
<h1>xdsi {escape(__version__)}</h1>
<p>Imaging document source and DICOMweb archive. Ask for <code>application/json</code> to read this list as JSON.</p>
<table>
<thead><tr><th>service</th><th>URL</th><th>status</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "Landing page (this list, HTML or JSON)", "/")
