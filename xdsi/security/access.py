"""Access rules: the role each request needs, and the check that a caller holds it.

The role follows from the method (reading, storing, deleting), so that a route added anywhere is
covered the day it is added; the tables below name the few exceptions. An unlisted method (PUT,
PATCH, …) needs admin: nothing answers it today, and whatever does one day is not a plain read.
"""

from __future__ import annotations

from xdsi.errors import Forbidden
from xdsi.security.identity import ADMIN, DELETE, READ, STORE, Identity, Role

METHOD_ROLES: dict[str, Role] = {
    "GET": READ,
    "HEAD": READ,
    "OPTIONS": READ,
    "POST": STORE,  # PS3.18 10.5: STOW-RS
    "DELETE": DELETE,
}
# Paths whose POST only reads: WADO-WS (RAD TF-3 4.69, PS3.18 6.4) retrieves through SOAP calls.
READ_BY_POST = frozenset({"/wado-ws"})
# Answered to anyone: a load balancer's liveness probe carries no credentials and learns no patient data.
PUBLIC = frozenset({"/healthz"})


def required_role(method: str, path: str) -> Role | None:
    """The role a ``method`` on ``path`` needs; None for a public path."""
    if path in PUBLIC:
        return None
    if path in READ_BY_POST:
        return READ
    return METHOD_ROLES.get(method.upper(), ADMIN)


def authorize(identity: Identity, role: Role) -> None:
    """Raise Forbidden unless ``identity`` holds ``role``."""
    if not identity.holds(role):
        raise Forbidden(f"{identity.name} lacks the {role} role this request needs", role=role)
