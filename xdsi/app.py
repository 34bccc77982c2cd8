"""create_app: the one place that wires settings, the archive and the blueprints together."""

from __future__ import annotations

from flask import Flask

from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.web import cors, delete_rs, errors, health, landing, qido_rs, stow_rs, wado_rs

EXTENSION = "xdsi"


def create_app(settings: Settings | None = None, archive: Archive | None = None) -> Flask:
    """A WSGI application over the archive named by ``settings`` (loaded from the environment if None).

    The schema is not touched here: ``Archive.prepare`` runs once per start (``xdsi serve``
    does it before the workers fork), not once per worker.
    """
    settings = settings or Settings.load()
    app = Flask("xdsi")
    app.extensions[EXTENSION] = archive or Archive.open(settings)
    app.config["XDSI_ENDPOINTS"] = []
    errors.init_app(app)
    cors.init_app(app, settings.cors_origin_list)
    landing.init_app(app)
    health.init_app(app)
    qido_rs.init_app(app)
    stow_rs.init_app(app)
    wado_rs.init_app(app)
    delete_rs.init_app(app)
    return app
