"""Authentication: the Authorization header of a request, checked by the mechanism its scheme names,
or the client certificate the TLS handshake verified.

Built once per worker from the settings; with no mechanism configured every caller is
``ANONYMOUS`` (``xdsi serve`` allows that on loopback only, or with ``insecure``). A request that
carries both an Authorization header of a configured scheme and a client certificate is the
header's user: the certificate names the machine, the header the person at it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from xdsi.config import ConfigError, Settings, subject_roles
from xdsi.errors import Unauthenticated
from xdsi.security.basic import BasicAuthenticator
from xdsi.security.bearer import BearerAuthenticator
from xdsi.security.identity import ANONYMOUS, Identity
from xdsi.security.mtls import CertificateAuthenticator
from xdsi.security.proxy import ProxyAuthenticator


@dataclass(frozen=True)
class Authenticator:
    """``saml``: WADO-WS callers may instead be named by a SAML assertion in the message (IHE XUA),
    which the SOAP layer reads (``soap.xua``); HTTP credentials are checked here."""

    basic: BasicAuthenticator | None = None
    bearer: BearerAuthenticator | None = None
    mtls: CertificateAuthenticator | None = None
    saml: bool = False
    proxy: ProxyAuthenticator | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> Authenticator:
        """The configured mechanisms; a users file or JWKS that cannot be read is a ConfigError naming it."""
        mechanisms = settings.auth_mechanisms
        basic = bearer = mtls = None
        if "basic" in mechanisms:
            assert settings.users_file is not None
            if not settings.users_file.is_file():
                raise ConfigError([f"users_file: {settings.users_file} does not exist (xdsi user add creates it)"])
            basic = BasicAuthenticator(settings.users_file)
        if "bearer" in mechanisms:
            assert settings.jwks and settings.jwt_issuer and settings.jwt_audience
            try:
                bearer = BearerAuthenticator(
                    settings.jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                    algorithms=settings.jwt_algorithm_list, scope_roles=settings.scope_roles,
                    leeway=settings.jwt_leeway, ssl_context=ssl_context, issuers_claim=settings.jwt_issuers_claim,
                )
            except (OSError, ValueError) as exc:
                raise ConfigError([f"jwks: {settings.jwks} cannot be used: {exc}"]) from None
        if "mtls" in mechanisms:
            try:
                mtls = CertificateAuthenticator(subject_roles(settings.tls_client_roles))
            except ValueError as exc:
                raise ConfigError([f"tls_client_roles: {exc}"]) from None
        proxy = None
        if "proxy" in mechanisms:
            proxy = ProxyAuthenticator(frozenset(settings.proxy_role_list), basic)
        return cls(basic, bearer, mtls, "saml" in mechanisms, proxy)

    @property
    def enabled(self) -> bool:
        return bool(self.mechanisms) or self.saml

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("basic", self.basic), ("bearer", self.bearer), ("mtls", self.mtls),
                                           ("proxy", self.proxy)) if on is not None)

    def authenticate(self, authorization: str | None, client_subject: str | None = None,
                     proxy_user: str | None = None) -> Identity:
        """The caller the ``Authorization`` header value, the verified client certificate's subject or
        a trusted proxy's user header (``proxy_user``, given only for a trusted proxy's requests)
        proves; raises Unauthenticated otherwise."""
        if not self.enabled:
            return ANONYMOUS
        if self.proxy is not None and proxy_user:
            return self.proxy.authenticate(proxy_user)
        # RFC 9110 11.4: the scheme is case-insensitive, then one or more spaces, then the credentials.
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.basic is not None:
            return self.basic.authenticate(credentials.strip())
        if scheme == "bearer" and self.bearer is not None:
            return self.bearer.authenticate(credentials.strip())
        if self.mtls is not None and client_subject:
            return self.mtls.authenticate(client_subject)
        if not scheme:
            raise Unauthenticated("this server requires authentication"
                                  + (" (a TLS client certificate)" if self.mechanisms == ("mtls",) else ""))
        if not self.mechanisms:
            raise Unauthenticated("this server accepts no HTTP credentials: WADO-WS callers are named by a SAML "
                                  "assertion in the message")
        raise Unauthenticated(f"this server accepts {' or '.join(self.mechanisms)} credentials, "
                              f"not the scheme of the Authorization header")
