"""GET /healthz: liveness plus a real check of the database and the blob store.

A store with less than ``min_free_bytes`` free is reported ``degraded`` with status 200, not
503: it still serves every retrieve and still stores what fits, and a load balancer that reads
503 would take the node out of rotation, or every node at once when they share the store, turning
a warning into an outage. Monitoring reads the body; a store really full fails its write probe
and answers 503 like any failing part, while STOW-RS answers 503 / 0xA700 per request.

The threshold is an amount, not a share of the disk (1 GiB by default, a few large CT studies):
what matters is whether the next uploads fit, and that does not grow with the disk's size.
"""

from __future__ import annotations

import dataclasses
import shutil

from flask import Blueprint, Flask, Response, jsonify

from xdsi.services.archive import Archive
from xdsi.web.context import announce, archive

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    current = archive()
    parts = current.health()
    # This worker's audit trail: messages sent, waiting and dropped. A repository that is down shows
    # here as a rising count; it never makes the node unhealthy, since requests are still served.
    counts = current.auditor.counts()
    audit = {"audit": dataclasses.asdict(counts)} if counts else {}
    if not all(value == "ok" for value in parts.values()):
        return jsonify(status="unhealthy", **parts, **audit), 503
    low = _low_space(current)
    if low:
        return jsonify(status="degraded", **{**parts, "store": low}, **audit), 200
    return jsonify(status="ok", **parts, **audit), 200


def _low_space(current: Archive) -> str | None:
    """The store's shortage in words, or None when it has at least ``min_free_bytes`` free."""
    free = shutil.disk_usage(current.settings.storage).free
    minimum = current.settings.min_free_bytes
    return f"low space: {free} bytes free, under min_free_bytes={minimum}" if free < minimum else None


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "Health check", "/healthz")
