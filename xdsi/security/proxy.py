"""Users a fronting proxy authenticated (Kerberos, NTLM, Digest, a hospital's single sign-on): the
proxy names the user in a request header, believed only from the ``trusted_proxies`` addresses.

xdsi does not speak those mechanisms itself; a web server in front of it that does (Apache
mod_auth_gssapi, nginx with SPNEGO, IIS ARR) passes the user on. The gate reads the header only
when the connection comes from a trusted proxy, so a client reaching xdsi directly cannot name
itself. The user's roles and patient domains are those of the users file when it lists the user
(its password is not used), else ``proxy_roles``.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsi.errors import Unauthenticated
from xdsi.security.basic import BasicAuthenticator, check_name
from xdsi.security.identity import Identity, Role


@dataclass(frozen=True)
class ProxyAuthenticator:
    roles: frozenset[Role]
    directory: BasicAuthenticator | None = None

    def authenticate(self, user: str) -> Identity:
        name = user.strip()
        try:
            check_name(name)
        except ValueError as exc:
            raise Unauthenticated(f"the proxy's user header does not name a user: {exc}", mechanism="proxy") from None
        listed = self.directory.users().get(name) if self.directory is not None else None
        if listed is not None:
            return Identity(name, listed.roles, "proxy", issuers=listed.issuers)
        return Identity(name, self.roles, "proxy")
