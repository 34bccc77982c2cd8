"""Access to the archive from a request, and the list of endpoints a server announces."""

from __future__ import annotations

from flask import Flask, current_app

from xdsi.services.archive import Archive


def archive() -> Archive:
    return current_app.extensions["xdsi"]


def announce(app: Flask, name: str, path: str) -> None:
    """Record a service URL path for the start-up banner of ``xdsi serve``."""
    app.config["XDSI_ENDPOINTS"].append((name, path))
