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


def _three_placed(tmp_path: Path) -> tuple[BlobStore, list[str]]:
    blobs = BlobStore(tmp_path / "store")
    blobs.ensure()
    keys = []
    for n in range(3):
        blob = blobs.spool(io.BytesIO(b"instance %d" % n), 1 << 20)
        keys.append(blobs.place(blob, ["1.2.3", "1.2.3.4", f"1.2.3.4.{n}"]))
    return blobs, keys


def test_opened_blobs_outlive_their_unlink_up_to_the_limit_and_open_the_rest_when_reached(tmp_path: Path) -> None:
    blobs, keys = _three_placed(tmp_path)
    opened = blobs_module.OpenedBlobs(blobs, keys, limit=2)
    for key in keys:  # a delete commits while the answer streams
        blobs.path(key).unlink()
    try:
        for n, key in enumerate(keys[:2]):
            with opened.open(key) as handle:
                assert handle.read() == b"instance %d" % n
        with pytest.raises(FileNotFoundError):
            opened.open(keys[2])  # past the limit: opened only when its part is reached
    finally:
        opened.close()


def test_opened_blobs_close_what_the_answer_did_not_reach(tmp_path: Path) -> None:
    blobs, keys = _three_placed(tmp_path)
    opened = blobs_module.OpenedBlobs(blobs, keys, limit=3)
    first = opened.open(keys[0])
    held = list(opened._handles.values())
    opened.close()
    assert len(held) == 2 and all(handle.closed for handle in held)
    assert not first.closed  # the answer's own file is the answer's to close
    first.close()


def test_opened_blobs_hold_one_handle_of_a_key_named_twice(tmp_path: Path) -> None:
    """An answer naming one document twice: one handle, closed by close() (no handle left to the collector)."""
    blobs, keys = _three_placed(tmp_path)
    opened = blobs_module.OpenedBlobs(blobs, [keys[0], keys[0], keys[1]], limit=3)
    held = list(opened._handles.values())
    assert len(held) == 2
    opened.close()
    assert all(handle.closed for handle in held)


def test_a_sweep_while_running_keeps_this_process_own_writes_and_a_start_up_sweep_removes_them(tmp_path: Path) -> None:
    """A server worker sweeps while its own threads write; at start-up its pid can only be an earlier process's."""
    blobs = BlobStore(tmp_path)
    blobs.ensure()
    partial = blobs.spool(io.BytesIO(b"x" * 10), 1 << 20)
    placed = _placed(blobs, b"y" * 10)
    assert placed.key is not None
    report = blobs.sweep(lambda key: False, running=True)
    assert partial.path.exists() and blobs.path(placed.key).exists()
    assert report.skipped_live == 2 and report.removed_partial == report.removed_orphans == 0
    report = blobs.sweep(lambda key: False)
    assert not partial.path.exists() and not blobs.path(placed.key).exists()
    assert (report.removed_partial, report.removed_orphans) == (1, 1)
    assert not list(blobs.tmp.iterdir())


def test_the_first_file_of_a_fan_out_folder_makes_the_folder(tmp_path: Path) -> None:
    """Placing links the file straight away; a missing fan-out folder is made then, and kept."""
    blobs = BlobStore(tmp_path / "store")
    blobs.ensure()
    first = _placed(blobs, b"first")
    folder = (blobs.objects / (first.key or "")).parent
    second = _placed(blobs, b"second")
    assert folder == (blobs.objects / (second.key or "")).parent
    assert sorted(path.name for path in folder.iterdir()) == sorted([Path(first.key or "").name,
                                                                     Path(second.key or "").name])
    assert (blobs.objects / (second.key or "")).read_bytes() == b"second"


def test_sync_of_nothing_does_nothing(tmp_path: Path, synced: list[str]) -> None:
    blobs = BlobStore(tmp_path / "store")
    blobs.ensure()
    blobs.sync([])
    assert synced == []
