"""Mutual TLS identity: the verified client certificate's subject, with the roles ``tls_client_roles`` give it.

Subjects are compared as X.500 names (attribute types and values in order), so 'CN=ct-1, O=Hospital'
in the settings matches the 'CN=ct-1,O=Hospital' a certificate carries. A subject the mapping does
not list is still authenticated, with no role: every request it makes is refused with 403.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography import x509

from xdsi.security.identity import Identity, Role


def _canonical(subject: str) -> str:
    # Blanks after the separating commas, as OpenSSL and people write them, are not part of any value.
    return x509.Name.from_rfc4514_string(re.sub(r"(?<!\\),\s+", ",", subject.strip())).rfc4514_string()


class CertificateAuthenticator:
    def __init__(self, subject_roles: Mapping[str, frozenset[Role]]) -> None:
        """``subject_roles``: subject (RFC 4514) → roles; raises ValueError for a subject that is not a name."""
        self.roles: dict[str, frozenset[Role]] = {}
        for subject, roles in subject_roles.items():
            try:
                self.roles[_canonical(subject)] = roles
            except ValueError:
                raise ValueError(f"{subject!r} is not an RFC 4514 distinguished name") from None

    def authenticate(self, subject: str) -> Identity:
        """The caller a verified certificate of ``subject`` proves (the worker wrote it canonically)."""
        return Identity(subject, self.roles.get(subject, frozenset()), "mtls")
