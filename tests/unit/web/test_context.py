"""A request's database session: opened on first use, one per request, closed when the request ends."""

from __future__ import annotations

from flask import request
from sqlalchemy import text

from xdsi.app import create_app
from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.web.context import session


def _kept(archive: Archive) -> int:
    """Connections a request may leave checked out: on SQLite the thread's own (db.ThreadConnections)."""
    return 1 if archive.engine.dialect.name == "sqlite" else 0


def test_a_request_has_one_session_closed_when_it_ends(settings: Settings, archive: Archive) -> None:
    app = create_app(settings, archive)
    with app.test_request_context("/dicom-web/studies"):
        first = session()
        assert session() is first
        first.execute(text("SELECT 1"))
        connection = first.connection()
        assert connection.in_transaction()
        assert archive.engine.pool.checkedout() == 1
    assert not connection.in_transaction()  # its transaction ended with the request
    assert archive.engine.pool.checkedout() == _kept(archive)
    with app.test_request_context("/dicom-web/studies"):
        assert session() is not first


def test_requests_over_http_give_their_connection_back(settings: Settings, archive: Archive) -> None:
    client = create_app(settings, archive).test_client()
    for path in ("/dicom-web/studies", "/dicom-web/studies/1.2.3/metadata", "/dicom-web/series?Modality=CT"):
        client.get(path)
        assert archive.engine.pool.checkedout() == _kept(archive), path
        kept = getattr(archive.readers.local, "connection", None)
        assert kept is None or not kept.in_transaction(), path  # no snapshot outlives its request


def test_query_parameters_read_as_werkzeugs_with_absent_names_given_their_default(
        settings: Settings, archive: Archive) -> None:
    app = create_app(settings, archive)
    with app.test_request_context("/dicom-web/studies?limit=5&includefield=A&includefield=B"):
        args = request.args
        assert args.get("limit") == "5" and args.get("limit", type=int) == 5
        assert args.getlist("includefield") == ["A", "B"] and args.get("includefield") == "A"
        assert args.get("offset") is None and args.get("offset", "0") == "0" and args.get("offset", type=int) is None
