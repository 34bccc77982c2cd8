"""The access gate: every request, of every protocol, passes here once before anything answers it.

It wraps the whole WSGI application (``create_app`` installs it last), so a route added by any
blueprint, and an application mounted beside Flask's routes (the SOAP endpoint), are covered
without a line of their own. It authenticates the Authorization header (or the client certificate
the TLS handshake verified, ``security.tls``), checks the role the request needs
(``security.access``), and leaves the caller's ``Identity`` in the WSGI environ for the handlers
(``context.identity``, ``soap.application``). A refusal is 401 with one challenge per configured mechanism
(RFC 9110 11.6.1; RFC 7617 2; RFC 6750 3) or 403, as a SOAP 1.2 fault on the SOAP endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from flask import Response
from werkzeug.wrappers import Request

from xdsi import errormap
from xdsi.config import Settings
from xdsi.errors import Forbidden, Unauthenticated
from xdsi.security import access
from xdsi.security import identity as identity_module
from xdsi.security.authentication import Authenticator
from xdsi.security.identity import ANONYMOUS, Identity
from xdsi.security.logins import RecentLogins
from xdsi.security.tls import CLIENT_SUBJECT
from xdsi.services.auditor import Auditor, Requester
from xdsi.web import cors
from xdsi.web.errors import text_response
from xdsi.web.urls import is_trusted

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Where the gate leaves the caller's Identity in the WSGI environ.
IDENTITY = identity_module.ENVIRON_KEY
SOAP_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
# WS-Security 1.1 SOAP Message Security 12: the fault subcode of refused credentials.
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


class Gate:
    """WSGI middleware: authenticate and authorize, then call ``inner`` or answer the refusal."""

    def __init__(self, inner: WSGIApplication, authenticator: Authenticator, settings: Settings,
                 auditor: Auditor) -> None:
        self.inner = inner
        self.authenticator = authenticator
        self.auditor = auditor
        self.realm = settings.auth_realm.replace("\\", "\\\\").replace('"', '\\"')
        self.origins = settings.cors_origin_list
        self.role_scopes = {role: scope for scope, role in settings.scope_roles.items()}
        self.logins = RecentLogins()
        self.trusted_proxies = settings.trusted_proxy_networks
        self.proxy_header = "HTTP_" + settings.proxy_user_header.upper().replace("-", "_")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        role = access.required_role(method, path)
        # Fetch 4.8: a browser's CORS preflight never carries credentials; the cors module answers it.
        if role is None or (method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ):
            return self.inner(environ, start_response)
        address = environ.get("REMOTE_ADDR")
        if self.authenticator.saml and path in access.READ_BY_POST and not environ.get("HTTP_AUTHORIZATION"):
            # IHE XUA: the caller is named by the SAML assertion inside the message, which the SOAP
            # layer reads and checks before it acts; without one it answers a SOAP fault.
            return self.inner(environ, start_response)
        authorization, subject = environ.get("HTTP_AUTHORIZATION"), environ.get(CLIENT_SUBJECT)
        # A user named by a fronting proxy is believed from the trusted proxies alone.
        proxy_user = environ.get(self.proxy_header) if is_trusted(address, self.trusted_proxies) else None
        try:
            identity = self.authenticator.authenticate(authorization, subject, proxy_user)
        except Unauthenticated as refused:
            # A request without credentials is the first step of every login; refused ones are an event.
            if refused.mechanism is not None:
                self.auditor.refused_login(address, refused.claimed_user, str(refused))
            return self._refusal(refused, environ, path, method)(environ, start_response)
        credential = {"mtls": subject, "proxy": proxy_user}.get(identity.mechanism, authorization)
        # PS3.15 A.5.3.12: a user's login, once per credential for a while (``security.logins``).
        if identity is not ANONYMOUS and credential and self.logins.first(identity.mechanism, credential):
            self.auditor.logged_in(Requester(identity, address))
        try:
            access.authorize(identity, role)
        except Forbidden as refused:
            self.auditor.refused_access(Requester(identity, address), f"{method} {path}", str(refused))
            return self._refusal(refused, environ, path, method)(environ, start_response)
        environ[IDENTITY] = identity
        return self.inner(environ, start_response)

    def _refusal(self, error: Unauthenticated | Forbidden, environ: WSGIEnvironment, path: str,
                 method: str) -> Response:
        status = errormap.lookup(error).http_status
        if path in access.READ_BY_POST and method == "POST":
            response = Response(_soap_fault(str(error), failed_authentication=status == 401), status=status,
                                content_type="application/soap+xml; charset=utf-8")
        else:
            response = text_response(status, str(error))
        for challenge in self._challenges(error):
            response.headers.add("WWW-Authenticate", challenge)
        cors.allow(response, self.origins, Request(environ).headers.get("Origin"))
        return response

    def _challenges(self, error: Unauthenticated | Forbidden) -> list[str]:
        if isinstance(error, Forbidden):
            # RFC 6750 3.1: a token without the scope the request needs.
            scope = self.role_scopes.get(error.role)
            if self.authenticator.bearer is None or scope is None:
                return []
            return [f'Bearer realm="{self.realm}", error="insufficient_scope", scope="{scope}"']
        challenges = []
        if self.authenticator.basic is not None:
            challenges.append(f'Basic realm="{self.realm}", charset="UTF-8"')
        if self.authenticator.bearer is not None:
            # RFC 6750 3.1: no error code when the request carried no token at all.
            error_code = f', error="{error.token_error}"' if error.token_error else ""
            challenges.append(f'Bearer realm="{self.realm}"{error_code}')
        # A TLS client certificate has no HTTP authentication scheme (RFC 9110 16.4 registers none): with
        # mtls alone there is no challenge to send, and the reason says a certificate is wanted.
        return challenges


def identity_of(environ: WSGIEnvironment) -> Identity:
    """The caller the gate let through; a KeyError for a request it did not see is a wiring defect."""
    identity: Identity = environ[IDENTITY]
    return identity


def identity_or_none(environ: WSGIEnvironment) -> Identity | None:
    """The caller, or None on a route the gate leaves public (no credentials asked)."""
    return identity_module.in_environ(environ)


def _soap_fault(reason: str, *, failed_authentication: bool) -> bytes:
    """A SOAP 1.2 Sender fault (SOAP 1.2 Part 1 5.4), subcode wsse:FailedAuthentication for bad credentials."""
    subcode = ("<env:Subcode><env:Value>wsse:FailedAuthentication</env:Value></env:Subcode>"
               if failed_authentication else "")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<env:Envelope xmlns:env="{SOAP_ENVELOPE}" xmlns:wsse="{WSSE}"><env:Body><env:Fault>'
        f"<env:Code><env:Value>env:Sender</env:Value>{subcode}</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(reason)}</env:Text></env:Reason>'
        f"</env:Fault></env:Body></env:Envelope>"
    ).encode()


def init_app(app_wsgi: WSGIApplication, settings: Settings, auditor: Auditor) -> Gate:
    """The gate over ``app_wsgi``, with the mechanisms ``settings`` configure; refusals go to ``auditor``."""
    return Gate(app_wsgi, Authenticator.from_settings(settings), settings, auditor)
