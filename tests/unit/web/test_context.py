"""A request's database session: opened on first use, one per request, closed when the request ends."""

from __future__ import annotations

from sqlalchemy import text

from xdsi.app import create_app
from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.web.context import session


def test_a_request_has_one_session_closed_when_it_ends(settings: Settings, archive: Archive) -> None:
    app = create_app(settings, archive)
    with app.test_request_context("/dicom-web/studies"):
        first = session()
        assert session() is first
        first.execute(text("SELECT 1"))
        assert archive.engine.pool.checkedout() == 1
    assert archive.engine.pool.checkedout() == 0
    with app.test_request_context("/dicom-web/studies"):
        assert session() is not first


def test_requests_over_http_give_their_connection_back(settings: Settings, archive: Archive) -> None:
    client = create_app(settings, archive).test_client()
    for path in ("/dicom-web/studies", "/dicom-web/studies/1.2.3/metadata", "/dicom-web/series?Modality=CT"):
        client.get(path)
        assert archive.engine.pool.checkedout() == 0, path
