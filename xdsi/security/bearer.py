"""OAuth 2.0 bearer tokens (RFC 6750) as JWT access tokens (RFC 9068, IHE IUA ITI-72), through PyJWT.

A token is accepted when its signature verifies with a key of the configured JWKS under an
allowed public-key algorithm, and its ``iss``, ``aud``, ``exp`` (and ``nbf`` when present) hold.
Its ``scope`` claim (space-separated, RFC 8693 4.2; IUA) or ``scp`` list gives the roles, through
``jwt_scope_roles``. PyJWT binds each JWK to one algorithm, and the allow-list holds no HMAC
algorithm: neither 'none' nor an HS256 token keyed with the published public key can pass.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from xdsi.errors import Unauthenticated
from xdsi.security.identity import Identity, Role

log = logging.getLogger(__name__)

# RFC 6750 3.1: the error code of a token that is expired, revoked, malformed or otherwise invalid.
INVALID_TOKEN = "invalid_token"
# How long keys fetched from a JWKS URL are kept; a token naming an unknown kid fetches again.
JWKS_LIFESPAN_SECONDS = 300

# What a refused token is told, per PyJWT error: short and the client's own business, never the library's text.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the bearer token has expired"),
    (jwt.ImmatureSignatureError, "the bearer token is not valid yet (nbf)"),
    (jwt.InvalidAudienceError, "the bearer token is not meant for this server (aud)"),
    (jwt.InvalidIssuerError, "the bearer token comes from an issuer this server does not trust (iss)"),
    (jwt.MissingRequiredClaimError, "the bearer token lacks a required claim (iss, aud, exp, sub)"),
    (jwt.InvalidAlgorithmError, "the bearer token is signed with an algorithm this server does not accept"),
    (jwt.InvalidSignatureError, "the bearer token's signature does not verify"),
    (jwt.PyJWKClientConnectionError, "the server cannot fetch the key set that checks tokens; try again later"),
    (jwt.PyJWKClientError, "the bearer token names no key of the trusted key set"),
    (jwt.DecodeError, "the bearer token is not a well-formed signed JWT"),
)


class BearerAuthenticator:
    """Verifies JWT access tokens against a JWKS read from a file or fetched from an https URL."""

    def __init__(
        self,
        jwks: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        scope_roles: Mapping[str, Role],
        leeway: int = 30,
        ssl_context: ssl.SSLContext | None = None,
        issuers_claim: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.issuers_claim = issuers_claim
        self.audience = audience
        self.algorithms = list(algorithms)
        self.scope_roles = dict(scope_roles)
        self.leeway = leeway
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if jwks.startswith("https://"):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=JWKS_LIFESPAN_SECONDS,
                                           timeout=10, ssl_context=ssl_context)
        else:
            self._keys = load_json_keys(Path(jwks).read_text(encoding="utf-8"))

    def authenticate(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _refused(exc) from None
        scopes = _scopes(claims)
        roles = frozenset(self.scope_roles[scope] for scope in scopes if scope in self.scope_roles)
        return Identity(str(claims["sub"]), roles, "bearer", scopes, self._patient_issuers(claims))

    def _patient_issuers(self, claims: Mapping[str, Any]) -> frozenset[str] | None:
        """The patient domains the token grants: every one without an issuers claim configured;
        none when the claim is configured and absent or malformed (a token is limited by default)."""
        if self.issuers_claim is None:
            return None
        value = claims.get(self.issuers_claim)
        listed = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        issuers = frozenset(item for item in listed if isinstance(item, str))
        return None if "*" in issuers else issuers

    def _key_for(self, token: str) -> jwt.PyJWK:
        """The key the token's header names (kid); a key set of one key serves a token without kid."""
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._keys.keys) == 1:
            return self._keys.keys[0]
        if kid is None:
            raise jwt.PyJWKClientError("no kid in the token header and several keys to choose from")
        try:
            return self._keys[kid]
        except KeyError:
            raise jwt.PyJWKClientError(f"no key with kid {kid!r}") from None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    listed = claims.get("scp")
    if isinstance(listed, list):
        return frozenset(item for item in listed if isinstance(item, str))
    return frozenset()


def _refused(error: jwt.PyJWTError) -> Unauthenticated:
    reason = next((text for kind, text in _REASONS if isinstance(error, kind)), "the bearer token is not valid")
    log.info("bearer token refused: %s: %s", type(error).__name__, error)
    return Unauthenticated(reason, mechanism="bearer", token_error=INVALID_TOKEN)


def load_json_keys(text: str) -> jwt.PyJWKSet:
    """A JWKS document as keys; raises ValueError when it is not one."""
    try:
        return jwt.PyJWKSet.from_dict(json.loads(text))
    except (ValueError, jwt.PyJWTError) as exc:
        raise ValueError(f"not a JSON Web Key Set: {exc}") from None
