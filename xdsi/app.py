"""create_app: the one place that wires settings, the archive's services and the blueprints together."""

from __future__ import annotations

from functools import partial
from wsgiref.types import WSGIEnvironment

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.soap import wssec, xua
from xdsi.soap.application import PublicUrls, WadoWsApplication
from xdsi.web import (
    auth,
    context,
    cors,
    delete_rs,
    errors,
    health,
    hosts,
    landing,
    qido_rs,
    rendered,
    stow_rs,
    urls,
    wado_rs,
    wado_uri,
)

WADO_WS = "/wado-ws"


def create_app(settings: Settings | None = None, archive: Archive | None = None) -> Flask:
    """A WSGI application over the archive named by ``settings`` (loaded from the environment if None).

    The services are built here, once per worker, with their dependencies (``Archive.open``);
    handlers reach them through ``web.context``. The schema is not touched here:
    ``Archive.prepare`` runs once per start (``xdsi serve`` does it before the workers fork).
    """
    settings = settings or Settings.load()
    app = Flask("xdsi")
    archive = archive or Archive.open(settings)
    context.init_app(app, archive)
    errors.init_app(app)
    cors.init_app(app, settings.cors_origin_list)
    landing.init_app(app)
    health.init_app(app)
    qido_rs.init_app(app)
    stow_rs.init_app(app)
    wado_rs.init_app(app)
    rendered.init_app(app)
    wado_uri.init_app(app)
    delete_rs.init_app(app)
    # WADO-WS shares the process, the archive and its services; its own WSGI application speaks SOAP.
    # WS-Security (verifying, requiring, signing) as the settings ask; a bad key or store stops here.
    wado_ws = WadoWsApplication(archive, partial(_wado_ws_urls, settings=settings), wssec.from_settings(settings),
                                xua.from_settings(settings))
    # The Host allow-list stands in front of every service, WADO-WS included.
    app.wsgi_app = hosts.HostCheck(  # type: ignore[method-assign]
        DispatcherMiddleware(app.wsgi_app, {WADO_WS: wado_ws}), settings)
    # One endpoint answers all three operations: RAD-69, rendered documents and document information.
    context.announce(app, "WADO-WS (RAD-69 retrieve, rendered, metadata)", WADO_WS)
    context.announce(app, "WADO-WS WSDL", f"{WADO_WS}?wsdl")
    # Last, so that it wraps whatever was mounted above: every request passes the access gate first.
    app.wsgi_app = auth.init_app(app.wsgi_app, settings, archive.auditor)  # type: ignore[method-assign]
    return app


def _wado_ws_urls(environ: WSGIEnvironment, settings: Settings) -> PublicUrls:
    base = urls.mounted_base(environ, settings, WADO_WS)
    return PublicUrls(base + WADO_WS, base + urls.DICOMWEB)
