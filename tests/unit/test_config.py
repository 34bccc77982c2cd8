"""Settings: precedence, validation naming every bad key, secrets from the environment only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xdsi.config import ConfigError, Settings, subject_roles


def test_defaults() -> None:
    settings = Settings.load(environ={})
    assert settings.database_url == "sqlite:///./var/xdsi.db"
    assert settings.storage == Path("var/store")
    assert settings.bind == "127.0.0.1:8080"
    assert settings.duplicate_policy == "reject"


def test_precedence_argument_over_environment_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "xdsi.toml"
    config.write_text('workers = 3\nthreads = 5\nbind = "127.0.0.1:9000"\n')
    environ = {"XDSI_CONFIG": str(config), "XDSI_THREADS": "6", "XDSI_BIND": "127.0.0.1:9001"}
    settings = Settings.load(environ=environ, bind="127.0.0.1:9002")
    assert (settings.workers, settings.threads, settings.bind) == (3, 6, "127.0.0.1:9002")
    sources = {key: source for key, _value, source, _doc in settings.describe()}
    assert sources["workers"] == str(config)
    assert sources["threads"] == "environment"
    assert sources["bind"] == "argument"
    assert sources["log_level"] == "default"


def test_xdsi_table_in_a_shared_file(tmp_path: Path) -> None:
    config = tmp_path / "all.toml"
    config.write_text('[xdsi]\nduplicate_policy = "overwrite"\n')
    assert Settings.load(environ={"XDSI_CONFIG": str(config)}).duplicate_policy == "overwrite"


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('databse_url = "x"\nworkers = "many"\nduplicate_policy = "sometimes"\n')
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"XDSI_CONFIG": str(config), "XDSI_THREADS": "-1", "XDSI_BIND": "nowhere",
                               "XDSI_PARSE_PROCESSES": "-2"})
    problems = "\n".join(caught.value.problems)
    for expected in ("unknown key 'databse_url'", "'many' is not an integer", "'sometimes' is not one of",
                     "bind: 'nowhere' is not HOST:PORT", "threads: must be at least 1",
                     "parse_processes: must not be negative"):
        assert expected in problems


def test_missing_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(environ={"XDSI_CONFIG": "/nonexistent/xdsi.toml"})


def test_secrets_come_only_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "secret.toml"
    config.write_text('database_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="is a secret"):
        Settings.load(environ={"XDSI_CONFIG": str(config)})
    config.write_text('database_url = "postgresql://xdsi:hunter2@db/xdsi"\n')
    with pytest.raises(ConfigError, match="carries a password"):
        Settings.load(environ={"XDSI_CONFIG": str(config)})


def test_password_is_merged_and_masked() -> None:
    settings = Settings.load(
        environ={"XDSI_DATABASE_URL": "postgresql://xdsi@db/xdsi", "XDSI_DATABASE_PASSWORD": "hunter2"}
    )
    assert "hunter2" in settings.effective_database_url
    shown = "\n".join(f"{key}={value}" for key, value, _source, _doc in settings.describe())
    assert "hunter2" not in shown
    assert "database_password=********" in shown


def test_settings_are_frozen() -> None:
    settings = Settings.load(environ={})
    with pytest.raises(AttributeError):
        settings.workers = 9  # type: ignore[misc]


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings.load(environ={"XDSI_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,,::1"})
    assert [str(network) for network in settings.trusted_proxy_networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert Settings.load(environ={}).trusted_proxy_networks == ()
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"XDSI_TRUSTED_PROXIES": "10.0.0.1/8, proxy.example, 10.0.0.2"})
    assert caught.value.problems == [
        "trusted_proxies: '10.0.0.1/8', 'proxy.example': not an IP address or a CIDR network without host bits"]


def test_delete_enabled_is_off_by_default_and_read_as_a_boolean(tmp_path: Path) -> None:
    assert Settings.load(environ={}).delete_enabled is False
    for text, expected in (("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
                           ("false", False), ("0", False), ("no", False), ("off", False)):
        assert Settings.load(environ={"XDSI_DELETE_ENABLED": text}).delete_enabled is expected, text
    config = tmp_path / "xdsi.toml"
    config.write_text("delete_enabled = true\n")
    assert Settings.load(environ={"XDSI_CONFIG": str(config)}).delete_enabled is True
    with pytest.raises(ConfigError) as raised:
        Settings.load(environ={"XDSI_DELETE_ENABLED": "sure"})
    assert "XDSI_DELETE_ENABLED: 'sure' is not a boolean" in str(raised.value)


def test_authentication_settings_name_what_each_mechanism_lacks() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load(environ={"XDSI_AUTH": "basic, bearer, saml, kerberos", "XDSI_JWKS": "http://idp/jwks",
                               "XDSI_JWT_ALGORITHMS": "RS256,HS256,none", "XDSI_JWT_SCOPE_ROLES": "a=read,b",
                               "XDSI_SAML_ROLES": "read,reader"})
    assert refused.value.problems == [
        "auth: kerberos not supported (choose among basic, bearer, mtls, saml, proxy)",
        "users_file: required when auth includes basic",
        "saml_trust_store: required when auth includes saml",
        "saml_roles: reader not a role (read, store, delete, admin)",
        "jwt_issuer: required when auth includes bearer",
        "jwt_audience: required when auth includes bearer",
        "jwks: 'http://idp/jwks' is neither a file nor an https URL",
        "jwt_algorithms: HS256, none: choose among RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, "
        "ES512, EdDSA",
        "jwt_scope_roles: 'b' is not KEY=VALUE",
    ]


def test_tls_settings_name_what_is_missing(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("certificate")
    with pytest.raises(ConfigError) as refused:
        Settings.load(environ={"XDSI_AUTH": "mtls", "XDSI_TLS_CERT": str(cert), "XDSI_TLS_CA": str(tmp_path / "no-ca"),
                               "XDSI_TLS_CLIENT_ROLES": "CN=ct-1: store; CN=viewer; CN=x: read,fly"})
    assert refused.value.problems == [
        "tls_client_cert: optional or required when auth includes mtls",
        f"tls_ca: '{tmp_path / 'no-ca'}' is not a readable file",
        "tls_cert and tls_key: set both to serve HTTPS, or neither",
        "tls_client_roles: 'CN=viewer' is not 'SUBJECT: ROLE[,ROLE]'",
    ]
    with pytest.raises(ConfigError) as refused:
        Settings.load(environ={"XDSI_TLS_CLIENT_CERT": "required", "XDSI_TLS_CLIENT_ROLES": "CN=x: read,fly"})
    assert refused.value.problems == [
        "tls_client_cert: client certificates need TLS (tls_cert and tls_key)",
        "tls_client_cert: needs tls_ca (the CAs client certificates must chain to)",
        "tls_client_roles: 'CN=x: read,fly': fly not a role (read, store, delete, admin)",
    ]


def test_tls_client_roles_keep_commas_inside_subjects() -> None:
    settings = Settings.load(environ={
        "XDSI_TLS_CLIENT_ROLES": r"CN=ct-1,O=Hospital\; East: store, read ; CN=portal,OU=Web,O=Hospital: read;"})
    assert subject_roles(settings.tls_client_roles) == {
        r"CN=ct-1,O=Hospital\; East": frozenset({"store", "read"}),
        "CN=portal,OU=Web,O=Hospital": frozenset({"read"}),
    }
    assert settings.tls_client_cert == "none" and not settings.tls_enabled


def test_authentication_settings_when_complete(tmp_path: Path) -> None:
    settings = Settings.load(environ={
        "XDSI_AUTH": "Basic,bearer", "XDSI_USERS_FILE": str(tmp_path / "users"),
        "XDSI_JWKS": "https://idp.example.org/jwks", "XDSI_JWT_ISSUER": "https://idp.example.org",
        "XDSI_JWT_AUDIENCE": "xdsi", "XDSI_JWT_SCOPE_ROLES": "pacs.read=read, pacs.write=store",
    })
    assert settings.auth_mechanisms == ("basic", "bearer")
    assert settings.scope_roles == {"pacs.read": "read", "pacs.write": "store"}
    with pytest.raises(ConfigError, match="superuser not a role"):
        Settings.load(environ={"XDSI_JWT_SCOPE_ROLES": "x=superuser"})


@pytest.mark.parametrize(("bind", "beyond"), [
    ("127.0.0.1:8080", False), ("127.1.2.3:8080", False), ("[::1]:8080", False), ("localhost:8080", False),
    ("0.0.0.0:8080", True), ("[::]:8080", True), ("192.168.1.10:8080", True), ("pacs.example.org:8080", True),
])
def test_which_binds_reach_beyond_this_machine(bind: str, beyond: bool) -> None:
    assert Settings.load(environ={}, bind=bind).binds_beyond_loopback is beyond


def test_timeouts_and_connection_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"XDSI_HEADER_TIMEOUT": "0", "XDSI_BODY_MIN_RATE": "-1",
                               "XDSI_MAX_CLIENT_CONNECTIONS": "0"})
    assert {p.split(":")[0] for p in caught.value.problems} == {"header_timeout", "body_min_rate",
                                                                "max_client_connections"}


def test_the_stow_metadata_budget_defaults_to_a_share_of_memory_and_holds_one_largest_part() -> None:
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    settings = Settings.load(environ={})
    assert settings.effective_stow_metadata_budget == max(settings.max_metadata_bytes, memory // 64)
    small = Settings.load(environ={"XDSI_MAX_METADATA_BYTES": str(memory)})
    assert small.effective_stow_metadata_budget == memory
    assert Settings.load(environ={"XDSI_STOW_METADATA_BUDGET_BYTES": str(1 << 30)}).effective_stow_metadata_budget \
        == 1 << 30


@pytest.mark.parametrize("budget", ["-1", str(1 << 20)])
def test_a_stow_metadata_budget_below_one_part_is_refused(budget: str) -> None:
    with pytest.raises(ConfigError, match="stow_metadata_budget_bytes"):
        Settings.load(environ={"XDSI_STOW_METADATA_BUDGET_BYTES": budget, "XDSI_MAX_METADATA_BYTES": str(2 << 20)})
