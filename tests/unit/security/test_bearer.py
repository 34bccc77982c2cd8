"""Bearer JWTs: a good token gives the subject and the roles of its scopes; every kind of bad token is refused
with invalid_token (expired, not yet valid, wrong audience or issuer, alg none, HS256 keyed with the public key,
another key, tampered, malformed)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.tokens import AUDIENCE, ISSUER, TokenIssuer
from xdsi.config import ASYMMETRIC_JWT_ALGORITHMS, Settings
from xdsi.errors import Unauthenticated
from xdsi.security.bearer import BearerAuthenticator


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TokenIssuer:
    return TokenIssuer(tmp_path_factory.mktemp("idp"))


def authenticator(jwks: str, **options: object) -> BearerAuthenticator:
    settings = Settings.load(environ={})
    return BearerAuthenticator(jwks, issuer=ISSUER, audience=AUDIENCE, algorithms=ASYMMETRIC_JWT_ALGORITHMS,
                               scope_roles=settings.scope_roles, leeway=0, **options)  # type: ignore[arg-type]


def test_a_good_token_gives_its_subject_and_the_roles_of_its_scopes(issuer: TokenIssuer) -> None:
    checker = authenticator(str(issuer.jwks_file))
    identity = checker.authenticate(issuer.token(scope="openid xdsi.read xdsi.store other"))
    assert identity.name == "dr.who"
    assert identity.roles == {"read", "store"}
    assert identity.scopes == {"openid", "xdsi.read", "xdsi.store", "other"}
    assert identity.mechanism == "bearer"
    # The scp list form (Azure AD and others) and an audience list holding ours.
    listed = checker.authenticate(issuer.token(scope=None, scp=["xdsi.delete"], aud=["other", AUDIENCE]))
    assert listed.roles == {"delete"}
    # No scope: known, but holding no role (a 403, not a 401, at the edge).
    assert checker.authenticate(issuer.token(scope=None)).roles == frozenset()


def _bad_tokens(issuer: TokenIssuer) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = issuer.token()
    header, _, signature = good.split(".")
    forged_payload = jwt.utils.base64url_encode(json.dumps(issuer.claims(sub="admin", scope="xdsi.admin")).encode())
    return {
        "expired": (issuer.token(exp=now - 60, iat=now - 600, nbf=now - 600), "expired"),
        "not yet valid": (issuer.token(nbf=now + 600), "not valid yet"),
        "wrong audience": (issuer.token(aud="https://other.example.org"), "not meant for this server"),
        "wrong issuer": (issuer.token(iss="https://evil.example.org"), "issuer"),
        "no exp": (issuer.token(exp=None), "lacks a required claim"),
        "no audience": (issuer.token(aud=None), "lacks a required claim"),
        "alg none": (issuer.unsigned(), "algorithm"),
        "alg none, empty signature stripped": (issuer.unsigned().rstrip("."), "well-formed"),
        "HS256 with the public key": (issuer.hs256_with_public_key(), "algorithm"),
        "HS256 with the JWK's modulus": (issuer.hs256_with_public_key(issuer.jwks["keys"][0]["n"].encode()),
                                         "algorithm"),
        "another key, same kid": (issuer.token(key=other_key), "signature"),
        "unknown kid": (issuer.token(kid="who-knows"), "no key"),
        "tampered payload": (f"{header}.{forged_payload.decode()}.{signature}", "signature"),
        "garbage": ("not.a.jwt", "well-formed"),
        "empty": ("", "well-formed"),
    }


CASES = ["expired", "not yet valid", "wrong audience", "wrong issuer", "no exp", "no audience", "alg none",
         "alg none, empty signature stripped", "HS256 with the public key", "HS256 with the JWK's modulus",
         "another key, same kid", "unknown kid", "tampered payload", "garbage", "empty"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_token_is_refused_as_invalid_token(issuer: TokenIssuer, case: str) -> None:
    token, reason = _bad_tokens(issuer)[case]
    with pytest.raises(Unauthenticated, match=reason) as refused:
        authenticator(str(issuer.jwks_file)).authenticate(token)
    assert refused.value.token_error == "invalid_token"
    assert refused.value.mechanism == "bearer"


def test_leeway_tolerates_a_little_clock_skew(issuer: TokenIssuer) -> None:
    now = int(time.time())
    skewed = issuer.token(exp=now - 10, iat=now - 300, nbf=now - 300)
    with pytest.raises(Unauthenticated):
        authenticator(str(issuer.jwks_file)).authenticate(skewed)
    settings = Settings.load(environ={})
    tolerant = BearerAuthenticator(str(issuer.jwks_file), issuer=ISSUER, audience=AUDIENCE,
                                   algorithms=settings.jwt_algorithm_list, scope_roles=settings.scope_roles,
                                   leeway=30)
    assert tolerant.authenticate(skewed).name == "dr.who"


def test_a_file_that_is_no_key_set_is_refused_at_start(tmp_path: Path) -> None:
    bogus = tmp_path / "jwks.json"
    bogus.write_text('{"keys": "no"}')
    with pytest.raises(ValueError, match="not a JSON Web Key Set"):
        authenticator(str(bogus))


@pytest.fixture
def https_jwks(issuer: TokenIssuer, tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext, list[str]]]:
    """The JWKS served over https by a local server whose certificate a test CA signed."""
    from tests.certificates import TestCA

    ca = TestCA(tmp_path)
    cert, key = ca.issue("localhost", tmp_path / "server")
    fetched: list[str] = []
    body = json.dumps(issuer.jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(ca.cert_file))
    yield f"https://localhost:{server.server_address[1]}/jwks", client_context, fetched
    server.shutdown()
    server.server_close()


def test_keys_fetched_from_an_https_url_verify_tokens_and_are_kept(
        issuer: TokenIssuer, https_jwks: tuple[str, ssl.SSLContext, list[str]]) -> None:
    url, context, fetched = https_jwks
    checker = authenticator(url, ssl_context=context)
    assert checker.authenticate(issuer.token()).name == "dr.who"
    assert checker.authenticate(issuer.token(sub="another")).name == "another"
    assert fetched == ["/jwks"]
    with pytest.raises(Unauthenticated, match="signature"):
        checker.authenticate(issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def test_an_https_url_whose_certificate_is_not_trusted_gives_no_keys(
        issuer: TokenIssuer, https_jwks: tuple[str, ssl.SSLContext, list[str]]) -> None:
    url, _context, fetched = https_jwks
    with pytest.raises(Unauthenticated, match="cannot fetch"):
        authenticator(url, ssl_context=ssl.create_default_context()).authenticate(issuer.token())
    assert fetched == []
