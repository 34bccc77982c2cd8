"""Mutual TLS identity: subjects compared as X.500 names, roles from the mapping, none for a subject not listed;
and how the certificate and an Authorization header share a request."""

from __future__ import annotations

import pytest

from xdsi.errors import Unauthenticated
from xdsi.security.authentication import Authenticator
from xdsi.security.mtls import CertificateAuthenticator


def test_a_mapped_subject_holds_its_roles_however_it_was_written() -> None:
    authenticator = CertificateAuthenticator({"CN=ct-1, O=Hospital": frozenset({"store"}),
                                              "CN=portal,  OU=Web, O=Hospital": frozenset({"read"})})
    modality = authenticator.authenticate("CN=ct-1,O=Hospital")
    assert (modality.name, modality.roles, modality.mechanism) == ("CN=ct-1,O=Hospital", {"store"}, "mtls")
    assert authenticator.authenticate("CN=portal,OU=Web,O=Hospital").roles == {"read"}


def test_a_subject_not_listed_is_known_but_holds_no_role() -> None:
    authenticator = CertificateAuthenticator({"CN=ct-1,O=Hospital": frozenset({"store"})})
    # Same common name, other organization: another subject.
    assert authenticator.authenticate("CN=ct-1,O=Elsewhere").roles == frozenset()
    assert authenticator.authenticate("O=Hospital,CN=ct-1").roles == frozenset()


def test_a_subject_that_is_no_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not an RFC 4514"):
        CertificateAuthenticator({"just some text": frozenset({"read"})})


def test_the_certificate_stands_in_when_no_header_of_a_configured_scheme_does() -> None:
    authenticator = Authenticator(mtls=CertificateAuthenticator({"CN=ct-1": frozenset({"store"})}))
    assert authenticator.authenticate(None, "CN=ct-1").roles == {"store"}
    # A scheme this server does not take is no reason to ignore a verified certificate.
    assert authenticator.authenticate("Negotiate YIIB", "CN=ct-1").name == "CN=ct-1"
    with pytest.raises(Unauthenticated, match="TLS client certificate") as refused:
        authenticator.authenticate(None, None)
    assert refused.value.mechanism is None  # nothing presented: the first step of a login, not an incident
    with pytest.raises(Unauthenticated, match="accepts mtls credentials"):
        authenticator.authenticate("Basic dXNlcjpwYXNz", None)
