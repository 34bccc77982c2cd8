"""create_app: the one place that wires settings, the archive's services and the blueprints together."""

from __future__ import annotations

from flask import Flask

from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.web import context, cors, delete_rs, errors, health, landing, qido_rs, rendered, stow_rs, wado_rs


def create_app(settings: Settings | None = None, archive: Archive | None = None) -> Flask:
    """A WSGI application over the archive named by ``settings`` (loaded from the environment if None).

    The services are built here, once per worker, with their dependencies (``Archive.open``);
    handlers reach them through ``web.context``. The schema is not touched here:
    ``Archive.prepare`` runs once per start (``xdsi serve`` does it before the workers fork).
    """
    settings = settings or Settings.load()
    app = Flask("xdsi")
    context.init_app(app, archive or Archive.open(settings))
    errors.init_app(app)
    cors.init_app(app, settings.cors_origin_list)
    landing.init_app(app)
    health.init_app(app)
    qido_rs.init_app(app)
    stow_rs.init_app(app)
    wado_rs.init_app(app)
    rendered.init_app(app)
    delete_rs.init_app(app)
    return app
