"""SIGKILL during ingest, 60 times per database: the index and the store stay consistent."""

from __future__ import annotations

from pathlib import Path

from bench.crash import run_crash_loop
from tests.conftest import make_settings

KILLS = 60


def test_kill_during_ingest_leaves_whole_instances_or_nothing(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "store", duplicate_policy="overwrite")
    report = run_crash_loop(settings, KILLS, payload_count=30, max_delay=0.3, seed=7)
    assert report.iterations == KILLS
    assert report.violations == []
    assert report.acknowledged > 0
    # The kills landed inside writes: partial spools and placed-but-unsettled files were swept.
    assert report.sweep["part"] + report.sweep["link"] + report.sweep["gc"] > 0
