"""HTTP Basic against the users file: right and wrong passwords, unknown users, malformed credentials, and a file
that changes while the server runs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from xdsi.errors import Unauthenticated
from xdsi.security.basic import BasicAuthenticator, add_user, read_users, remove_user


def credentials(name: str, password: str) -> str:
    return base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    add_user(path, "alice", "wonder land", ["read", "store"])
    add_user(path, "josé", "pässwörd", ["read"])
    return path


def test_the_users_file_holds_hashes_only_and_is_private(users: Path) -> None:
    text = users.read_text()
    assert "wonder land" not in text and "pässwörd" not in text
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    assert {user.name: sorted(user.roles) for user in read_users(users).values()} == {
        "alice": ["read", "store"], "josé": ["read"]}


def test_a_right_password_gives_the_user_and_its_roles(users: Path) -> None:
    authenticator = BasicAuthenticator(users)
    identity = authenticator.authenticate(credentials("alice", "wonder land"))
    assert (identity.name, identity.roles, identity.mechanism) == ("alice", {"read", "store"}, "basic")
    # RFC 7617 2.1: UTF-8 user names and passwords.
    assert authenticator.authenticate(credentials("josé", "pässwörd")).name == "josé"
    # Remembered: the second check of the same credential gives the same answer.
    assert authenticator.authenticate(credentials("alice", "wonder land")).name == "alice"


@pytest.mark.parametrize(("header", "reason"), [
    (credentials("alice", "wonder lan"), "wrong"),
    (credentials("alice", ""), "wrong"),
    (credentials("mallory", "wonder land"), "wrong"),
    (credentials("ALICE", "wonder land"), "wrong"),
    ("not base64!", "base64"),
    (base64.b64encode(b"no colon here").decode(), "':'"),
    (base64.b64encode(b"\xff\xfe:x").decode(), "base64"),
])
def test_wrong_or_malformed_credentials_are_refused(users: Path, header: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason) as refused:
        BasicAuthenticator(users).authenticate(header)
    assert refused.value.mechanism == "basic"


def test_a_changed_password_and_a_removed_user_take_effect_without_a_restart(users: Path) -> None:
    authenticator = BasicAuthenticator(users)
    authenticator.authenticate(credentials("alice", "wonder land"))
    add_user(users, "alice", "looking glass", ["read"])
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(credentials("alice", "wonder land"))
    assert authenticator.authenticate(credentials("alice", "looking glass")).roles == {"read"}
    assert remove_user(users, "alice")
    assert not remove_user(users, "alice")
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(credentials("alice", "looking glass"))


def test_a_missing_users_file_refuses_everyone(tmp_path: Path) -> None:
    with pytest.raises(Unauthenticated):
        BasicAuthenticator(tmp_path / "absent").authenticate(credentials("alice", "x"))


def test_a_malformed_line_is_skipped_not_fatal(users: Path) -> None:
    with users.open("a") as out:
        out.write("# a comment\nbroken line without fields\ncarol:superuser:$scrypt$x\n")
    assert set(read_users(users)) == {"alice", "josé"}


@pytest.mark.parametrize(("name", "roles", "password"), [
    ("a:b", ["read"], "x"), ("", ["read"], "x"), (" bob", ["read"], "x"), ("bob\n", ["read"], "x"),
    ("bob", ["superuser"], "x"), ("bob", [], "x"), ("bob", ["read"], ""),
])
def test_add_user_refuses_what_could_not_be_used(tmp_path: Path, name: str, roles: list[str], password: str) -> None:
    with pytest.raises(ValueError):
        add_user(tmp_path / "users", name, password, roles)
    assert not (tmp_path / "users").exists()
    assert not [entry for entry in os.listdir(tmp_path) if entry.startswith(".users-")]
