"""TLS and mutual TLS in ``xdsi serve``: real curl and real TLS clients against the real server on 127.0.0.1.

Certificates come from two CAs made here (tests.certificates): the server's own, which also signs
the clients it trusts, and another, whose client certificates must be refused at the handshake.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from tests.certificates import TestCA
from tests.dicomfiles import make_dataset, make_instance, to_bytes
from tests.live import LiveServer, clean_env, free_port
from tests.rsyslog import Rsyslog, all_of, find, find_new, of_event, participants
from xdsi.security.basic import add_user
from xdsi.services.archive import Archive

BOUNDARY = "xdsi-tls-boundary"
HEADER_TIMEOUT = 3
ROLES = "CN=ct-1: store,read; CN=viewer, O=Radiology: read"


class Certificates:
    def __init__(self, folder: Path) -> None:
        self.ca = TestCA(folder / "ca")
        self.other = TestCA(folder / "other", "another CA")
        self.server = self.ca.issue("127.0.0.1", folder / "server")
        self.modality = self.ca.issue("ct-1", folder / "ct-1")
        self.viewer = _issue_with_organization(self.ca, "viewer", "Radiology", folder / "viewer")
        self.stranger = self.ca.issue("stranger", folder / "stranger")
        self.forged = self.other.issue("ct-1", folder / "forged")

    def client(self, pair: tuple[Path, Path] | None = None, **options: object) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert_file))
        if pair is not None:
            context.load_cert_chain(*pair)
        for name, value in options.items():
            setattr(context, name, value)
        return context


def _issue_with_organization(ca: TestCA, common_name: str, organization: str, stem: Path) -> tuple[Path, Path]:
    """A client certificate whose subject is O=organization, CN=common_name (two RDNs, as real ones have)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                                     x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("pki"))


def tls_settings(certs: Certificates, client_cert: str) -> dict[str, str]:
    cert, key = certs.server
    return {"tls_cert": str(cert), "tls_key": str(key), "tls_ca": str(certs.ca.cert_file),
            "tls_client_cert": client_cert, "header_timeout": str(HEADER_TIMEOUT)}


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog"), certs.ca)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory, certs: Certificates, rsyslog: Rsyslog) -> Iterator[LiveServer]:
    """Client certificates required; roles from their subjects; audit to a real rsyslog."""
    folder = tmp_path_factory.mktemp("required")
    audit_cert, audit_key = certs.ca.issue("xdsi.example.org", folder / "audit-client")
    live = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", workers=1,
                      client_context=certs.client(certs.modality), auth="mtls", tls_client_roles=ROLES,
                      audit_syslog=f"tls://127.0.0.1:{rsyslog.tls_port}", audit_tls_ca=str(certs.ca.cert_file),
                      audit_tls_cert=str(audit_cert), audit_tls_key=str(audit_key),
                      **tls_settings(certs, "required"))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(path, "radiologist", "read pass", ["read"])
    return path


@pytest.fixture(scope="module")
def optional(tmp_path_factory: pytest.TempPathFactory, certs: Certificates, users_file: Path) -> Iterator[LiveServer]:
    """Client certificates optional, beside HTTP Basic."""
    folder = tmp_path_factory.mktemp("optional")
    live = LiveServer(f"sqlite:///{folder / 'xdsi.db'}", folder / "store", workers=1, client_context=certs.client(),
                      auth="mtls,basic", users_file=str(users_file), tls_client_roles=ROLES,
                      **tls_settings(certs, "optional"))
    yield live
    live.stop()


def curl(server: LiveServer, *args: str, path: str = "/dicom-web/studies") -> tuple[int, str, str]:
    """(curl's exit status, the HTTP status it saw or 000, its error text)."""
    done = subprocess.run(["curl", "--silent", "--show-error", "--output", "/dev/null", "--write-out", "%{http_code}",
                           "--max-time", "20", *args, f"{server.base}{path}"],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout.strip(), done.stderr


def status(port: int, context: ssl.SSLContext, method: str = "GET", path: str = "/dicom-web/studies",
           body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


def stow_body(**attributes: object) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + make_instance(**attributes)
            + f"\r\n--{BOUNDARY}--\r\n".encode())


STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


# --- the handshake -------------------------------------------------------------------------------------------------

def test_curl_with_the_ca_and_a_client_certificate_succeeds(required: LiveServer, certs: Certificates) -> None:
    cert, key = certs.modality
    code, http_status, error = curl(required, "--cacert", str(certs.ca.cert_file), "--cert", str(cert),
                                    "--key", str(key))
    assert (code, http_status) == (0, "200"), error
    # Without the CA, curl cannot verify the server: the server's certificate is what it claims.
    code, http_status, _ = curl(required, "--cert", str(cert), "--key", str(key))
    assert code == 60 and http_status == "000"


def test_a_client_without_a_certificate_is_refused_when_one_is_required(required: LiveServer,
                                                                       certs: Certificates) -> None:
    code, http_status, _ = curl(required, "--cacert", str(certs.ca.cert_file))
    assert code != 0 and http_status == "000"
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        status(required.port, certs.client())


def test_a_certificate_of_another_ca_is_refused_at_the_handshake(required: LiveServer, optional: LiveServer,
                                                                certs: Certificates) -> None:
    cert, key = certs.forged
    for server in (required, optional):
        code, http_status, _ = curl(server, "--cacert", str(certs.ca.cert_file), "--cert", str(cert),
                                    "--key", str(key))
        assert code != 0 and http_status == "000", server.base
        with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
            status(server.port, certs.client(certs.forged))


def test_tls_1_1_and_weak_cipher_suites_are_refused(required: LiveServer, certs: Certificates) -> None:
    old = certs.client(certs.modality)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python deprecates TLS 1.1 too: this client speaks it on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    # The alert comes from the server: this client did offer TLS 1.1, and the server refused it.
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
        status(required.port, old)
    # TLS 1.2 without forward secrecy or AEAD (RFC 9325 4.1): no common cipher suite.
    weak = certs.client(certs.modality, maximum_version=ssl.TLSVersion.TLSv1_2)
    weak.set_ciphers("AES128-SHA:AES256-SHA256")
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        status(required.port, weak)
    # The same client with TLS 1.2 and a BCP 195 suite is served.
    modern = certs.client(certs.modality, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert status(required.port, modern) == 200


def test_a_handshake_that_never_finishes_is_cut(required: LiveServer, certs: Certificates) -> None:
    # The first bytes of a ClientHello, then one byte a second: the handshake shares the head's deadline.
    hello = bytes.fromhex("16030100c8010000c40303") + bytes(32)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", required.port), timeout=HEADER_TIMEOUT + 10) as sock:
        closed_after = None
        for byte in hello:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(1)
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the server kept a trickled handshake open"
    assert HEADER_TIMEOUT - 0.5 <= closed_after <= HEADER_TIMEOUT + 3
    # The worker's event loop was never blocked: others were served meanwhile and still are.
    assert status(required.port, certs.client(certs.modality)) == 200


def tls_socket(server: LiveServer, context: ssl.SSLContext) -> ssl.SSLSocket:
    return context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=30),
                               server_hostname="127.0.0.1")


def read_until(sock: ssl.SSLSocket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        data = sock.recv(65536)
        assert data, f"the connection closed after {received!r}"
        received += data
    return received


def next_answer(stream: io.BufferedReader) -> tuple[int, bytes]:
    """(status, body) of the next answer on ``stream``, read by its Content-Length (one stream for all, so
    that no answer is read into another's buffer)."""
    status_line = stream.readline()
    assert status_line, "the connection closed"
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), stream.read(length)


def test_pipelined_and_kept_alive_requests_over_tls(required: LiveServer, certs: Certificates) -> None:
    with tls_socket(required, certs.client(certs.modality)) as sock, sock.makefile("rb") as stream:
        # Two requests in one TLS record: the second is decrypted with the first and must not be forgotten.
        sock.sendall(b"GET /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert next_answer(stream)[0] == 200
        assert next_answer(stream)[0] == 404
        # The same connection, kept alive, serves a later request.
        time.sleep(0.5)
        sock.sendall(b"GET /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert next_answer(stream) == (200, b"[]")


def test_a_slow_head_over_tls_is_answered_408_over_tls(required: LiveServer, certs: Certificates) -> None:
    with tls_socket(required, certs.client(certs.modality)) as sock:
        sock.sendall(b"GET /dicom-web/studies HTTP/1.1\r\n")
        started = time.monotonic()
        received = read_until(sock, b"\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 408 ")
        assert HEADER_TIMEOUT - 1 <= time.monotonic() - started <= HEADER_TIMEOUT + 3


def test_a_connection_ends_with_close_notify(required: LiveServer, certs: Certificates) -> None:
    # HTTP/1.0 without keep-alive: the server closes after its answer, and says so in TLS before the FIN.
    context = certs.client(certs.modality)
    with socket.create_connection(("127.0.0.1", required.port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as tls:
        tls.sendall(b"GET /dicom-web/studies HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while chunk := tls.recv(65536):  # an EOF without close_notify raises SSLEOFError here
            received += chunk
    assert received.startswith(b"HTTP/1.0 200 ") and received.endswith(b"[]")


# --- identity and roles ----------------------------------------------------------------------------------------------

def test_the_certificate_subject_is_the_caller_and_its_roles_come_from_the_mapping(
        required: LiveServer, certs: Certificates) -> None:
    modality, viewer, stranger = (certs.client(pair) for pair in (certs.modality, certs.viewer, certs.stranger))
    study = generate_uid()
    body = stow_body(study_uid=study, patient_id="TLS-1")
    stored = http.client.HTTPSConnection("127.0.0.1", required.port, timeout=30, context=modality)
    stored.request("POST", "/dicom-web/studies", body=body, headers={"Content-Type": STOW_TYPE})
    answer = stored.getresponse()
    document = json.loads(answer.read())
    stored.close()
    assert answer.status == 200
    # Over TLS the archive names itself by https URLs.
    assert document["00081190"]["Value"][0].startswith(f"https://127.0.0.1:{required.port}/dicom-web/studies/")
    assert status(required.port, viewer, path=f"/dicom-web/studies?StudyInstanceUID={study}") == 200
    assert status(required.port, viewer, "POST", body=body, headers={"Content-Type": STOW_TYPE}) == 403
    # A certificate of the trusted CA whose subject the mapping does not list: known, but holds no role.
    assert status(required.port, stranger) == 403


def test_a_certificate_login_and_a_refused_certificate_are_audited(required: LiveServer, certs: Certificates,
                                                                   rsyslog: Rsyslog) -> None:
    assert status(required.port, certs.client(certs.viewer)) == 200
    login = of_event("110114", event_type="110122", outcome="0")
    message = find(rsyslog, lambda d: login(d) and "CN=viewer,O=Radiology" in participants(d))
    viewer = participants(message)["CN=viewer,O=Radiology"]
    assert viewer.get("UserName") == "CN=viewer,O=Radiology (mtls)"
    assert viewer.get("NetworkAccessPointID") == "127.0.0.1"
    # ITI-20: a node whose certificate is refused at the handshake is a Security Alert, Node Authentication.
    alert = of_event("110113", event_type="110126", outcome="4")
    before = len(all_of(rsyslog, alert))
    with pytest.raises(ssl.SSLError):
        status(required.port, certs.client(certs.forged))
    refused = find_new(rsyslog, alert, before)
    assert participants(refused)["127.0.0.1"].get("UserIsRequestor") == "true"
    assert "certificate" in refused.findtext("EventIdentification/EventOutcomeDescription")
    with pytest.raises(ssl.SSLError):
        status(required.port, certs.client())
    find_new(rsyslog, alert, before + 1)
    # A client that does not speak TLS at all is no node failing to authenticate: logged, not audited.
    with socket.create_connection(("127.0.0.1", required.port), timeout=10) as plain:
        plain.sendall(b"GET /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        plain.recv(100)
    time.sleep(1)
    assert len(all_of(rsyslog, alert)) == before + 2


def test_a_forged_subject_header_is_no_certificate(optional: LiveServer, certs: Certificates) -> None:
    headers = {"X-Client-Subject": "CN=ct-1", "Xdsi.tls.client-subject": "CN=ct-1", "SSL-Client-S-DN": "CN=ct-1"}
    assert status(optional.port, certs.client(), headers=headers) == 401


def test_when_optional_a_client_without_certificate_is_unauthenticated(optional: LiveServer,
                                                                      certs: Certificates) -> None:
    reply = optional.request("GET", "/dicom-web/studies")
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == 'Basic realm="xdsi", charset="UTF-8"'
    assert status(optional.port, certs.client(certs.viewer)) == 200
    password = base64.b64encode(b"radiologist:read pass").decode()
    assert optional.request("GET", "/dicom-web/studies", headers={"Authorization": f"Basic {password}"}).status == 200


# --- streaming -------------------------------------------------------------------------------------------------------

def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


INSTANCES = 8
SIDE = 4096  # 4096 x 4096 x 16 bit = 32 MiB a instance, 256 MiB the study


def test_a_large_retrieve_over_tls_streams_in_flat_memory(tmp_path: Path, certs: Certificates) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'big.db'}", tmp_path / "store", workers=1,
                        client_context=certs.client(), **{**tls_settings(certs, "none"), "header_timeout": "20"})
    try:
        study = generate_uid()
        archive = Archive.open(server.settings)
        try:
            for number in range(INSTANCES):
                ds = make_dataset(study_uid=study, patient_id="BIG", rows=1, columns=1, InstanceNumber=number + 1)
                ds.Rows, ds.Columns = SIDE, SIDE
                ds.PixelData = np.full((SIDE, SIDE), number, dtype=np.uint16).tobytes()
                [outcome] = archive.store.store([io.BytesIO(to_bytes(ds))])
                assert outcome.status.succeeded, outcome.reason
        finally:
            archive.close()
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
        pids = [server.process.pid, *map(int, children)]
        assert status(server.port, certs.client(), path=f"/dicom-web/studies/{study}/metadata") == 200
        before = _rss_kib(pids)
        connection = server.connection(timeout=120)
        connection.request("GET", f"/dicom-web/studies/{study}")
        response = connection.getresponse()
        assert response.status == 200
        received, peak = 0, before
        while chunk := response.read(1 << 20):
            received += len(chunk)
            peak = max(peak, _rss_kib(pids))
        connection.close()
        assert received > INSTANCES * SIDE * SIDE * 2
        # Streamed through TLS in small writes: the worker holds a few MiB at a time, never the study.
        assert peak - before < 48 * 1024, f"the server grew by {(peak - before) // 1024} MiB"
    finally:
        server.stop()


# --- start-up ------------------------------------------------------------------------------------------------------

def test_serve_binds_wide_with_mutual_tls_as_its_authentication(tmp_path: Path, certs: Certificates) -> None:
    port = free_port()
    env = {**clean_env(), "XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'xdsi.db'}", "XDSI_STORAGE": str(tmp_path / "s"),
           "XDSI_AUTH": "mtls", "XDSI_TLS_CLIENT_ROLES": ROLES,
           **{f"XDSI_{k.upper()}": v for k, v in tls_settings(certs, "required").items()}}
    process = subprocess.Popen([sys.executable, "-m", "xdsi", "serve", "--workers", "1", "--bind", f"0.0.0.0:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, answered = time.monotonic() + 60, None
        while answered is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answered = status(port, certs.client(certs.modality))
            except OSError:
                time.sleep(0.2)
        assert answered == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "INSECURE" not in output and "refused" not in output
    assert f"https://0.0.0.0:{port}" in output and "authentication: mtls" in output


def test_a_key_that_does_not_match_the_certificate_stops_the_start(tmp_path: Path, certs: Certificates) -> None:
    cert, _ = certs.server
    _, other_key = certs.modality
    env = {**clean_env(), "XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'xdsi.db'}", "XDSI_STORAGE": str(tmp_path / "s"),
           "XDSI_TLS_CERT": str(cert), "XDSI_TLS_KEY": str(other_key)}
    done = subprocess.run([sys.executable, "-m", "xdsi", "serve", "--bind", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert "tls_cert, tls_key" in done.stderr and "cannot be used" in done.stderr
