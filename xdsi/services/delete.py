"""Delete studies, series and instances: the index commits first, the files go after.

The order is the store's (``repository.blobs``) in reverse: before the commit, a ``.gc`` marker
names each file the commit stops referencing; after it, each file and then its marker is
removed. A crash before the commit leaves markers of referenced files (the start-up sweep drops
them and keeps the files); a crash after it leaves markers of unreferenced files (the sweep
removes them). On PostgreSQL the sweep first waits out write transactions still running, so a
COMMIT sent by a process that was then killed is judged once it has landed.

A retrieve that opened a file before the delete reads it to its end: POSIX keeps an unlinked
file's data while a descriptor is open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from xdsi.errors import NotFound
from xdsi.repository import db, removal
from xdsi.repository.blobs import BlobStore
from xdsi.repository.removal import Removed
from xdsi.services.retrieve import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deleted:
    """What one delete took away."""

    target: Target
    removed: Removed

    def describe(self) -> str:
        gone = [f"{self.removed.instances} instance{'s' if self.removed.instances != 1 else ''}"]
        if self.removed.series:
            gone.append(f"{self.removed.series} series")
        if self.removed.study:
            gone.append("the study")
        if self.removed.patient:
            gone.append("its patient record")
        return f"deleted {self.target.describe()}: {', '.join(gone)}"


class InstanceDeleter:
    """Deletes from one index and blob store."""

    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore) -> None:
        self.sessions = sessions
        self.blobs = blobs

    def delete(self, target: Target) -> Deleted:
        """Delete the target's instances (NotFound if it has none), then their files.

        If the transaction fails, its markers stay: whether the commit landed is not always
        knowable here (a connection lost during COMMIT), and the start-up sweep judges each
        marker against the index, keeping every file still referenced.
        """
        with db.writing(self.sessions) as session:
            found = removal.select_removal(session, target.study_uid, target.series_uid, target.sop_instance_uid)
            if found is None:
                raise NotFound(f"{target.describe()} is not in the archive")
            markers = [self.blobs.mark_for_deletion(key) for key in found.blob_keys]
            removed = removal.remove(session, found, datetime.now(UTC))
        for marker, key in zip(markers, found.blob_keys, strict=True):
            self.blobs.delete_marked(marker, key)
        deleted = Deleted(target, removed)
        log.info("%s", deleted.describe())
        return deleted
