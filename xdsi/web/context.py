"""Access to the archive, a request's database session and the client's wishes from a request, and the
endpoints a server announces."""

from __future__ import annotations

from typing import Any, NamedTuple

from flask import Flask, Request, current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.datastructures import ImmutableMultiDict

from xdsi.security.identity import Identity
from xdsi.services.archive import Archive
from xdsi.services.auditor import Requester
from xdsi.web import auth, negotiation

# PS3.18 8.3.3.1: query parameters that negotiate the answer rather than select data.
NEGOTIATION_PARAMETERS = frozenset({"accept"})


EXTENSION = "xdsi"


def init_app(app: Flask, archive: Archive) -> None:
    app.request_class = _Request
    app.extensions[EXTENSION] = archive
    app.config["XDSI_ENDPOINTS"] = []
    app.teardown_appcontext(_close_session)


def archive() -> Archive:
    return current_app.extensions[EXTENSION]


def session() -> Session:
    """The request's database session, opened on first use and closed when the request ends; it sees
    the patients the caller may see (a route the gate leaves public shows no patient's data).

    A request that never touches the index (a bad UID, a landing page) opens none.
    """
    if "xdsi_session" not in g:
        caller = auth.identity_or_none(request.environ)
        g.xdsi_session = archive().session_for(caller.issuers if caller is not None else None)
    return g.xdsi_session


def _close_session(error: BaseException | None) -> None:
    opened = g.pop("xdsi_session", None)
    if opened is not None:
        opened.close()


def identity() -> Identity:
    """The caller of this request, as the access gate established it."""
    return auth.identity_of(request.environ)


def requester() -> Requester:
    """Who asks, for the audit trail: the caller and the address its connection comes from."""
    return Requester(identity(), request.remote_addr)


def accepted() -> list[negotiation.MediaRange]:
    """The media types the client accepts; PS3.18 8.3.3.1: the ``accept`` query parameter, when
    present, takes precedence over the Accept header."""
    return negotiation.parse_accept(request.args.get("accept") or request.headers.get("Accept"))


class _Parameters(ImmutableMultiDict[str, str]):
    """Query and form parameters whose ``get`` of an absent name returns its default at once: werkzeug's
    raises and catches an HTTP exception for it, which costs more than reading the names present, and
    every request asks for parameters it does not carry."""

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            return default
        return super().get(key, default, type)


class _Request(Request):
    parameter_storage_class = _Parameters


class Endpoint(NamedTuple):
    """A service URL path this server mounts; ``enabled`` is False when a setting switches it off."""

    name: str
    path: str
    enabled: bool = True

    @property
    def root(self) -> str:
        """The service root the path lies under: its first segment ('/dicom-web', '/wado'), '' for '/'."""
        first = self.path.split("?")[0].split("/")[1]
        return f"/{first}" if first else ""


def announce(app: Flask, name: str, path: str, *, enabled: bool = True) -> None:
    """Record a service URL path for the start-up banner of ``xdsi serve`` and the landing page."""
    app.config["XDSI_ENDPOINTS"].append(Endpoint(name, path, enabled))
