"""Store instances: validate, keep the bytes as received, index them, all or nothing per instance.

One call stores a batch (a STOW request, or a slice of an import) in three steps:

1. *prepare*, per instance and outside any transaction: spool the bytes into the blob store's
   temporary area, parse the header within limits, check UIDs, SOP class and transfer syntax,
   serialize the metadata fragments, and place the file under its final name (fsynced). When a
   batch holds several instances, worker processes parse the spooled ones while this thread
   spools the next (``reading.read_instance`` is the part they run);
2. *index*, in one write transaction for the whole batch: each instance in its own savepoint,
   so a duplicate or a hierarchy conflict fails that instance alone; the files and directories
   are fsynced together just before. Batches of concurrent calls share that step
   (``group_commit``): one round of fsyncs and one transaction for all the batches waiting,
   each call returning once its own instances are committed;
3. *settle*, after the commit: drop the markers of stored files, remove the files of the
   instances that failed, delete files that an overwrite superseded.

A crash in any step leaves the instance wholly indexed or not indexed at all (see
``repository.blobs`` for why the blob store never leaves a row without its file).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.filewriter import dcmwrite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from xdsi.config import Settings
from xdsi.dicom import uids
from xdsi.dicom.attributes import IndexKeys
from xdsi.dicom.coercion import fill_issuer_of_patient_id
from xdsi.dicom.parsing import Limits, file_meta_header, open_instance, read_bare_dataset
from xdsi.errors import (
    DuplicateConflict,
    InstanceRejected,
    XdsiError,
)
from xdsi.repository import db, index, ingest
from xdsi.repository.blobs import BlobStore, Readable, TempBlob
from xdsi.services import process_pool
from xdsi.services.group_commit import GroupCommit
from xdsi.services.process_pool import PoolBroken, ProcessPool, Ticket
from xdsi.services.reading import ReadInstance, malformed_on_error, read_instance

log = logging.getLogger(__name__)
IMPLEMENTATION_NAME = "xdsi"


class Status(enum.Enum):
    STORED = "stored"
    REPLACED = "replaced"  # overwrite policy: a different instance with this UID was superseded
    DUPLICATE = "duplicate"  # the identical instance was already stored
    IGNORED = "ignored"  # ignore policy: a different instance with this UID was kept
    FAILED = "failed"

    @property
    def succeeded(self) -> bool:
        return self is not Status.FAILED


@dataclass
class Outcome:
    """What happened to one instance of a batch."""

    status: Status
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    error: XdsiError | None = None
    warnings: list[str] = field(default_factory=list)
    coerced: bool = False  # attributes were changed on the way in (Original Attributes Sequence)

    @property
    def reason(self) -> str:
        return str(self.error) if self.error else ""


@dataclass
class _Prepared:
    blob: TempBlob
    read: ReadInstance
    outcome: Outcome
    superseded: str | None = None
    gc_marker: Path | None = None
    file_meta_added: bool = False

    @property
    def keys(self) -> IndexKeys:
        return self.read.keys

    def begin(self) -> None:
        """Before each attempt to index: what a rolled-back attempt said of this instance is void."""
        self.outcome.status, self.outcome.error = Status.STORED, None
        self.outcome.warnings = list(self.keys.warnings)
        if self.gc_marker is not None:
            self.gc_marker.unlink(missing_ok=True)
        self.gc_marker = self.superseded = None


@dataclass
class _Spooled:
    """A spooled source waiting for its parse, in a worker process (``ticket``) or here."""

    blob: TempBlob
    coerced: bool
    file_meta_added: bool = False
    ticket: Ticket | None = None


class InstanceStore:
    """Stores batches of instances into one index and blob store."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], blobs: BlobStore) -> None:
        self.settings = settings
        self.sessions = sessions
        self.blobs = blobs
        self.limits = Limits(
            max_bytes=settings.max_instance_bytes,
            max_inflated_bytes=settings.max_inflated_bytes,
            max_deflate_ratio=settings.max_deflate_ratio,
            defer_size=settings.bulk_data_threshold,
        )
        self._commits: GroupCommit[list[_Prepared]] = GroupCommit(self._index_group)

    def store(
        self, sources: Iterable[Readable | InstanceRejected], *, study_uid: str | None = None
    ) -> list[Outcome]:
        """Store each readable source as one instance; ``study_uid`` restricts a study-targeted POST.

        A source may be an InstanceRejected instead: an instance its sender's request could not
        even provide (e.g. metadata naming a missing bulk data part), reported like any failure.
        """
        items = self._prepare(sources, study_uid)
        parsed = [item for item in items if isinstance(item, _Prepared)]
        placed: list[_Prepared] = []
        try:
            for item in parsed:
                keys = item.keys
                self.blobs.place(
                    item.blob, (keys.study.study_uid, keys.series.series_uid, keys.instance.sop_instance_uid)
                )
                placed.append(item)
            if placed:
                self._commits.submit(placed)
        except BaseException:
            for item in parsed:
                self.blobs.abandon(item.blob)
            raise
        self._settle(placed)
        return [item.outcome if isinstance(item, _Prepared) else item for item in items]

    def _prepare(
        self, sources: Iterable[Readable | InstanceRejected], study_uid: str | None
    ) -> list[_Prepared | Outcome]:
        """Spool every source and parse it; parses run in worker processes once there are two."""
        pool: ProcessPool | None = None
        parallel = self.settings.parse_processes > 0
        pending: list[_Spooled | Outcome] = []
        waiting: list[_Spooled] = []  # spooled, not yet handed to a worker
        spooled_count = 0
        try:
            for source in sources:
                spooled = self._spool(source)
                pending.append(spooled)
                if not parallel or not isinstance(spooled, _Spooled):
                    continue
                waiting.append(spooled)
                spooled_count += 1
                if spooled_count > 1:  # a lone instance is parsed here: no gain in shipping it
                    pool = pool or _parsers(self.settings.parse_processes)
                    parallel = pool is not None
                    if pool is not None:
                        self._hand_over(pool, waiting, study_uid)
                        pool.collect_ready()
            return [self._parsed(pool, item, study_uid) for item in pending]
        except BaseException:
            for item in pending:
                if isinstance(item, _Spooled):
                    self.blobs.abandon(item.blob)
            if pool is not None:
                pool.forget([item.ticket for item in pending if isinstance(item, _Spooled) and item.ticket])
            raise

    def _spool(self, source: Readable | InstanceRejected) -> _Spooled | Outcome:
        if isinstance(source, InstanceRejected):
            return _failed(source)
        try:
            blob = self.blobs.spool(source, self.settings.max_instance_bytes)
        except InstanceRejected as exc:
            return _failed(exc)
        try:
            added = self._add_file_meta(blob)
            return _Spooled(blob, self._coerce(blob), added)
        except InstanceRejected as exc:
            self.blobs.abandon(blob)
            return _failed(exc)
        except BaseException:
            self.blobs.abandon(blob)
            raise

    def _hand_over(self, pool: ProcessPool, waiting: list[_Spooled], study_uid: str | None) -> None:
        try:
            for item in waiting:
                item.ticket = pool.submit(str(item.blob.path), self.limits, self.settings.bulk_data_threshold,
                                          study_uid)
        except PoolBroken:
            pass  # what was not handed over is parsed here
        waiting.clear()

    def _parsed(self, pool: ProcessPool | None, item: _Spooled | Outcome, study_uid: str | None) -> _Prepared | Outcome:
        """The parse of one spooled source: its worker's answer, or done here."""
        if isinstance(item, Outcome):
            return item
        ticket, item.ticket = item.ticket, None  # answered once: not to be forgotten if a later one fails
        try:
            read = None
            if pool is not None and ticket is not None:
                with contextlib.suppress(PoolBroken):
                    read = pool.result(ticket)
            if read is None:
                read = read_instance(str(item.blob.path), self.limits, self.settings.bulk_data_threshold, study_uid)
        except InstanceRejected as exc:
            self.blobs.abandon(item.blob)
            return _failed(exc)
        except BaseException:
            self.blobs.abandon(item.blob)
            raise
        instance = read.keys.instance
        for warning in read.keys.warnings:
            log.warning("instance %s: %s", instance.sop_instance_uid, warning)
        return _Prepared(
            blob=item.blob,
            read=read,
            outcome=Outcome(
                Status.STORED,
                sop_class_uid=instance.sop_class_uid,
                sop_instance_uid=instance.sop_instance_uid,
                study_uid=read.keys.study.study_uid,
                series_uid=read.keys.series.series_uid,
                warnings=list(read.keys.warnings),
                coerced=item.coerced,
            ),
            file_meta_added=item.file_meta_added,
        )

    def _add_file_meta(self, blob: TempBlob) -> bool:
        """PS3.10 7.1: give a data set sent without File Meta Information the header it lacks.

        The data set's bytes follow the header unchanged, streamed from the spooled copy.
        """
        with open(blob.path, "rb") as spooled:
            bare = read_bare_dataset(spooled, blob.size)
            if bare is None:
                return False
            header = file_meta_header(bare, uids.IMPLEMENTATION_CLASS_UID, uids.IMPLEMENTATION_VERSION_NAME)
            spooled.seek(0)
            replacement = self.blobs.spool(spooled, self.settings.max_instance_bytes, prefix=header)
        self._swap(blob, replacement)
        return True

    def _coerce(self, blob: TempBlob) -> bool:
        """Apply the configured coercions; the blob then holds the coerced instance."""
        issuer = self.settings.coerce_issuer_of_patient_id
        if not issuer:
            return False
        with open_instance(blob.path, self.limits) as parsed, malformed_on_error():
            header = parsed.dataset
            if not header.get("PatientID") or header.get("IssuerOfPatientID"):
                return False
        with malformed_on_error(), tempfile.TemporaryFile(dir=self.blobs.tmp) as rewritten:
            ds = dcmread(blob.path, defer_size=self.limits.defer_size)
            fill_issuer_of_patient_id(ds, issuer, datetime.now(UTC), IMPLEMENTATION_NAME)
            dcmwrite(rewritten, ds, enforce_file_format=True)
            rewritten.seek(0)
            replacement = self.blobs.spool(rewritten, self.settings.max_instance_bytes)
        self._swap(blob, replacement)
        return True

    def _swap(self, blob: TempBlob, replacement: TempBlob) -> None:
        """``blob`` now stands for ``replacement``'s file; its own file is dropped."""
        self.blobs.abandon(blob)
        blob.path, blob.nonce, blob.size, blob.sha256 = (
            replacement.path, replacement.nonce, replacement.size, replacement.sha256
        )

    def _index_group(self, batches: Sequence[list[_Prepared]]) -> None:
        """Make the batches of one group durable and indexed: one round of fsyncs, one transaction.

        New instances are inserted without a savepoint: on SQLite the writers' queue keeps any
        other writer out between the check for stored UIDs and the insert, so only a UID sent
        twice in one group, or a PostgreSQL writer of another process that got there first,
        can break the insert. Then the whole transaction is rolled back and done again with a
        savepoint per instance. (Two savepoint statements cost as much CPU as the insert.)
        """
        batch = [item for placed in batches for item in placed]
        self.blobs.sync([item.blob for item in batch])
        now = datetime.now(UTC)
        try:
            self._index_batch(batch, now, guarded=False)
        except IntegrityError:
            self._index_batch(batch, now, guarded=True)

    def _index_batch(self, batch: list[_Prepared], now: datetime, *, guarded: bool) -> None:
        for item in batch:
            item.begin()
        with db.writing(self.sessions) as session:
            stored = index.stored_digests(session, [item.keys.instance.sop_instance_uid for item in batch])
            fresh = [item for item in batch if item.keys.instance.sop_instance_uid not in stored]
            for item in batch:
                digest = stored.get(item.keys.instance.sop_instance_uid)
                if digest == item.blob.sha256:  # the identical instance again, whatever the policy
                    item.outcome.status = Status.DUPLICATE
                elif digest is not None:
                    self._index_in_savepoint(session, item, now)
            if not fresh:
                return
            if guarded:
                self._index_fresh(session, fresh, now)
            else:
                self._record(fresh, ingest.add_instances(session, [self._new_instance(item) for item in fresh], now))

    def _index_fresh(self, session: Session, fresh: list[_Prepared], now: datetime) -> None:
        """New instances in one multi-row insert; item by item if another writer got there first."""
        entries = [self._new_instance(item) for item in fresh]
        try:
            with session.begin_nested():
                results = ingest.add_instances(session, entries, now)
        except IntegrityError:
            for item in fresh:
                self._index_in_savepoint(session, item, now)
            return
        self._record(fresh, results)

    @staticmethod
    def _record(fresh: list[_Prepared], results: Sequence[list[str] | InstanceRejected]) -> None:
        for item, result in zip(fresh, results, strict=True):
            if isinstance(result, InstanceRejected):
                item.outcome.status = Status.FAILED
                item.outcome.error = result
            else:
                _add_differences(item, result)

    def _index_in_savepoint(self, session: Session, item: _Prepared, now: datetime) -> None:
        try:
            with session.begin_nested():
                self._index_one(session, item, now)
        except (InstanceRejected, IntegrityError) as exc:
            item.outcome.status = Status.FAILED
            item.outcome.error = exc if isinstance(exc, InstanceRejected) else _race(item, exc)
            if item.gc_marker is not None:
                item.gc_marker.unlink(missing_ok=True)
                item.gc_marker = None

    @staticmethod
    def _new_instance(item: _Prepared) -> ingest.NewInstance:
        blob = ingest.StoredBlob(
            key=item.blob.key or "",
            size=item.blob.size,
            sha256=item.blob.sha256,
            transfer_syntax_uid=item.read.transfer_syntax,
            pixel_data_offset=item.read.pixel_offset,
            pixel_data_length=item.read.pixel_length,
            frame_table=item.read.frame_table,
            file_meta_added=item.file_meta_added,
        )
        return ingest.NewInstance(item.keys, blob, item.read.metadata_json)

    def _index_one(self, session: Session, item: _Prepared, now: datetime) -> None:
        keys = item.keys
        existing = index.find_instance(session, keys.instance.sop_instance_uid)
        if existing is None:
            _add_differences(item, ingest.add_instance(session, self._new_instance(item), now))
            return
        if existing.sha256 == item.blob.sha256:
            item.outcome.status = Status.DUPLICATE
            return
        policy = self.settings.duplicate_policy
        if policy == "ignore":
            item.outcome.status = Status.IGNORED
            item.outcome.warnings.append("a different instance with this SOP Instance UID is kept")
            return
        if policy == "reject":
            raise DuplicateConflict(
                f"SOP Instance UID {keys.instance.sop_instance_uid} is already stored with different "
                f"content (sha256 {existing.sha256[:16]}...); duplicate policy is 'reject'",
                sop_class_uid=keys.instance.sop_class_uid,
                sop_instance_uid=keys.instance.sop_instance_uid,
            )
        item.superseded = existing.blob_key
        item.gc_marker = self.blobs.mark_for_deletion(existing.blob_key)
        item.outcome.status = Status.REPLACED
        ingest.replace_instance(session, self._new_instance(item), now)

    def _settle(self, batch: list[_Prepared]) -> None:
        for item in batch:
            if item.outcome.status in (Status.STORED, Status.REPLACED):
                self.blobs.release(item.blob)
            else:
                self.blobs.abandon(item.blob)
            if item.gc_marker is not None and item.superseded is not None:
                self.blobs.delete_marked(item.gc_marker, item.superseded)

    def sweep(self, running: bool = False) -> None:
        """Clean what crashed writers left in the blob store: at start-up, and ``running`` while this
        process serves (``services.sweeper``), when its own writers' markers are live."""
        with self.sessions() as session:
            report = self.blobs.sweep(
                lambda key: index.is_blob_referenced(session, key),
                settle=lambda: db.settle_writers(session.get_bind()),
                running=running,
            )
        if report.removed_partial or report.removed_orphans or report.kept_referenced or report.errors:
            log.warning(
                "store sweep: %d partial uploads removed, %d unindexed files removed, %d markers cleared, "
                "%d errors %s",
                report.removed_partial,
                report.removed_orphans,
                report.kept_referenced,
                len(report.errors),
                "; ".join(report.errors[:5]),
            )


def _parsers(size: int) -> ProcessPool | None:
    """The parser processes, or None (parse here) when this platform cannot start them."""
    try:
        return process_pool.shared(size, read_instance)
    except OSError as exc:
        log.warning("parser processes cannot start (%s); parsing in the request thread", exc)
        return None



def _add_differences(item: _Prepared, differences: list[str]) -> None:
    item.outcome.warnings.extend(differences)
    for difference in differences:
        log.info("stored %s with a difference: %s", item.keys.instance.sop_instance_uid, difference)


def _failed(exc: InstanceRejected) -> Outcome:
    return Outcome(
        Status.FAILED,
        sop_class_uid=exc.sop_class_uid,
        sop_instance_uid=exc.sop_instance_uid,
        error=exc,
    )


def _race(item: _Prepared, exc: IntegrityError) -> InstanceRejected:
    log.info("concurrent store of %s: %s", item.keys.instance.sop_instance_uid, exc.orig)
    return DuplicateConflict(
        f"SOP Instance UID {item.keys.instance.sop_instance_uid} was stored concurrently by another request",
        sop_class_uid=item.keys.instance.sop_class_uid,
        sop_instance_uid=item.keys.instance.sop_instance_uid,
    )
