"""The landing page's list: an endpoint a setting switches off shows as disabled."""

from __future__ import annotations

import dataclasses

from xdsi.app import create_app
from xdsi.config import Settings
from xdsi.services.archive import Archive
from xdsi.web.context import announce


def listed(settings: Settings, archive: Archive, *extra: tuple[str, str, bool]) -> dict[str, tuple[str, str]]:
    # The requests name the host "pacs", which the Host allow-list must admit.
    app = create_app(dataclasses.replace(settings, allowed_hosts="pacs"), archive)
    for name, path, enabled in extra:
        announce(app, name, path, enabled=enabled)
    reply = app.test_client().get("/", headers={"Accept": "application/json"}, base_url="http://pacs:8080")
    assert reply.status_code == 200
    return {service["name"]: (service["url"], service["status"]) for service in reply.get_json()["services"]}


def test_an_endpoint_switched_off_is_listed_as_disabled(settings: Settings, archive: Archive) -> None:
    found = listed(settings, archive, ("Delete", "/dicom-web/studies/{study}", False))
    assert found["Delete"] == ("http://pacs:8080/dicom-web/studies/{study}", "disabled")
    assert found["STOW-RS (store)"] == ("http://pacs:8080/dicom-web/studies", "available")


def test_an_announced_service_root_gets_the_short_404(settings: Settings, archive: Archive) -> None:
    """WADO-URI is announced with its query template; its root is still /wado."""
    app = create_app(settings, archive)
    reply = app.test_client().get("/wado/x")
    assert reply.status_code == 404
    assert reply.get_data(as_text=True) == (
        "404 Not Found: /wado has no resource at this path; GET / lists the services of this server\n"
    )
    assert app.test_client().get("/wado-ws/x").status_code == 404
