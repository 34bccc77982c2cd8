"""Settings: explicit arguments > XDSI_* environment > TOML file named by XDSI_CONFIG > defaults.

Every value is validated when the settings are built, and every bad key is named in one
`ConfigError`, so a misconfigured server refuses to start instead of failing on first use.
Secrets (fields marked ``secret``) are read only from the environment or explicit arguments;
a TOML file that carries one is an error, because configuration files get committed and copied.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

ENV_PREFIX = "XDSI_"
CONFIG_FILE_ENV = "XDSI_CONFIG"
MIB = 1024 * 1024
_CPUS = os.cpu_count() or 1
# A parser per CPU from two CPUs on; one request thread spools the parts all parsers work on,
# so more than four would mostly wait for it.
_DEFAULT_PARSE_PROCESSES = min(_CPUS, 4) if _CPUS > 1 else 0

# Demonstration identifiers (UUID-derived OIDs, PS3.5 B.2) for `make serve`; a deployment sets its own.
DEMO_REPOSITORY_UNIQUE_ID = "2.25.116342381640680599948095328075554748528"
DEMO_HOME_COMMUNITY_ID = "urn:oid:2.25.173425372374824515400530686751052035380"
_OID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+", re.ASCII)

DuplicatePolicy = Literal["reject", "overwrite", "ignore"]
SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ClientCertificates = Literal["none", "optional", "required"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
AUTH_MECHANISMS = ("basic", "bearer", "mtls", "saml", "proxy")
ROLES = ("read", "store", "delete", "admin")
# RFC 8725 3.1: only public-key algorithms, so that no token can be signed with what the server
# publishes (HS256 keyed with the public key) and 'none' is never among them.
ASYMMETRIC_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                             "EdDSA")


class ConfigError(ValueError):
    """Raised when settings cannot be built; ``problems`` names every bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def _doc(text: str, *, secret: bool = False) -> dict[str, Any]:
    return {"doc": text, "secret": secret}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The effective configuration of one xdsi process."""

    database_url: str = field(
        default="sqlite:///./var/xdsi.db",
        metadata=_doc("SQLAlchemy URL of the index (SQLite or PostgreSQL)"),
    )
    database_password: str | None = field(
        default=None,
        metadata=_doc("password merged into database_url (environment only)", secret=True),
    )
    storage: Path = field(
        default=Path("./var/store"),
        metadata=_doc("folder of the blob store (instances as received)"),
    )
    bind: str = field(default="127.0.0.1:8080", metadata=_doc("HOST:PORT the server listens on"))
    workers: int = field(default=2, metadata=_doc("gunicorn worker processes"))
    threads: int = field(default=8, metadata=_doc("application threads per worker process"))
    header_timeout: int = field(
        default=20, metadata=_doc("seconds a client has to send a request head (408 and the connection closed beyond)")
    )
    body_timeout: int = field(
        default=20,
        metadata=_doc("seconds a client has to send a request body, plus one per body_min_rate bytes received "
                      "(408 beyond)"),
    )
    body_min_rate: int = field(
        default=500, metadata=_doc("bytes per second a request body must average to earn more time")
    )
    send_timeout: int = field(
        default=60, metadata=_doc("seconds a client may take nothing of an answer before its connection closes")
    )
    max_client_connections: int = field(
        default=32,
        metadata=_doc("connections one client address may hold in each worker process (429 beyond); "
                      "trusted_proxies are not limited"),
    )
    sweep_interval: int = field(
        default=60,
        metadata=_doc("seconds between two sweeps of what killed writers left in the store, in each "
                      "server worker (0: only when the server starts)"),
    )
    parse_processes: int = field(
        default=_DEFAULT_PARSE_PROCESSES,
        metadata=_doc("processes per worker that parse the instances of a multi-instance store "
                      "in parallel (0: parse in the request's own thread; default: CPUs, at most 4)"),
    )
    base_url: str | None = field(
        default=None,
        metadata=_doc("public URL of the server, used in RetrieveURL and BulkDataURI"),
    )
    trusted_proxies: str = field(
        default="",
        metadata=_doc("addresses or networks (CIDR) of reverse proxies whose Forwarded and X-Forwarded-* "
                      "headers name the public URL, comma-separated (default: none)"),
    )
    allowed_hosts: str = field(
        default="",
        metadata=_doc("host names clients may address this server by (Host header), comma-separated; "
                      "'.example.org' also admits its subdomains, '*' any name; IP addresses are always "
                      "admitted (default: localhost, this machine's names, the hosts of bind and base_url)"),
    )
    cors_origins: str = field(
        default="",
        metadata=_doc("browser origins allowed by CORS, comma-separated, or '*' (default: none)"),
    )
    coerce_issuer_of_patient_id: str | None = field(
        default=None,
        metadata=_doc("Issuer of Patient ID given to instances that have a Patient ID but no issuer "
                      "(reported with Warning Reason B000; default: no coercion)"),
    )
    delete_enabled: bool = field(
        default=False,
        metadata=_doc("answer DELETE on studies, series and instances (default: off, 405 Method Not Allowed)"),
    )
    duplicate_policy: DuplicatePolicy = field(
        default="reject",
        metadata=_doc(
            "same SOP Instance UID again: reject (identical copy is success, different content fails), "
            "overwrite, or ignore (keep the first)"
        ),
    )
    max_instance_bytes: int = field(
        default=2048 * MIB, metadata=_doc("largest instance accepted, in bytes")
    )
    max_request_bytes: int = field(
        default=4096 * MIB, metadata=_doc("largest STOW-RS request body, in bytes (413 beyond)")
    )
    max_request_parts: int = field(default=1000, metadata=_doc("most parts in one STOW-RS request"))
    min_free_bytes: int = field(
        default=1024 * MIB, metadata=_doc("free space in the store below which /healthz reports it degraded")
    )
    max_metadata_bytes: int = field(
        default=64 * MIB, metadata=_doc("largest DICOM JSON/XML metadata part of a STOW-RS request")
    )
    stow_metadata_budget_bytes: int = field(
        default=0,
        metadata=_doc("bytes of STOW-RS metadata parts the requests of one worker process may hold at once "
                      "(each worker has its own; 503 with Retry-After beyond); 0: 1/64 of the machine's memory, "
                      "at least max_metadata_bytes"),
    )
    max_transcode_bytes: int = field(
        default=1024 * MIB, metadata=_doc("largest instance (and decoded pixel data) transcoded on retrieval")
    )
    render_cache_bytes: int = field(
        default=64 * MIB,
        metadata=_doc("bytes of rendered images and thumbnails each worker process keeps in memory (0: none)"),
    )
    render_header_cache_bytes: int = field(
        default=64 * MIB,
        metadata=_doc("bytes of parsed DICOM headers each worker process keeps for rendering (0: none)"),
    )
    render_max_output_pixels: int = field(
        default=40_000_000,
        metadata=_doc("most pixels a rendered answer may hold, all frames of an animated GIF together (413 beyond)"),
    )
    thumbnail_size: int = field(
        default=128, metadata=_doc("the box, in pixels, a thumbnail fits in when the request gives no viewport")
    )
    max_inflated_bytes: int = field(
        default=512 * MIB, metadata=_doc("largest inflated size of a Deflated transfer syntax dataset")
    )
    max_deflate_ratio: int = field(
        default=200, metadata=_doc("largest inflated/deflated ratio accepted beyond 1 MiB inflated")
    )
    bulk_data_threshold: int = field(
        default=1024,
        metadata=_doc("values longer than this many bytes become BulkDataURI in metadata"),
    )
    qido_max_results: int = field(
        default=1000, metadata=_doc("most results one search returns (more: Warning 299 and paging)")
    )
    qido_max_offset: int = field(default=100_000, metadata=_doc("largest QIDO offset accepted"))
    sqlite_synchronous: SqliteSynchronous = field(
        default="FULL", metadata=_doc("SQLite PRAGMA synchronous (FULL survives power loss)")
    )
    sqlite_busy_timeout_ms: int = field(
        default=5000, metadata=_doc("how long a SQLite writer waits for the lock before 503")
    )
    log_level: LogLevel = field(default="INFO", metadata=_doc("logging level"))
    # RAD TF-3 4.69.4.1.2: a DocumentRequest names the Imaging Document Source by its
    # repositoryUniqueId (the KOS's Retrieve Location UID) and, across communities, its homeCommunityId.
    repository_unique_id: str = field(
        default=DEMO_REPOSITORY_UNIQUE_ID,
        metadata=_doc("OID this Imaging Document Source answers RAD-69 and WADO-WS requests for "
                      "(XDSUnknownRepositoryId for others; the default is a demonstration value)"),
    )
    home_community_id: str = field(
        default=DEMO_HOME_COMMUNITY_ID,
        metadata=_doc("urn:oid: home community of this source (XDSUnknownCommunity for others; "
                      "the default is a demonstration value)"),
    )
    # OASIS WSS 1.1 X.509 Token Profile: who may sign requests, whether they must, and the key
    # that signs answers. Files, not values: a certificate store and a key are read at start-up.
    wssec_trust_store: Path | None = field(
        default=None,
        metadata=_doc("PEM file of the certificates (CAs or signers themselves) trusted to sign WADO-WS "
                      "requests; set, signed requests are verified (default: WS-Security headers not processed)"),
    )
    wssec_require: bool = field(
        default=False,
        metadata=_doc("refuse WADO-WS requests without a valid signature (needs wssec_trust_store)"),
    )
    wssec_sign_key: Path | None = field(
        default=None, metadata=_doc("PEM private key file that signs WADO-WS answers (with wssec_sign_cert)")
    )
    wssec_sign_cert: Path | None = field(
        default=None, metadata=_doc("PEM certificate file of wssec_sign_key, sent in each signed answer")
    )
    wssec_sign_key_password: str | None = field(
        default=None, metadata=_doc("password of an encrypted wssec_sign_key (environment only)", secret=True)
    )
    max_soap_request_bytes: int = field(
        default=4 * MIB, metadata=_doc("largest WADO-WS request message, in bytes (a SOAP Sender fault beyond)")
    )
    tls_cert: Path | None = field(
        default=None,
        metadata=_doc("PEM certificate (with its intermediates) xdsi serve presents; set with tls_key, the "
                      "server speaks HTTPS only (TLS 1.2 and 1.3, the RFC 9325 cipher suites)"),
    )
    tls_key: Path | None = field(default=None, metadata=_doc("PEM private key of tls_cert"))
    tls_key_password: str | None = field(
        default=None, metadata=_doc("password of an encrypted tls_key (environment only)", secret=True)
    )
    tls_ca: Path | None = field(
        default=None, metadata=_doc("PEM file of the CA certificates client certificates must chain to")
    )
    tls_client_cert: ClientCertificates = field(
        default="none",
        metadata=_doc("client certificates (mutual TLS): none (not asked for), optional (asked for, verified "
                      "against tls_ca when sent) or required (the handshake fails without a valid one)"),
    )
    tls_client_roles: str = field(
        default="",
        metadata=_doc("roles of client certificate subjects for auth = mtls: 'SUBJECT: ROLE,ROLE' entries "
                      "separated by ';', SUBJECT as in RFC 4514 (e.g. 'CN=ct-1,O=Hospital: store; "
                      "CN=portal,O=Hospital: read'); a subject not listed holds no role"),
    )
    auth: str = field(
        default="",
        metadata=_doc("authentication mechanisms, comma-separated: basic, bearer, mtls, saml (empty: none, which "
                      "xdsi serve allows only on a loopback address unless insecure is set)"),
    )
    insecure: bool = field(
        default=False,
        metadata=_doc("serve beyond loopback without authentication (the start-up log warns of it)"),
    )
    auth_realm: str = field(default="xdsi", metadata=_doc("realm named in WWW-Authenticate challenges"))
    users_file: Path | None = field(
        default=None,
        metadata=_doc("users of HTTP Basic authentication with their roles and scrypt hashes (xdsi user add)"),
    )
    jwks: str | None = field(
        default=None,
        metadata=_doc("JSON Web Key Set of the bearer token issuer: a file or an https URL"),
    )
    jwt_issuer: str | None = field(default=None, metadata=_doc("required iss claim of bearer tokens"))
    jwt_audience: str | None = field(default=None, metadata=_doc("required aud claim of bearer tokens"))
    jwt_algorithms: str = field(
        default=",".join(ASYMMETRIC_JWT_ALGORITHMS),
        metadata=_doc("signature algorithms accepted on bearer tokens, comma-separated (public-key ones only)"),
    )
    jwt_leeway: int = field(
        default=30, metadata=_doc("seconds of clock skew allowed on a token's exp and nbf")
    )
    audit_syslog: str | None = field(
        default=None,
        metadata=_doc("Audit Record Repository receiving ATNA audit messages: udp://HOST:PORT or tls://HOST:PORT "
                      "(default: no audit)"),
    )
    audit_tls_ca: Path | None = field(
        default=None, metadata=_doc("CA certificates that sign the audit repository's TLS certificate")
    )
    audit_tls_cert: Path | None = field(
        default=None, metadata=_doc("certificate xdsi presents to the audit repository over TLS (mutual TLS)")
    )
    audit_tls_key: Path | None = field(default=None, metadata=_doc("private key of audit_tls_cert"))
    audit_source_id: str | None = field(
        default=None, metadata=_doc("AuditSourceID of xdsi's audit messages (default: the host name)")
    )
    audit_site_id: str | None = field(default=None, metadata=_doc("AuditEnterpriseSiteID of the audit messages"))
    audit_queue_size: int = field(
        default=10_000, metadata=_doc("audit messages waiting for the repository, per worker, beyond which "
                                      "new ones are dropped and counted")
    )
    jwt_scope_roles: str = field(
        default="xdsi.read=read,xdsi.store=store,xdsi.delete=delete,xdsi.admin=admin",
        metadata=_doc("token scopes that grant each role, comma-separated SCOPE=ROLE pairs"),
    )
    proxy_user_header: str = field(
        default="X-Remote-User",
        metadata=_doc("request header in which a trusted proxy (trusted_proxies) names the user it authenticated "
                      "(Kerberos, NTLM, Digest…) when auth includes proxy; from any other address it is ignored"),
    )
    proxy_roles: str = field(
        default="read",
        metadata=_doc("roles of a user named by the proxy, comma-separated, unless users_file lists the user "
                      "(then its roles and patient domains)"),
    )
    saml_trust_store: Path | None = field(
        default=None,
        metadata=_doc("PEM file of the certificates (identity providers, or their CAs) whose signed SAML 2.0 "
                      "assertions name WADO-WS callers when auth includes saml (IHE XUA)"),
    )
    saml_audience: str | None = field(
        default=None,
        metadata=_doc("the Audience a SAML assertion must be restricted to (default: not checked)"),
    )
    saml_roles: str = field(
        default="read", metadata=_doc("roles of a caller named by a SAML assertion, comma-separated"),
    )
    jwt_issuers_claim: str | None = field(
        default=None,
        metadata=_doc("token claim listing the Issuers of Patient ID the caller may see ('*': all; '' for "
                      "patients without one); when set, a token without the claim sees no patient "
                      "(default: tokens are not limited by patient domain)"),
    )

    def __post_init__(self) -> None:
        problems = _check_values(dataclasses.asdict(self))
        if problems:
            raise ConfigError(problems)

    @property
    def effective_database_url(self) -> str:
        """The database URL with the environment-only password merged in."""
        if not self.database_password:
            return self.database_url
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).set(password=self.database_password).render_as_string(
            hide_password=False
        )

    @property
    def effective_stow_metadata_budget(self) -> int:
        """``stow_metadata_budget_bytes``, or its default: 1/64 of physical memory, at least one largest part."""
        if self.stow_metadata_budget_bytes:
            return self.stow_metadata_budget_bytes
        try:
            memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            memory = 0  # not a POSIX system that tells: one largest part at a time
        return max(self.max_metadata_bytes, memory // 64)

    @property
    def display_database_url(self) -> str:
        """The database URL with any password masked, for logs and banners."""
        return _mask_url(self.database_url)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip())

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return _comma_list(self.auth.lower())

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def proxy_role_list(self) -> tuple[str, ...]:
        return _comma_list(self.proxy_roles)

    @property
    def saml_role_list(self) -> tuple[str, ...]:
        return _comma_list(self.saml_roles)

    @property
    def jwt_algorithm_list(self) -> tuple[str, ...]:
        return _comma_list(self.jwt_algorithms)

    @property
    def scope_roles(self) -> dict[str, str]:
        """Token scope → role it grants."""
        return _pairs(self.jwt_scope_roles)

    @property
    def binds_beyond_loopback(self) -> bool:
        """True unless ``bind`` names a loopback address (127.0.0.0/8, ::1, localhost)."""
        host = self.host_port[0]
        if host.lower() == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return _networks(self.trusted_proxies)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host.strip("[]"), int(port)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        **explicit: Any,
    ) -> Settings:
        """Build settings from explicit arguments, the environment and the TOML file."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
        hints = get_type_hints(cls)

        config_file = explicit.pop("config_file", None) or env.get(CONFIG_FILE_ENV)
        if config_file:
            for key, raw in _read_toml(Path(config_file), problems).items():
                f = fields_by_name.get(key)
                if f is None:
                    problems.append(f"{config_file}: unknown key {key!r}")
                elif f.metadata.get("secret"):
                    problems.append(
                        f"{config_file}: {key!r} is a secret; set {ENV_PREFIX}{key.upper()} in the environment"
                    )
                else:
                    values[key] = _coerce(raw, hints[key], f"{config_file}: {key}", problems)
                    sources[key] = str(config_file)
        for name in fields_by_name:
            env_key = ENV_PREFIX + name.upper()
            if env_key in env:
                values[name] = _coerce(env[env_key], hints[name], env_key, problems)
                sources[name] = "environment"
        for name, raw in explicit.items():
            if name not in fields_by_name:
                problems.append(f"argument: unknown setting {name!r}")
                continue
            values[name] = _coerce(raw, hints[name], f"argument {name}", problems)
            sources[name] = "argument"
        url_source = sources.get("database_url")
        if url_source not in (None, "environment", "argument") and _has_password(values.get("database_url")):
            problems.append(
                f"{url_source}: database_url carries a password; "
                f"set {ENV_PREFIX}DATABASE_PASSWORD in the environment instead"
            )
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        problems += _check_values(defaults | {k: v for k, v in values.items() if v is not None})
        if problems:
            raise ConfigError(problems)
        settings = cls(**values)
        object.__setattr__(settings, "_sources", sources)
        return settings

    def describe(self) -> list[tuple[str, str, str, str]]:
        """(key, value, source, doc) rows for ``xdsi check-config``, secrets masked."""
        sources: dict[str, str] = getattr(self, "_sources", {})
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                shown = "********"
            elif f.name == "database_url":
                shown = self.display_database_url
            else:
                shown = "" if value is None else str(value)
            rows.append((f.name, shown, sources.get(f.name, "default"), f.metadata["doc"]))
        return rows


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{CONFIG_FILE_ENV}: file {str(path)!r} does not exist")
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{path}: cannot be read as TOML: {exc}")
        return {}
    # A [xdsi] table is accepted so the settings can live in a shared file.
    section = data.get("xdsi", data)
    if not isinstance(section, dict):
        problems.append(f"{path}: [xdsi] must be a table")
        return {}
    return section


def _coerce(raw: Any, hint: Any, where: str, problems: list[str]) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Literal:
        text = str(raw)
        for choice in args:
            if text.lower() == str(choice).lower():
                return choice
        problems.append(f"{where}: {raw!r} is not one of {', '.join(map(str, args))}")
        return None
    if type(None) in args:  # Optional[X]
        if raw is None or raw == "":
            return None
        return _coerce(raw, next(a for a in args if a is not type(None)), where, problems)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        problems.append(f"{where}: {raw!r} is not a boolean (true or false)")
        return None
    if hint is int:
        if isinstance(raw, bool):
            problems.append(f"{where}: {raw!r} is not an integer")
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            problems.append(f"{where}: {raw!r} is not an integer")
            return None
    if hint is Path:
        return Path(str(raw))
    if hint is str:
        if not isinstance(raw, str):
            problems.append(f"{where}: {raw!r} is not a string")
            return None
        return raw
    raise TypeError(f"unsupported setting type {hint!r}")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _check_values(values: dict[str, Any]) -> list[str]:
    problems = []
    url = values["database_url"]
    if not url.startswith(("sqlite", "postgresql")):
        problems.append(f"database_url: {url!r} is neither sqlite:// nor postgresql://")
    host, _, port = values["bind"].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"bind: {values['bind']!r} is not HOST:PORT")
    for name in ("workers", "threads", "header_timeout", "body_timeout", "body_min_rate", "send_timeout",
                 "max_client_connections", "max_instance_bytes", "max_inflated_bytes", "max_deflate_ratio",
                 "qido_max_results", "max_request_bytes", "max_request_parts", "max_metadata_bytes",
                 "max_transcode_bytes", "max_soap_request_bytes", "render_max_output_pixels", "thumbnail_size"):
        if values[name] < 1:
            problems.append(f"{name}: must be at least 1, not {values[name]}")
    for name in ("bulk_data_threshold", "sqlite_busy_timeout_ms", "qido_max_offset", "parse_processes",
                 "sweep_interval", "min_free_bytes", "render_cache_bytes",
                 "render_header_cache_bytes", "stow_metadata_budget_bytes"):
        if values[name] < 0:
            problems.append(f"{name}: must not be negative, not {values[name]}")
    if 0 < values["stow_metadata_budget_bytes"] < values["max_metadata_bytes"]:
        # A part the budget can never hold would be refused as "busy" forever.
        problems.append(f"stow_metadata_budget_bytes: must be 0 or at least max_metadata_bytes "
                        f"({values['max_metadata_bytes']}), not {values['stow_metadata_budget_bytes']}")
    base_url = values["base_url"]
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"base_url: {base_url!r} is not an absolute http(s) URL")
    repository = values["repository_unique_id"]
    if not _OID.fullmatch(repository) or len(repository) > 64:
        problems.append(f"repository_unique_id: {repository!r} is not an OID of at most 64 characters")
    community = values["home_community_id"]
    if not community.startswith("urn:oid:") or not _OID.fullmatch(community[8:]):
        problems.append(f"home_community_id: {community!r} is not urn:oid: followed by an OID")
    problems += _check_wssec(values)
    try:
        _networks(values["trusted_proxies"])
    except ValueError as exc:
        problems.append(f"trusted_proxies: {exc}")
    return problems + _check_auth(values) + _check_tls(values)


def _check_auth(values: dict[str, Any]) -> list[str]:
    """The authentication settings: known mechanisms, each with what it needs."""
    problems = []
    mechanisms = _comma_list(values["auth"].lower())
    unknown = [name for name in mechanisms if name not in AUTH_MECHANISMS]
    if unknown:
        problems.append(f"auth: {', '.join(unknown)} not supported (choose among {', '.join(AUTH_MECHANISMS)})")
    if "basic" in mechanisms and not values["users_file"]:
        problems.append("users_file: required when auth includes basic")
    if "mtls" in mechanisms and values["tls_client_cert"] == "none":
        problems.append("tls_client_cert: optional or required when auth includes mtls")
    if "proxy" in mechanisms and not values["trusted_proxies"].strip():
        problems.append("trusted_proxies: required when auth includes proxy (whose user header is believed)")
    if not re.fullmatch(r"[A-Za-z0-9-]+", values["proxy_user_header"]):
        problems.append(f"proxy_user_header: {values['proxy_user_header']!r} is not an HTTP header name")
    problems += _role_problems("proxy_roles", _comma_list(values["proxy_roles"]))
    if "saml" in mechanisms and not values["saml_trust_store"]:
        problems.append("saml_trust_store: required when auth includes saml")
    problems += _role_problems("saml_roles", _comma_list(values["saml_roles"]))
    if "bearer" in mechanisms:
        problems += [f"{name}: required when auth includes bearer"
                     for name in ("jwks", "jwt_issuer", "jwt_audience") if not values[name]]
    jwks = values["jwks"]
    if jwks and "://" in jwks and not jwks.startswith("https://"):
        problems.append(f"jwks: {jwks!r} is neither a file nor an https URL")
    refused = [name for name in _comma_list(values["jwt_algorithms"]) if name not in ASYMMETRIC_JWT_ALGORITHMS]
    if refused or not _comma_list(values["jwt_algorithms"]):
        problems.append(f"jwt_algorithms: {', '.join(refused) or 'empty'}: choose among "
                        f"{', '.join(ASYMMETRIC_JWT_ALGORITHMS)}")
    audit = values["audit_syslog"]
    if audit:
        parts = urlsplit(audit)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("udp", "tls") or not parts.hostname or not port:
            problems.append(f"audit_syslog: {audit!r} is not udp://HOST:PORT or tls://HOST:PORT")
    if values["audit_queue_size"] < 1:
        problems.append(f"audit_queue_size: must be at least 1, not {values['audit_queue_size']}")
    if values["jwt_leeway"] < 0:
        problems.append(f"jwt_leeway: must not be negative, not {values['jwt_leeway']}")
    try:
        problems += _role_problems("jwt_scope_roles", _pairs(values["jwt_scope_roles"]).values())
    except ValueError as exc:
        problems.append(f"jwt_scope_roles: {exc}")
    return problems


def _role_problems(name: str, roles: Iterable[str]) -> list[str]:
    """The problem of setting ``name`` naming roles that do not exist (none when all do)."""
    unknown = [role for role in roles if role not in ROLES]
    return [f"{name}: {', '.join(unknown)} not a role ({', '.join(ROLES)})"] if unknown else []


def _check_tls(values: dict[str, Any]) -> list[str]:
    """The TLS settings: a certificate with its key, files that exist, a CA when clients must prove themselves."""
    problems = []
    for name in ("tls_cert", "tls_key", "tls_ca"):
        path = values[name]
        if path is not None and not Path(path).is_file():
            problems.append(f"{name}: {str(path)!r} is not a readable file")
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        problems.append("tls_cert and tls_key: set both to serve HTTPS, or neither")
    if values["tls_client_cert"] != "none":
        if values["tls_cert"] is None:
            problems.append("tls_client_cert: client certificates need TLS (tls_cert and tls_key)")
        if values["tls_ca"] is None:
            problems.append("tls_client_cert: needs tls_ca (the CAs client certificates must chain to)")
    try:
        subject_roles(values["tls_client_roles"])
    except ValueError as exc:
        problems.append(f"tls_client_roles: {exc}")
    return problems


def subject_roles(text: str) -> dict[str, frozenset[str]]:
    """'SUBJECT: ROLE,ROLE; …' as {subject: roles}; raises ValueError naming the first bad entry.

    Subjects contain commas and '=' (RFC 4514), so entries are separated by ';' (escaped as '\\;' inside
    a subject) and the roles follow the last ':'. Subjects are kept as written; ``security.mtls``
    compares them as X.500 names.
    """
    found: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in re.split(r"(?<!\\);", text))):
        subject, sep, roles = entry.rpartition(":")
        chosen = frozenset(_comma_list(roles))
        if not sep or not subject.strip() or not chosen:
            raise ValueError(f"{entry!r} is not 'SUBJECT: ROLE[,ROLE]'")
        unknown = sorted(chosen - set(ROLES))
        if unknown:
            raise ValueError(f"{entry!r}: {', '.join(unknown)} not a role ({', '.join(ROLES)})")
        found[subject.strip()] = chosen
    return found


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _pairs(text: str) -> dict[str, str]:
    """'a=b, c=d' as {'a': 'b', 'c': 'd'}."""
    pairs = {}
    for entry in _comma_list(text):
        key, sep, value = entry.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{entry!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def _check_wssec(values: dict[str, Any]) -> list[str]:
    problems = []
    for name in ("wssec_trust_store", "wssec_sign_key", "wssec_sign_cert"):
        path = values[name]
        if path is not None and not Path(path).is_file():
            problems.append(f"{name}: {str(path)!r} is not a readable file")
    if values["wssec_require"] and values["wssec_trust_store"] is None:
        problems.append("wssec_require: needs wssec_trust_store (the certificates allowed to sign)")
    if (values["wssec_sign_key"] is None) != (values["wssec_sign_cert"] is None):
        problems.append("wssec_sign_key and wssec_sign_cert: set both to sign answers, or neither")
    return problems


def _networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.1, 192.168.0.0/16' as networks; one with host bits set (10.0.0.1/8) is a typo, refused."""
    found: list[Network] = []
    bad: list[str] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        try:
            found.append(ipaddress.ip_network(entry))
        except ValueError:
            bad.append(repr(entry))
    if bad:
        raise ValueError(f"{', '.join(bad)}: not an IP address or a CIDR network without host bits")
    return tuple(found)


def _has_password(url: Any) -> bool:
    return isinstance(url, str) and bool(urlsplit(url).password)


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":********@", 1)
