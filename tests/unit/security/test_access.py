"""Access rules: the role of each method, the exceptions (SOAP reads by POST, the public health check), admin."""

from __future__ import annotations

import pytest

from xdsi.errors import Forbidden
from xdsi.security.access import authorize, required_role
from xdsi.security.identity import Identity


@pytest.mark.parametrize(("method", "path", "role"), [
    ("GET", "/dicom-web/studies", "read"),
    ("HEAD", "/dicom-web/studies/1.2/metadata", "read"),
    ("OPTIONS", "/dicom-web/studies", "read"),
    ("POST", "/dicom-web/studies", "store"),
    ("DELETE", "/dicom-web/studies/1.2", "delete"),
    ("PUT", "/dicom-web/studies/1.2", "admin"),
    ("PATCH", "/anything", "admin"),
    ("POST", "/wado-ws", "read"),
    ("GET", "/wado-ws", "read"),
    # Only the exact path is the SOAP endpoint: a path beneath it is not a read by POST.
    ("POST", "/wado-ws/../dicom-web/studies", "store"),
    ("GET", "/healthz", None),
    ("POST", "/healthz", None),
    ("GET", "/healthz/", "read"),
])
def test_the_role_a_request_needs(method: str, path: str, role: str | None) -> None:
    assert required_role(method, path) == role


def test_a_caller_without_the_role_is_forbidden_and_admin_holds_every_role() -> None:
    reader = Identity("reader", frozenset({"read"}), "basic")
    authorize(reader, "read")
    with pytest.raises(Forbidden, match="reader lacks the store role") as refused:
        authorize(reader, "store")
    assert refused.value.role == "store"
    admin = Identity("root", frozenset({"admin"}), "bearer")
    for role in ("read", "store", "delete", "admin"):
        authorize(admin, role)
    with pytest.raises(Forbidden):
        authorize(Identity("nobody", frozenset(), "bearer"), "read")
