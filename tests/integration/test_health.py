"""/healthz over real HTTP on a real small filesystem: low space is degraded (200), a full store 503."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path

from tests.integration.test_stow_limits import tiny_filesystem
from tests.live import LiveServer


def test_a_store_with_less_free_space_than_min_free_bytes_is_degraded(tmp_path: Path) -> None:
    """1 MiB free is far under the 1 GiB default: still 200, so a load balancer keeps the node."""
    with tiny_filesystem(tmp_path / "store", "1m") as store:
        server = LiveServer(f"sqlite:///{tmp_path / 'xdsi.db'}", store, workers=1)
        try:
            reply = server.request("GET", "/healthz")
        finally:
            server.stop()
    assert reply.status == 200
    answer = json.loads(reply.body)
    assert answer["status"] == "degraded" and answer["database"] == "ok"
    assert answer["store"].startswith("low space: ") and f"min_free_bytes={1 << 30}" in answer["store"]


def test_a_store_above_min_free_bytes_is_ok(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "store", "1m") as store:
        server = LiveServer(f"sqlite:///{tmp_path / 'xdsi.db'}", store, workers=1, min_free_bytes="65536")
        try:
            reply = server.request("GET", "/healthz")
        finally:
            server.stop()
    assert (reply.status, json.loads(reply.body)) == (200, {"database": "ok", "status": "ok", "store": "ok"})


def test_a_full_store_is_unhealthy_and_says_so_without_a_path(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "store", "1m") as store:
        server = LiveServer(f"sqlite:///{tmp_path / 'xdsi.db'}", store, workers=1)
        try:
            filler = store / "filler"
            with suppress(OSError):  # ENOSPC once the filesystem is full, which is the point
                filler.write_bytes(bytes(2 << 20))
            reply = server.request("GET", "/healthz")  # LiveServer.request checks it names no path
            filler.unlink()
            recovered = server.request("GET", "/healthz")
        finally:
            server.stop()
    assert reply.status == 503
    answer = json.loads(reply.body)
    assert answer["status"] == "unhealthy" and "out of space" in answer["store"]
    assert recovered.status == 200 and json.loads(recovered.body)["status"] == "degraded"
