"""Import files and folders: recursive discovery, DICOMDIR expansion, batched group commits.

What a file is comes from its content, never its name: a DICOMDIR is a PS3.10 file whose
Media Storage SOP Class is the Media Storage Directory (PS3.10 8.6), and a file found in a
folder that is neither a PS3.10 file nor a data set without File Meta Information (a viewer's
executable, a text file, an image) is skipped. A file named on the command line is always
offered, so a mistyped path fails with its reason.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset

from xdsi.dicom import uids
from xdsi.dicom.parsing import identify
from xdsi.errors import InstanceRejected, NotDicom
from xdsi.services.store import InstanceStore, Outcome, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A file that could not be offered to the store at all, with the reason."""

    path: Path
    reason: str


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    dicomdirs: int = 0
    skipped: list[Path] = field(default_factory=list)  # found in a folder, plainly not DICOM


@dataclass
class ImportReport:
    """What an import did: instances stored, instances already held (a duplicate, or one the
    duplicate policy ignored), and every file that failed or was stored with a warning."""

    stored: int = 0
    duplicates: int = 0
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


class _Kind(enum.Enum):
    INSTANCE = "instance"  # or what the store will refuse with a reason
    DICOMDIR = "DICOMDIR"
    NOT_DICOM = "not DICOM"


def discover(paths: Iterable[str | os.PathLike[str]], exclude: Iterable[Path] = ()) -> Discovery:
    """Every regular file under ``paths``, once; a DICOMDIR contributes its referenced files instead of itself.

    Files under ``exclude`` (the archive's own store and database) are never offered, nor read.
    """
    found = Discovery()
    seen: set[Path] = set()
    excluded = [Path(p).resolve() for p in exclude]

    def first_sight(path: Path) -> bool:
        resolved = path.resolve()
        if resolved in seen or any(resolved == e or resolved.is_relative_to(e) for e in excluded):
            return False
        seen.add(resolved)
        return True

    for raw in paths:
        path = Path(raw)
        walked = path.is_dir()
        if walked:
            candidates: Iterator[Path] = _walk_sorted(path)
        elif path.is_file():
            candidates = iter([path])
        else:
            found.problems.append(Problem(path, "no such file or folder"))
            continue
        for candidate in candidates:
            if not candidate.is_file() or not first_sight(candidate):
                continue
            kind = _kind(candidate)
            if kind is _Kind.DICOMDIR:
                found.dicomdirs += 1
                found.files.extend(
                    referenced for referenced in _dicomdir_references(candidate, found.problems)
                    if first_sight(referenced)
                )
            elif kind is _Kind.NOT_DICOM and walked:
                log.debug("skipped (not DICOM): %s", candidate)
                found.skipped.append(candidate)
            else:
                found.files.append(candidate)
    return found


def _kind(path: Path) -> _Kind:
    """What ``path`` holds, from its File Meta Information or first elements only."""
    try:
        with open(path, "rb") as fp:
            header = identify(fp, os.fstat(fp.fileno()).st_size)
    except NotDicom:
        return _Kind.NOT_DICOM
    except (InstanceRejected, OSError):
        return _Kind.INSTANCE  # the store names what is wrong with it
    if isinstance(header, FileMetaDataset) and header.get("MediaStorageSOPClassUID") == uids.MEDIA_STORAGE_DIRECTORY:
        return _Kind.DICOMDIR
    return _Kind.INSTANCE


def _walk_sorted(folder: Path) -> Iterator[Path]:
    """Files below ``folder`` in name order, so imports are repeatable."""
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield Path(root) / name


def _dicomdir_references(dicomdir: Path, problems: list[Problem]) -> list[Path]:
    """Files a DICOMDIR references, kept inside its folder (pydicom CVE-2026-32711 class of bug)."""
    try:
        ds = pydicom.dcmread(dicomdir, force=False)
        records = ds.get("DirectoryRecordSequence") or []
    except Exception as exc:  # noqa: BLE001 - any parse failure of an untrusted file is reported, not raised
        problems.append(Problem(dicomdir, f"DICOMDIR cannot be read: {exc}"))
        return []
    root = dicomdir.parent.resolve()
    result = []
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        target = root.joinpath(*parts).resolve()
        if not target.is_relative_to(root):
            problems.append(Problem(dicomdir, f"DICOMDIR references {'/'.join(parts)!r} outside its folder"))
        elif not target.is_file():
            problems.append(Problem(target, f"referenced by {dicomdir} but missing"))
        else:
            result.append(target)
    return result


def import_files(
    store: InstanceStore,
    files: list[Path],
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Store ``files`` in batches, one transaction per batch; report every outcome."""
    report = ImportReport()
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        with ExitStack() as stack:
            opened = []
            for path in batch:
                try:
                    opened.append((path, stack.enter_context(open(path, "rb"))))
                except OSError as exc:
                    report.failures.append(Problem(path, f"cannot be read: {exc.strerror}"))
            outcomes = store.store(handle for _path, handle in opened)
        for (path, _handle), outcome in zip(opened, outcomes, strict=True):
            _account(report, path, outcome)
        if progress is not None:
            progress(len(batch))
    return report


def _account(report: ImportReport, path: Path, outcome: Outcome) -> None:
    if outcome.status is Status.FAILED:
        report.failures.append(Problem(path, outcome.reason))
    elif outcome.status in (Status.DUPLICATE, Status.IGNORED):
        report.duplicates += 1
    else:
        report.stored += 1
    for warning in outcome.warnings:
        report.warnings.append(Problem(path, warning))
