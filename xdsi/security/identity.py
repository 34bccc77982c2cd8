"""Identity: who a request comes from, as the edge established it, and the roles it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xdsi.config import ROLES

Role = str
READ, STORE, DELETE, ADMIN = ROLES


@dataclass(frozen=True)
class Identity:
    """A caller: ``name`` (user name or token subject), its roles, and the mechanism that proved it.

    ``mechanism`` is 'basic', 'bearer' or 'mtls' (``name`` is then the certificate's subject), or
    'none' on a server without authentication, where every caller is ``ANONYMOUS`` and holds every
    role. ``scopes`` are a bearer token's, kept for audit.
    ``issuers``: the patient identifier domains (Issuers of Patient ID) the caller may see, '' for
    patients recorded without an issuer; None sees every patient.
    """

    name: str
    roles: frozenset[Role]
    mechanism: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    issuers: frozenset[str] | None = None

    def holds(self, role: Role) -> bool:
        """admin holds every role: an administrator is never refused what a reader may do."""
        return role in self.roles or ADMIN in self.roles


ANONYMOUS = Identity("anonymous", frozenset(ROLES), "none")


# Where the access gate leaves the caller in a request's WSGI environ, for the protocol layers.
ENVIRON_KEY = "xdsi.identity"


def in_environ(environ: Mapping[str, Any]) -> Identity | None:
    """The caller the gate let through; None on a route it leaves public (no credentials asked)."""
    found = environ.get(ENVIRON_KEY)
    return found if isinstance(found, Identity) else None
