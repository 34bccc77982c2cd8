"""Group commit in the blob store: what a batch fsyncs before the index may name its files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from xdsi.repository import blobs as blobs_module
from xdsi.repository.blobs import BlobStore


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsynced, in any order; the real fsyncs still run."""
    seen: list[str] = []
    real_file, real_dir = blobs_module._fsync_file, blobs_module._fsync_dir

    def file(path: Path) -> None:
        seen.append(str(path))
        real_file(path)

    def folder(path: Path) -> None:
        seen.append(str(path))
        real_dir(path)

    monkeypatch.setattr(blobs_module, "_fsync_file", file)
    monkeypatch.setattr(blobs_module, "_fsync_dir", folder)
    return seen


def _placed(blobs: BlobStore, data: bytes) -> blobs_module.TempBlob:
    blob = blobs.spool(io.BytesIO(data), 1 << 20)
    blobs.place(blob, ["1.2.3", "1.2.3.4", "1.2.3.4.5"])  # the same UIDs: the same fan-out folders
    return blob


def test_a_new_fan_out_folder_is_synced_with_its_parents_then_alone(tmp_path: Path, synced: list[str]) -> None:
    blobs = BlobStore(tmp_path / "store")
    blobs.ensure()
    first = _placed(blobs, b"first")
    blobs.sync([first])
    leaf = (blobs.objects / (first.key or "")).parent
    assert sorted(synced) == sorted([str(first.path), str(leaf), str(leaf.parent), str(blobs.objects)])
    synced.clear()
    second = _placed(blobs, b"second")
    blobs.sync([second])
    # The folders' own entries were synced by the first batch: only the new file and its folder now.
    assert sorted(synced) == sorted([str(second.path), str(leaf)])
    assert os.path.exists(blobs.objects / (second.key or ""))
