"""Import files and folders: recursive discovery, DICOMDIR expansion, batched group commits."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from xdsi.services.store import InstanceStore, Outcome, Status


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


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


def discover(paths: Iterable[str | os.PathLike[str]], exclude: Iterable[Path] = ()) -> Discovery:
    """Every regular file under ``paths``, once; a DICOMDIR contributes its referenced files instead of itself.

    Files under ``exclude`` (the archive's own store and database) are never offered.
    """
    found = Discovery()
    seen: set[Path] = set()
    excluded = [Path(p).resolve() for p in exclude]

    def add(path: Path) -> None:
        resolved = path.resolve()
        if any(resolved == e or resolved.is_relative_to(e) for e in excluded):
            return
        if resolved not in seen:
            seen.add(resolved)
            found.files.append(path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates: Iterator[Path] = _walk_sorted(path)
        elif path.is_file():
            candidates = iter([path])
        else:
            found.problems.append(Problem(path, "no such file or folder"))
            continue
        for candidate in candidates:
            if candidate.name.upper() == "DICOMDIR":
                found.dicomdirs += 1
                for referenced in _dicomdir_references(candidate, found.problems):
                    add(referenced)
            elif candidate.is_file():
                add(candidate)
    return found


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
    except Exception as exc:  # any parse failure of an untrusted file is reported, not raised
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
        for (path, _handle), outcome in zip(opened, outcomes):
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
