"""Shared fixtures: a fresh index per test on SQLite and, when configured, PostgreSQL.

``XDSI_TEST_DATABASE_URL`` names a PostgreSQL server where the test user may create
databases (``.ci/run`` starts one). Each test gets its own database cloned from a template
migrated once per session (on SQLite, a copy of the file), so tests never see each other's
rows. Without the variable only SQLite runs; the session header says so.

With pytest-xdist (``make test`` runs two workers), each worker has its own session: its own
templates and live servers. The tests of one module stay on one worker, in order (some read
what an earlier test of their module recorded), and tests/interop stays on one worker, so its
corpus is stored once.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from xdsi.config import Settings
from xdsi.repository import db
from xdsi.services.archive import Archive

if TYPE_CHECKING:
    from tests.live import LiveServer
    from tests.tokens import TokenIssuer

PG_URL = os.environ.get("XDSI_TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])
SHARED = Path(__file__).resolve().parents[2] / "shared"
_counter = itertools.count()


def pytest_report_header(config: pytest.Config) -> str:
    if PG_URL:
        return f"xdsi: databases sqlite and postgresql ({make_url(PG_URL).render_as_string(hide_password=True)})"
    return "xdsi: database sqlite only (set XDSI_TEST_DATABASE_URL for PostgreSQL)"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Work units for pytest-xdist's workers: a module, and tests/interop as one (its corpus)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/interop" if module.startswith("tests/interop/") else module

    return ModuleScheduling(config, log)


class PostgresDatabases:
    """Creates one database per test from a template migrated once per session."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"xdsi_test_{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self.created: list[str] = []
        self._create(self.template, None)
        engine = db.create_engine_for(self.url(self.template))
        db.upgrade(engine)
        engine.dispose()

    def url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None) -> None:
        with self.admin.connect() as connection:
            suffix = f" TEMPLATE {template}" if template else ""
            connection.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self.created.append(name)

    def new(self) -> str:
        name = f"{self.prefix}_{next(_counter)}"
        self._create(name, self.template)
        return self.url(name)

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in reversed(self.created):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> TokenIssuer:
    """An identity provider of the tests: its JWKS file and the tokens it signs."""
    from tests.tokens import TokenIssuer

    return TokenIssuer(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | None]:
    if not PG_URL:
        yield None
        return
    databases = PostgresDatabases(PG_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite index migrated once: copying the file costs a thousandth of a migration."""
    path = tmp_path_factory.mktemp("template") / "xdsi.db"
    engine = db.create_engine_for(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    # The last connection's close checkpoints the WAL into the file: the file alone is the index.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh, empty, migrated index."""
    if request.param == "sqlite":
        path = tmp_path / "xdsi.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    postgres: PostgresDatabases = request.getfixturevalue("postgres")
    return postgres.new()


def make_settings(database_url: str, storage: Path, **overrides: object) -> Settings:
    """Settings from explicit values only, so the developer's XDSI_* environment never leaks in.

    Two parser processes whatever the machine: every multi-instance store in the suite then
    crosses the process boundary, as it does in a server on a multi-core host.
    """
    overrides.setdefault("parse_processes", 2)
    return Settings.load(environ={}, database_url=database_url, storage=str(storage), **overrides)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "store")


def store_all(archive: Archive, *payloads: bytes) -> None:
    """Store PS3.10 files through the archive's store service, each of them accepted."""
    outcomes = archive.store.store(io.BytesIO(payload) for payload in payloads)
    assert all(outcome.status.succeeded for outcome in outcomes), [outcome.reason for outcome in outcomes]


@pytest.fixture
def archive(settings: Settings) -> Iterator[Archive]:
    opened = Archive.open(settings)
    opened.prepare()
    yield opened
    opened.close()


@pytest.fixture(scope="session", params=DATABASES)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One running server per database for the session; tests keep to their own UIDs."""
    from tests.live import LiveServer

    folder = tmp_path_factory.mktemp(f"live-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new()
    server = LiveServer(url, folder / "store")
    yield server
    server.stop()
