"""The blob store: instances kept as received (PS3.10 files) under hash-derived names.

Writing is crash-safe without a journal:

1. ``spool`` copies the bytes into ``tmp/<host>~<pid>~<nonce>.part`` while hashing them.
2. ``place`` renames that file to a *marker* whose name carries the final key
   (``tmp/<host>~<pid>~<nonce>~<key>.link``) and hard-links it to the final path. The final
   name is the SHA-256 of the UIDs plus the nonce, so no two writers ever share one.
3. ``sync`` fsyncs the files and their directories; the caller then commits the index rows,
   and ``release`` removes the markers.

A crash leaves either a marker (whose final file ``sweep`` deletes unless an index row
references it) or nothing; it never leaves an index row without its file. Deleting a
superseded file follows the same rule with a ``.gc`` marker written before the commit.
Markers of live processes are never swept: the name says which host and process wrote them.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from xdsi.errors import InstanceTooLarge, StorageFull

_CHUNK = 1 << 20
_KEY_RE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.[0-9a-f]{16}\.dcm", re.ASCII)
_HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)
FOREIGN_MARKER_GRACE_SECONDS = 3600
_SYNC_THREADS = 8


@dataclass
class TempBlob:
    """A spooled file on its way into the store."""

    path: Path
    nonce: str
    size: int
    sha256: str
    key: str | None = None


@dataclass
class SweepReport:
    """What ``sweep`` found: leftovers removed, and markers left alone because their writer lives."""

    removed_partial: int = 0
    removed_orphans: int = 0
    kept_referenced: int = 0
    skipped_live: int = 0
    errors: list[str] = field(default_factory=list)


class Readable(Protocol):
    """What the store copies from: a request body, one of its parts, a file: read only."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobStore:
    """Files under ``root/objects``; temporaries and markers under ``root/tmp``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._durable: set[str] = set()  # fan-out folders ("ab", "ab/cd") whose own entry is synced

    def ensure(self) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        """Raise OSError unless the store can be written and read (for /healthz)."""
        probe = self.tmp / f"{_HOST}~{os.getpid()}~health.part"
        with _space_errors():
            probe.write_bytes(b"ok")
            if probe.read_bytes() != b"ok":
                raise OSError("store read back different bytes")
            probe.unlink()

    def spool(self, source: Readable, max_bytes: int, prefix: bytes = b"") -> TempBlob:
        """Copy ``prefix`` then ``source`` into a temporary file, hashing as it goes; bounded by ``max_bytes``."""
        nonce = secrets.token_hex(8)
        path = self.tmp / f"{_HOST}~{os.getpid()}~{nonce}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with _space_errors(), open(path, "xb") as out:
                for chunk in itertools.chain((prefix,), iter(functools.partial(source.read, _CHUNK), b"")):
                    size += len(chunk)
                    if size > max_bytes:
                        raise InstanceTooLarge(f"instance exceeds the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return TempBlob(path=path, nonce=nonce, size=size, sha256=digest.hexdigest())

    def scratch(self, source: Readable, max_bytes: int) -> tuple[Path, int]:
        """Spool ``source`` to a named temporary file the start-up sweep removes if we crash."""
        blob = self.spool(source, max_bytes)
        return blob.path, blob.size

    def place(self, blob: TempBlob, uid_path: Iterable[str]) -> str:
        """Link ``blob`` under its final key (returned); the marker stays until release.

        Nothing is durable yet: ``sync`` must run before the index commits the key.
        """
        name = hashlib.sha256("/".join(uid_path).encode("ascii")).hexdigest()
        key = f"{name[:2]}/{name[2:4]}/{name}.{blob.nonce}.dcm"
        marker = self.tmp / f"{_HOST}~{os.getpid()}~{blob.nonce}~{key.replace('/', '+')}.link"
        final = self.objects / key
        with _space_errors():
            os.rename(blob.path, marker)
            blob.path = marker
            try:
                os.link(marker, final)
            except FileNotFoundError:  # the first file of its fan-out folder: made here, once
                final.parent.mkdir(parents=True, exist_ok=True)
                os.link(marker, final)
        blob.key = key
        return key

    def sync(self, blobs: Sequence[TempBlob]) -> None:
        """fsync the placed files and their folders, all at once (group commit).

        Run in parallel, the fsyncs of a batch share the kernel's journal commits: several
        times cheaper per file than one after another. A fan-out folder may be new, made by
        this or another writer, and a power loss would drop it with its files: its parent is
        synced too, until this process knows a sync of that parent followed the folder's
        creation. (Overlapping the flush with the index statements was measured slower: writes
        to the index wait on the journal commit the flush holds.)
        """
        folders: set[str] = set()
        for blob in blobs:
            if blob.key:
                leaf, middle = blob.key[:5], blob.key[:2]
                folders.add(leaf)
                if leaf not in self._durable:
                    folders.add(middle)
                    if middle not in self._durable:
                        folders.add("")
        with _space_errors():
            jobs = [(_fsync_file, blob.path) for blob in blobs] + [(_fsync_dir, self.objects / f) for f in folders]
            # The last job runs in this thread while the pool runs the others: one hand-over fewer,
            # none for a lone file.
            if not jobs:
                return
            futures = [_sync_pool().submit(job, path) for job, path in jobs[:-1]]
            try:
                job, path = jobs[-1]
                job(path)
            finally:
                for future in futures:
                    future.result()
        # Each of these folders' parents was synced after the folder existed.
        self._durable.update(folder for folder in folders if folder)

    def release(self, blob: TempBlob) -> None:
        """The index now references the blob: drop its marker."""
        blob.path.unlink(missing_ok=True)

    def abandon(self, blob: TempBlob) -> None:
        """The index will never reference the blob: remove the file and its marker."""
        if blob.key is not None:
            (self.objects / blob.key).unlink(missing_ok=True)
        blob.path.unlink(missing_ok=True)

    def mark_for_deletion(self, key: str) -> Path:
        """Before a commit that stops referencing ``key``: a marker so a crash cannot leak it."""
        marker = self.tmp / f"{_HOST}~{os.getpid()}~{secrets.token_hex(8)}~{key.replace('/', '+')}.gc"
        with _space_errors():
            marker.touch()
        return marker

    def delete_marked(self, marker: Path, key: str) -> None:
        """After that commit: delete the superseded file, then the marker."""
        self.path(key).unlink(missing_ok=True)
        marker.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.objects / key

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def sweep(
        self,
        is_referenced: Callable[[str], bool],
        now: float | None = None,
        settle: Callable[[], None] | None = None,
        running: bool = False,
    ) -> SweepReport:
        """Remove what crashed writers left: partial spools, and placed files no row references.

        ``settle`` runs after the dead writers are known and before any reference is checked:
        it must wait out transactions those writers may still have in flight in the database.
        ``running``: this process writes too (a server sweeping while it serves), so markers
        bearing its own pid are live; at start-up they can only be an earlier process's.
        """
        report = SweepReport()
        if not self.tmp.is_dir():
            return report
        now = time.time() if now is None else now
        orphaned: list[tuple[Path, str]] = []
        for entry in self.tmp.iterdir():
            try:
                orphaned += self._dead_writer_marker(entry, now, report, running)
            except OSError as exc:
                report.errors.append(f"{entry.name}: {exc}")
        if orphaned and settle is not None:
            settle()
        for entry, key in orphaned:
            try:
                if is_referenced(key):
                    report.kept_referenced += 1
                else:
                    (self.objects / key).unlink(missing_ok=True)
                    report.removed_orphans += 1
                entry.unlink(missing_ok=True)
            except OSError as exc:
                report.errors.append(f"{entry.name}: {exc}")
        return report

    def _dead_writer_marker(
        self, entry: Path, now: float, report: SweepReport, running: bool
    ) -> list[tuple[Path, str]]:
        """A dead writer's marker and its key to judge; its partial spool is removed at once."""
        parts = entry.name.split("~")
        if len(parts) < 3 or _writer_alive(parts[0], parts[1], entry, now, running):
            report.skipped_live += len(parts) >= 3
            return []
        if entry.suffix == ".part":
            entry.unlink(missing_ok=True)
            report.removed_partial += 1
            return []
        if len(parts) != 4 or entry.suffix not in (".link", ".gc"):
            return []
        key = parts[3][: -len(entry.suffix)].replace("+", "/")
        return [(entry, key)] if _KEY_RE.fullmatch(key) else []


class BlobReader(Protocol):
    """What streaming an answer needs of the store: a file to read by key."""

    def open(self, key: str) -> BinaryIO: ...


class OpenedBlobs:
    """The files of one answer, opened together before its first byte is sent.

    A delete that commits while the answer streams unlinks them; POSIX keeps an open file's
    data to its last read, so the answer still ends whole. At most ``limit`` files are held
    open (descriptors are a per-process budget shared by every request): beyond that, and when
    the process runs out of descriptors, a file is opened when its part is reached.
    """

    def __init__(self, store: BlobStore, keys: Iterable[str], limit: int) -> None:
        self.store = store
        self._handles: dict[str, BinaryIO] = {}
        try:
            for key in keys:
                if key in self._handles:
                    continue  # an answer naming one object twice holds one handle of it
                if len(self._handles) >= limit:
                    break
                try:
                    self._handles[key] = store.open(key)
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE):
                        raise
                    break
        except BaseException:
            self.close()
            raise

    def open(self, key: str) -> BinaryIO:
        handle = self._handles.pop(key, None)
        return handle if handle is not None else self.store.open(key)

    def close(self) -> None:
        """Close what the answer did not reach (a client that left early)."""
        handles, self._handles = self._handles, {}
        for handle in handles.values():
            handle.close()


def _writer_alive(host: str, pid_text: str, entry: Path, now: float, running: bool) -> bool:
    if host != _HOST:
        # Another node's marker: only its age says whether its writer is gone.
        return now - entry.stat().st_mtime < FOREIGN_MARKER_GRACE_SECONDS
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _sync_pool() -> ThreadPoolExecutor:
    """The fsync threads every store of this process shares (a forked child starts its own)."""
    pid = os.getpid()
    with _pools_lock:
        if pid not in _pools:
            _pools.clear()
            _pools[pid] = ThreadPoolExecutor(_SYNC_THREADS, "xdsi-fsync")
        return _pools[pid]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _space_errors:
    """Turn 'no space left' into StorageFull so callers answer 0xA700 / 503, not 500."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError) and exc.errno in SPACE_ERRORS:
            raise StorageFull(f"blob store is out of space: {exc.strerror}") from exc
