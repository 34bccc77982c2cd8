"""Salted, slow password hashes: scrypt (RFC 7914) from the standard library, in a PHC-style string.

``$scrypt$ln=15,r=8,p=1$<salt>$<hash>`` (base64 without padding): the cost is written beside each
hash, so raising it later leaves old entries readable. N = 2^15, r = 8 uses 32 MiB and about a
tenth of a second per check: slow for a guesser, and paid once per client for a while, since
``basic.BasicAuthenticator`` remembers a verified credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

LOG2_N = 15
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Room for the largest cost accepted when reading (2^17 × 8 × 128 B = 128 MiB, OWASP's upper advice).
MAX_LOG2_N = 17
_MAXMEM = 2 * 128 * BLOCK_SIZE * (1 << MAX_LOG2_N)


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, LOG2_N, BLOCK_SIZE, PARALLELISM)
    return f"$scrypt$ln={LOG2_N},r={BLOCK_SIZE},p={PARALLELISM}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded``; False for a wrong password or an unreadable hash."""
    try:
        _, scheme, params, salt, digest = encoded.split("$")
        cost = dict(item.split("=", 1) for item in params.split(","))
        log2_n, r, p = int(cost["ln"]), int(cost["r"]), int(cost["p"])
        if scheme != "scrypt" or not 1 <= log2_n <= MAX_LOG2_N or r != BLOCK_SIZE or p != PARALLELISM:
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), log2_n, r, p)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
