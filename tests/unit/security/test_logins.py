"""Recent logins: a credential counts as a login once, then again only once it was forgotten."""

from __future__ import annotations

import time

from xdsi.security.logins import RecentLogins


def test_a_credential_is_a_login_once_until_it_is_forgotten() -> None:
    logins = RecentLogins(seconds=0.3)
    assert logins.first("basic", "Basic YTpi")
    assert not logins.first("basic", "Basic YTpi")
    assert logins.first("bearer", "Basic YTpi")  # the mechanism is part of what is remembered
    time.sleep(0.35)
    assert logins.first("basic", "Basic YTpi")


def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    logins = RecentLogins(capacity=2)
    for credential in ("a", "b", "c"):
        assert logins.first("mtls", credential)
    assert not logins.first("mtls", "c")
    assert logins.first("mtls", "a")
