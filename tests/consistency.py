"""Store invariants checked after every store test and every crash."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from xdsi.repository.models import Instance
from xdsi.services.archive import Archive


def indexed_blobs(session: Session) -> list[tuple[str, str, int]]:
    """(blob key, sha256, size) of every indexed instance."""
    return [(key, sha256, size) for key, sha256, size in session.execute(
        select(Instance.blob_key, Instance.sha256, Instance.size))]


def blob_sha256(archive: Archive, key: str) -> str:
    digest = hashlib.sha256()
    with archive.blobs.open(key) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def assert_consistent(archive: Archive, *, allow_orphans: bool = False) -> int:
    """Every row has its file with the recorded size and sha256; files without rows only if allowed.

    Returns the number of indexed instances.
    """
    with archive.sessions() as session:
        rows = indexed_blobs(session)
    keys = set()
    for key, sha256, size in rows:
        path = archive.blobs.path(key)
        assert path.is_file(), f"indexed instance lacks its file {key}"
        assert path.stat().st_size == size, f"{key}: size differs from the index"
        assert blob_sha256(archive, key) == sha256, f"{key}: sha256 differs from the index"
        keys.add(key)
    on_disk = {
        str(path.relative_to(archive.blobs.objects)) for path in archive.blobs.objects.rglob("*.dcm")
    }
    if not allow_orphans:
        assert on_disk == keys, f"files without index rows: {sorted(on_disk - keys)[:5]}"
    leftovers = list(archive.blobs.tmp.iterdir()) if archive.blobs.tmp.exists() else []
    assert not leftovers, f"temporary files left behind: {leftovers[:5]}"
    return len(rows)
