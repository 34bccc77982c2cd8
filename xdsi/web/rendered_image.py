"""The HTTP answer carrying a rendered image, shared by WADO-RS rendered resources and WADO-URI."""

from __future__ import annotations

from flask import Response, request

from xdsi.services.render import Rendered


def image_answer(rendered: Rendered, vary: str | None = None) -> Response:
    """``rendered`` with its ETag, revalidated by it (an overwrite of the object changes it): 304 without
    a body when the client already holds it. ``vary``: the request headers the choice of image depends on.

    Headers are set as text: werkzeug's header objects cost more to build than the rest of answering
    from the render cache.
    """
    response = Response(rendered.data, status=200, mimetype=rendered.media_type)
    response.set_etag(rendered.etag)
    if vary:
        response.headers["Vary"] = vary
    response.headers["Cache-Control"] = "no-cache"
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains(rendered.etag):
        response.status_code = 304
        response.set_data(b"")
        response.headers.pop("Content-Length", None)
    return response
