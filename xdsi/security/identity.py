"""Identity: who a request comes from, as the edge established it, and the roles it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xdsi.config import ROLES

Role = str
# Where the access gate (web.auth) leaves the caller's Identity in the WSGI environ, for every protocol edge.
ENVIRON_KEY = "xdsi.identity"
READ, STORE, DELETE, ADMIN = ROLES


@dataclass(frozen=True)
class Identity:
    """A caller: ``name`` (user name or token subject), its roles, and the mechanism that proved it.

    ``mechanism`` is 'basic', 'bearer' or 'mtls' (``name`` is then the certificate's subject), or
    'none' on a server without authentication, where every caller is ``ANONYMOUS`` and holds every
    role. ``scopes`` are a bearer token's, kept for audit.
    """

    name: str
    roles: frozenset[Role]
    mechanism: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def holds(self, role: Role) -> bool:
        """admin holds every role: an administrator is never refused what a reader may do."""
        return role in self.roles or ADMIN in self.roles


ANONYMOUS = Identity("anonymous", frozenset(ROLES), "none")


def of_environ(environ: Mapping[str, object]) -> Identity:
    """The caller the gate let through; a KeyError for a request it did not see is a wiring defect."""
    identity = environ[ENVIRON_KEY]
    assert isinstance(identity, Identity)
    return identity
