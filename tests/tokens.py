"""A token issuer for tests: an RSA key made at test time, its JWKS file, and tokens good and bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.example.org/realms/radiology"
AUDIENCE = "https://xdsi.example.org"
KID = "test-key-1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class TokenIssuer:
    """Signs JWT access tokens as an IUA authorization server would (RS256, kid in the header)."""

    def __init__(self, folder: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}
        self.jwks_file = folder / "jwks.json"
        self.jwks_file.write_text(json.dumps(self.jwks))

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dr.who", "iat": now, "nbf": now - 5, "exp": now + 300,
                  "jti": f"jti-{now}", "scope": "xdsi.read"}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, *, key: rsa.RSAPrivateKey | None = None, kid: str = KID, **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), key or self.key, algorithm="RS256", headers={"kid": kid})

    def unsigned(self, **overrides: Any) -> str:
        """alg 'none' (RFC 7519 6): a token anyone can write."""
        header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
        return f"{header}.{_b64url(json.dumps(self.claims(**overrides)).encode())}."

    def hs256_with_public_key(self, secret: bytes | None = None, **overrides: Any) -> str:
        """HS256 keyed with the server's published public key: the algorithm-confusion attack."""
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
        payload = _b64url(json.dumps(self.claims(**overrides)).encode())
        signing_input = f"{header}.{payload}".encode()
        mac = hmac.new(secret or self.public_pem, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(mac)}"
