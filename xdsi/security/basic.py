"""HTTP Basic authentication (RFC 7617) against a users file of salted, slow hashes.

The users file holds one user a line, ``NAME:ROLE[,ROLE…][;ISSUER,…]:HASH`` (``passwords`` writes
the hash); the issuers after ``;`` (percent-encoded; an empty one stands for patients recorded
without an issuer) limit the patients the user sees, and without ``;`` the user sees every
patient. Lines starting with '#' are comments. ``xdsi user add`` writes it. The server reads it again when
it changes, so adding a user or changing a password needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from xdsi.errors import Unauthenticated
from xdsi.security.identity import ROLES, Identity, Role
from xdsi.security.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

# A verified credential is remembered this long, so that a viewer's hundred requests cost one
# scrypt, not a hundred; a changed users file forgets them all at once.
REMEMBER_SECONDS = 300
REMEMBER_MAX = 1024


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[Role]
    password_hash: str
    issuers: frozenset[str] | None = None

    def line(self) -> str:
        issuers = "" if self.issuers is None else ";" + ",".join(quote(i, safe="") for i in sorted(self.issuers))
        return f"{self.name}:{','.join(sorted(self.roles))}{issuers}:{self.password_hash}\n"

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.roles, "basic", issuers=self.issuers)


def check_name(name: str) -> None:
    """RFC 7617 2: a user-id has no colon; control characters and blanks at the ends invite confusion."""
    if not name or ":" in name or name != name.strip() or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"{name!r} is not a usable user name (no colon, control character or edge blank)")


def check_roles(roles: Iterable[str]) -> frozenset[Role]:
    chosen = frozenset(roles)
    unknown = sorted(chosen - set(ROLES))
    if unknown or not chosen:
        raise ValueError(f"roles must be among {', '.join(ROLES)}, not {', '.join(unknown) or 'none'}")
    return chosen


def read_users(path: Path) -> dict[str, User]:
    """The users of ``path``; a malformed line is logged with its number and skipped."""
    users: dict[str, User] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        name, _, rest = text.partition(":")
        grants, _, password_hash = rest.partition(":")
        roles, limited, issuers = grants.partition(";")
        try:
            check_name(name)
            users[name] = User(name, check_roles(filter(None, roles.split(","))), password_hash,
                               frozenset(unquote(i) for i in issuers.split(",")) if limited else None)
        except ValueError as exc:
            log.error("%s line %d skipped: %s", path, number, exc)
    return users


def add_user(path: Path, name: str, password: str, roles: Iterable[str],
             issuers: Iterable[str] | None = None) -> bool:
    """Add ``name`` to the users file, or replace its password, roles and issuers; True if it was new.

    The file is rewritten whole into a temporary file beside it (mode 0600: it holds hashes)
    and renamed over the old one, so a reader sees either version, never half of one.
    """
    check_name(name)
    chosen = check_roles(roles)
    if not password:
        raise ValueError("the password is empty")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    entry = User(name, chosen, hash_password(password), None if issuers is None else frozenset(issuers)).line()
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    _replace(path, [*kept, entry])
    return len(kept) == len(lines)


def remove_user(path: Path, name: str) -> bool:
    """Remove ``name`` from the users file; False if it was not there."""
    if not path.exists():
        return False
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    if len(kept) == len(lines):
        return False
    _replace(path, kept)
    return True


def _replace(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class BasicAuthenticator:
    """Checks ``Authorization: Basic`` credentials against the users file, read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}
        self._remembered: dict[bytes, tuple[str, float]] = {}
        # Keys the memory of verified credentials: it never holds a password or a fast hash of one alone.
        self._secret = os.urandom(32)
        self._decoy = hash_password(os.urandom(16).hex())
        self._refresh()

    def authenticate(self, credentials: str) -> Identity:
        """The user proven by the base64 ``user-id:password`` of a Basic Authorization header."""
        name, password = _decode(credentials)
        users = self._refresh()
        key = hmac.new(self._secret, credentials.encode("ascii", "replace"), hashlib.sha256).digest()
        user = users.get(name)
        with self._lock:
            remembered = self._remembered.get(key)
        if user is not None and remembered is not None and remembered[0] == user.password_hash \
                and remembered[1] > time.monotonic():
            return user.identity
        # The decoy is checked for an unknown user too, so that a guesser cannot tell names by the time taken.
        if not verify_password(password, user.password_hash if user else self._decoy) or user is None:
            raise Unauthenticated("the user name or password is wrong", mechanism="basic", claimed_user=name)
        with self._lock:
            if len(self._remembered) >= REMEMBER_MAX:
                self._remembered.pop(next(iter(self._remembered)))
            self._remembered[key] = (user.password_hash, time.monotonic() + REMEMBER_SECONDS)
        return user.identity

    def users(self) -> dict[str, User]:
        """The users of the file as it is now."""
        return self._refresh()

    def _refresh(self) -> dict[str, User]:
        """The users, read again if the file changed since last read (a stat per request)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._users = read_users(self.path) if stamp else {}
                if stamp is None:
                    log.error("users file %s does not exist: every Basic credential is refused", self.path)
                self._stamp = stamp
                self._remembered.clear()
            return self._users


def _decode(credentials: str) -> tuple[str, str]:
    """RFC 7617 2.1: base64 of ``user-id ':' password``, UTF-8 (the charset xdsi announces)."""
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthenticated("the Basic credentials are not base64 of UTF-8 'user:password'",
                              mechanism="basic") from None
    name, sep, password = text.partition(":")
    if not sep:
        raise Unauthenticated("the Basic credentials have no ':' between user and password", mechanism="basic")
    return name, password
