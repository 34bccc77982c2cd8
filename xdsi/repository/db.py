"""Engines, sessions, write transactions and schema migrations for SQLite and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes fails with
SQLITE_BUSY_SNAPSHOT without waiting on the busy handler. Writers that still cannot get the
lock raise ``RepositoryBusy`` (answered 503), never a bare driver error.

Before that, SQLite writers of every process queue on an advisory file lock beside the database
(``<database>.writers``). SQLite's busy handler polls: a writer that finds the lock taken
sleeps 1, 2, 5, 10 ... 100 ms between tries, so under steady load from several worker processes
a transaction of a millisecond waited tens of milliseconds for its turn, and the one that
polled at the wrong moment ran out of retries. ``flock`` queues in the kernel and wakes the
next writer as the previous one lets go; the kernel drops the lock of a process that dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from xdsi.errors import RepositoryBusy, StorageFull

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x78647369  # "xdsi": serializes concurrent upgrades across nodes
_IMMEDIATE = "xdsi_immediate"
# Held shared by every PostgreSQL write transaction; settle_writers takes it exclusively.
_PG_WRITERS_LOCK = 0x78647377


def create_engine_for(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    sqlite_busy_timeout_ms: int = 5000,
    connections: int | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine configured for concurrent use by several workers of one archive.

    ``connections``: how many threads of this process use it at once. Each may hold two connections
    (a request's session and a write), besides the sweeper's and the audit trail's; the pool keeps
    that many open. SQLAlchemy's default keeps five and closes every connection beyond them on its
    return, so eight busy threads opened and configured a new connection for most requests.
    """
    parsed = make_url(url)
    if connections is not None and parsed.database != ":memory:":
        kwargs.setdefault("pool_size", 2 * connections + 2)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout_ms / 1000}, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous, sqlite_busy_timeout_ms)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")


def _configure_sqlite(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # DICOM matching is case-sensitive outside person names (PS3.4 C.2.2.2.1), and a
        # case-sensitive LIKE can use the BINARY-collated indexes.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE)
        # Straight to the driver: a statement through SQLAlchemy's execution path costs several times
        # the BEGIN itself, and every request that reads the index begins a transaction.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


class ThreadConnections:
    """Sessions for the requests of long-lived threads, each thread keeping one SQLite connection open.

    A session on a pool connection checks it out, begins, rolls back and checks it in: on SQLite that
    costs several times the index lookup of a retrieval, on every request. A thread's own connection
    skips the pool; each session still begins its own transaction on it and ends it when closed, so
    nothing is held between requests (a WAL read transaction blocks no writer). PostgreSQL sessions
    keep the pool, whose pre-ping finds connections a server restart has broken.
    """

    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.own = engine if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:") \
            else None
        self.local = threading.local()

    def session(self) -> Session:
        if self.own is None:
            return self.factory()
        connection: Connection | None = getattr(self.local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self.local.connection = self.own.connect()
        if connection.in_transaction():
            # A session of this thread still holds it (one opened inside another, or one left open):
            # the pool serves, so that no session joins another's transaction and its snapshot.
            return self.factory()
        return self.factory(bind=connection)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def writing(factory: sessionmaker[Session], retries: int = 3) -> Iterator[Session]:
    """A write transaction, committed on success; lock and space failures become domain errors.

    Only the start of the transaction is retried: once the body has run, the caller decides.
    """
    session = factory()
    try:
        with _queued(session.get_bind().engine):
            _begin(session, retries)
            try:
                yield session
                session.commit()
            except DBAPIError as exc:
                session.rollback()
                error = _domain_error(exc)
                if error is exc:
                    raise
                raise error from exc
            except BaseException:
                session.rollback()
                raise
    finally:
        session.close()


def _begin(session: Session, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            connection = session.connection(execution_options={_IMMEDIATE: True})
            if connection.dialect.name == "postgresql":
                connection.execute(_SHARE_WRITERS_LOCK, {"key": _PG_WRITERS_LOCK})
            return
        except OperationalError as exc:
            session.rollback()
            if not _is_lock_error(exc) or attempt == retries:
                raise _domain_error(exc) from exc
            time.sleep(0.05 * (attempt + 1))


@contextlib.contextmanager
def _queued(engine: Engine) -> Iterator[None]:
    """Hold this SQLite database's writers lock: the writers of every process take turns in order."""
    path = _writers_lock_path(engine)
    if path is None:
        yield
        return
    # A descriptor of its own per transaction: flock belongs to the open file, so threads of one
    # process queue too, and a forked worker never shares its parent's lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL; released by close, or by the kernel
        yield
    finally:
        os.close(fd)


def _writers_lock_path(engine: Engine) -> Path | None:
    """The file SQLite writers of ``engine``'s database queue on; None for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + ".writers")


_SHARE_WRITERS_LOCK = text("SELECT pg_advisory_xact_lock_shared(:key)")


def settle_writers(bind: Engine | Connection) -> None:
    """Return once every write transaction running now has ended, committed or not.

    A PostgreSQL backend outlives a killed client for as long as it takes to finish what the
    client had sent, a COMMIT included; a store sweep that checked references before that
    commit landed would delete a file the index is about to reference. SQLite transactions
    end with their process, so there is nothing to wait for.
    """
    engine = bind.engine  # its own connection: a session's may be inside a transaction
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection, connection.begin():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_WRITERS_LOCK})


def _is_lock_error(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


_UNREACHABLE = ("could not connect", "connection refused", "server closed the connection",
                "terminating connection", "connection timed out", "unable to open database")


def _domain_error(exc: DBAPIError) -> Exception:
    """The domain error for ``exc`` or for a database error it was raised while handling.

    A failure can hide its cause: SQLite ends the whole transaction on SQLITE_FULL, so the
    savepoint rollback that follows fails with "no such savepoint", the full disk as its context.
    """
    error: BaseException | None = exc
    while error is not None:
        if isinstance(error, DBAPIError):
            found = _classified(error)
            if found is not None:
                return found
        error = error.__cause__ or error.__context__
    return exc


def _classified(exc: DBAPIError) -> Exception | None:
    message = str(exc.orig).lower()
    if _is_lock_error(exc) or "could not serialize" in message or "deadlock detected" in message:
        return RepositoryBusy(f"the index is busy, try again: {exc.orig}")
    if "database or disk is full" in message or "no space left" in message:
        return StorageFull(f"the index is out of space: {exc.orig}")
    if exc.connection_invalidated or any(text in message for text in _UNREACHABLE):
        return RepositoryBusy(f"the index is unreachable: {exc.orig}")
    return None


def check(engine: Engine) -> None:
    """Raise unless the database answers (for /healthz)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes start at once."""
    from alembic import command
    from alembic.config import Config
    from alembic.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        connection = connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = connection
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(config, "head")
            after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("index schema upgraded from %s to revision %s", before or "an empty database", after)


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
