"""Password hashes: salted (two hashes of one password differ), verified in constant time, unreadable ones refused."""

from __future__ import annotations

import pytest

from xdsi.security.passwords import hash_password, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("correct horse ñ")
    assert encoded.startswith("$scrypt$ln=15,r=8,p=1$")
    assert verify_password("correct horse ñ", encoded)
    assert not verify_password("correct horse n", encoded)
    assert not verify_password("", encoded)


def test_the_salt_makes_each_hash_different() -> None:
    assert hash_password("same") != hash_password("same")


@pytest.mark.parametrize("encoded", [
    "", "plaintext", "$scrypt$ln=15,r=8,p=1$salt", "$md5$ln=15,r=8,p=1$c2FsdA$aGFzaA",
    "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA",  # a cost beyond what the server agrees to spend
    "$scrypt$ln=15,r=8,p=1$!!!$aGFzaA", "$scrypt$ln=x,r=8,p=1$c2FsdA$aGFzaA",
])
def test_an_unreadable_hash_verifies_nothing(encoded: str) -> None:
    assert not verify_password("anything", encoded)
