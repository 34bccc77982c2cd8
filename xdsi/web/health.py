"""GET /healthz: liveness plus a real check of the database and the blob store."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from xdsi.web.context import announce, archive

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    parts = archive().health()
    healthy = all(value == "ok" for value in parts.values())
    return jsonify(status="ok" if healthy else "unhealthy", **parts), 200 if healthy else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "Health check", "/healthz")
