"""The archive: one index and one blob store, opened from settings, and the services built once over
them, shared by every protocol (the application factory and the command line both open it here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from xdsi.config import Settings
from xdsi.dicom.parsing import Limits
from xdsi.repository import db, visibility
from xdsi.repository.blobs import BlobStore
from xdsi.services.auditor import Auditor
from xdsi.services.delete import InstanceDeleter
from xdsi.services.render import Renderer
from xdsi.services.store import InstanceStore
from xdsi.services.stow_assembly import StowAssembler

log = logging.getLogger(__name__)


@dataclass
class Archive:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    store: InstanceStore
    deleter: InstanceDeleter
    assembler: StowAssembler
    renderer: Renderer
    auditor: Auditor
    readers: db.ThreadConnections

    @classmethod
    def open(cls, settings: Settings) -> Archive:
        """Connect to the index and the store; nothing is created or migrated here."""
        engine = db.create_engine_for(
            settings.effective_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            connections=settings.threads,
        )
        sessions = db.make_session_factory(engine)
        blobs = BlobStore(settings.storage)
        store = InstanceStore(settings, sessions, blobs)
        return cls(settings, engine, sessions, blobs, store, InstanceDeleter(sessions, blobs),
                   StowAssembler(settings, blobs, store), Renderer(settings, blobs, store.limits),
                   Auditor(settings, sessions), db.ThreadConnections(engine, sessions))

    def session_for(self, issuers: frozenset[str] | None) -> Session:
        """A session for a caller's request, seeing only the patients of ``issuers`` (Issuers of Patient
        ID; None: every patient): searches, metadata and retrievals of every protocol through it
        find nothing of other patients, as if it were not stored."""
        return visibility.limit(self.readers.session(), issuers)

    @property
    def limits(self) -> Limits:
        """What a stored file may declare when it is parsed again (bulk data, frames)."""
        return self.store.limits

    def prepare(self) -> None:
        """Start-up work, once per deployment start: schema upgrade, store folders, crash sweep."""
        db.upgrade(self.engine)
        self.blobs.ensure()
        self.store.sweep()

    def own_files(self) -> list[Path]:
        """The store folder and any SQLite files: what an import must never take as input."""
        paths = [self.blobs.root]
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            paths += [Path(database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return paths

    def health(self) -> dict[str, str]:
        """'ok' or the failure, per part."""
        result = {}
        for name, probe in (("database", lambda: db.check(self.engine)), ("store", self.blobs.check)):
            try:
                probe()
                result[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - a health check reports every failure, whatever its type
                log.warning("health check of the %s failed: %s", name, exc)
                result[name] = f"error: {type(exc).__name__}: {exc}"
        return result

    def close(self) -> None:
        """Dispose of the database connections; the audit trail lives on until ``auditor.close``."""
        self.engine.dispose()
