"""TLS for ``xdsi serve``: the server's context (BCP 195) and the subject a client certificate proves.

The worker (``xdsi.worker``) wraps each accepted connection with ``server_context`` and leaves the
verified client certificate's subject in the WSGI environ under ``CLIENT_SUBJECT``, a key no request
header can set (headers arrive as ``HTTP_*``); ``security.mtls`` turns it into an identity.
"""

from __future__ import annotations

import ssl

from cryptography import x509

from xdsi.config import ConfigError, Settings

# Where the worker leaves the verified client certificate's subject (RFC 4514 string) in the WSGI environ.
CLIENT_SUBJECT = "xdsi.tls.client_subject"

# RFC 9325 (BCP 195) 4.2: for TLS 1.2, the recommended cipher suites, all ECDHE with AES-GCM; TLS 1.3
# suites are all AEAD and OpenSSL's defaults for them are kept.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
))
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(settings: Settings) -> ssl.SSLContext:
    """The server's TLS context; a certificate, key or CA file that cannot be used is a ConfigError naming it."""
    assert settings.tls_cert is not None and settings.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # RFC 9325 3.1.1: TLS 1.2 at least (1.0 and 1.1 are deprecated by RFC 8996).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    # RFC 9325 3.3: no TLS compression; 3.5: no renegotiation; the server's order of preference.
    context.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
                        | ssl.OP_SINGLE_ECDH_USE)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password=settings.tls_key_password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"tls_cert, tls_key: {settings.tls_cert} with {settings.tls_key} cannot be used: "
                           f"{getattr(exc, 'reason', None) or exc}"]) from None
    context.verify_mode = _VERIFY[settings.tls_client_cert]
    if settings.tls_client_cert != "none":
        assert settings.tls_ca is not None
        try:
            context.load_verify_locations(cafile=settings.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"tls_ca: {settings.tls_ca} cannot be used: "
                               f"{getattr(exc, 'reason', None) or exc}"]) from None
    return context


def client_subject(sock: ssl.SSLSocket) -> str | None:
    """The subject of the certificate the client presented and the handshake verified, as RFC 4514 text.

    The context asks for a certificate only when ``tls_client_cert`` is optional or required, and
    then refuses an unverifiable one at the handshake, so any certificate found here is verified.
    """
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
