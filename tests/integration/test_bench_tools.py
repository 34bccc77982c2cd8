"""bench/corpus.py and bench/dicomweb.py as a user runs them, against a real ``xdsi serve``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.live import LiveServer, clean_env

BENCH = Path(__file__).resolve().parents[2] / "bench"
TINY = ("--studies", "2", "--series", "1", "--instances", "2", "--pixel-scale", "1", "--frames", "3")
QUICK = ("--trials", "2", "--warmup", "1", "--study-trials", "1", "--stow-single", "2",
         "--clients", "1,2", "--seconds", "0.3")


def bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=120, env=clean_env())


def write_corpus(folder: Path, seed: int = 7) -> dict:
    result = bench("corpus.py", "--out", str(folder), "--seed", str(seed), *TINY)
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "manifest.json").read_text())


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("bench-server")
    live = LiveServer(f"sqlite:///{folder / 'x.db'}", folder / "store")
    yield live
    live.stop()


def test_corpus_is_deterministic_and_its_manifest_lists_every_file(tmp_path: Path) -> None:
    first, second = write_corpus(tmp_path / "a"), write_corpus(tmp_path / "b")
    assert first == second and digests(tmp_path / "a") == digests(tmp_path / "b")
    listed = {i["path"]: (st, se, i) for st in first["studies"] for se in st["series"] for i in se["instances"]}
    assert first["totals"]["instances"] == 2 * 1 * 2 + 2 == len(listed)
    assert set(digests(tmp_path / "a")) == {*listed, "manifest.json"}
    for path, (st, se, i) in listed.items():
        ds = pydicom.dcmread(tmp_path / "a" / path)
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
            st["study_uid"], se["series_uid"], i["sop_uid"])
        assert (ds.PatientID, ds.StudyDate, ds.Modality) == (st["patient_id"], st["study_date"], se["modality"])
        assert i["size"] == (tmp_path / "a" / path).stat().st_size and int(ds.get("NumberOfFrames", 1)) == i["frames"]
    assert [i["frames"] for _, _, i in listed.values()] == [1, 1, 1, 1, 3, 30]
    other = write_corpus(tmp_path / "c", seed=8)
    assert {st["study_uid"] for st in other["studies"]}.isdisjoint(st["study_uid"] for st in first["studies"])


def test_benchmark_runs_every_phase_against_xdsi_and_checks_the_answers(tmp_path: Path, server: LiveServer) -> None:
    manifest = write_corpus(tmp_path / "corpus")
    out = tmp_path / "result.json"
    result = bench("dicomweb.py", "run", "--base-url", server.root, "--corpus", str(tmp_path / "corpus"),
                   "--out", str(out), "--label", "tiny-xdsi", "--server-pid", str(server.process.pid), *QUICK)
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(out.read_text())
    assert run["correctness_failures"] == []
    phases = run["phases"]
    assert list(phases) == ["stow", "qido", "wado", "concurrency"]
    assert phases["stow"]["per_request_1"]["n"] == 2 and phases["stow"]["per_request_50"]["n"] == 1
    assert manifest["totals"]["instances"] == 6
    assert set(phases["qido"]) == {"studies_by_PatientID", "studies_by_StudyDate_range", "all_studies"}
    assert set(phases["wado"]) == {"instance", "study_metadata", "study"}
    for test in [*phases["stow"].values(), *phases["qido"].values(), *phases["wado"].values()]:
        assert test["n"] >= 1 and test["failures"] == 0 and test["median_ms"] > 0 and "server_cpu_ms_per_req" in test
    assert set(phases["concurrency"]) == {"retrieve_instance", "qido_by_PatientID", "study_metadata", "stow_instance"}
    for levels in phases["concurrency"].values():
        assert set(levels) == {"c1", "c2"}
        assert all(level["n"] > 0 and level["errors"] == 0 for level in levels.values())
    report = bench("dicomweb.py", "report", str(out), str(out))
    assert report.returncode == 0 and report.stdout.count("tiny-xdsi") == 2
    assert "concurrency/stow_instance/c2" in report.stdout


def test_wrong_answers_give_exit_status_2(tmp_path: Path, server: LiveServer) -> None:
    """A corpus the server never received: its searches and retrieves must be reported wrong."""
    write_corpus(tmp_path / "unsent", seed=99)
    out = tmp_path / "result.json"
    result = bench("dicomweb.py", "run", "--base-url", server.root, "--corpus", str(tmp_path / "unsent"),
                   "--phases", "qido,wado", "--out", str(out), *QUICK)
    assert result.returncode == 2, result.stdout + result.stderr
    failures = json.loads(out.read_text())["correctness_failures"]
    assert any(f.startswith("qido/all_studies:") for f in failures)
    assert any(f.startswith("wado/instance:") and "HTTP 404" in f for f in failures)


def test_a_server_off_loopback_is_refused_unless_allowed(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus")
    result = bench("dicomweb.py", "run", "--base-url", "http://192.0.2.1/dicom-web", "--corpus", str(tmp_path / "corpus"))
    assert result.returncode == 2 and "not on a loopback address" in result.stderr


def test_stow_cpu_measures_a_real_server_and_profiles_the_same_requests(tmp_path: Path) -> None:
    """bench/stow_cpu.py: its own one-worker server answers every single-instance STOW-RS (the script
    stops on any other answer) and the worker's CPU per request is a positive figure per round."""
    manifest = write_corpus(tmp_path / "corpus")
    modality = next(se["modality"] for st in manifest["studies"] for se in st["series"] if se["modality"] in ("CT", "MR"))
    out = tmp_path / "cpu.json"
    result = bench("stow_cpu.py", "--corpus", str(tmp_path / "corpus"), "--modality", modality,
                   "--requests", "4", "--rounds", "2", "--warmup", "1", "--floor", "--out", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert len(figures["worker_cpu_ms_per_request"]) == 2 and figures["min_ms"] > 0
    # --floor: the same bodies refused unread (415, or the script stops) on the same connection.
    assert len(figures["floor_415_user_system_ms_per_request"]) == 2 and figures["floor_415_median_ms"] >= 0
    for whole, split in zip(figures["worker_cpu_ms_per_request"], figures["user_system_ms_per_request"], strict=True):
        assert abs(whole - split["user"] - split["system"]) < 0.002
    assert figures["requests_per_round"] == 4 and figures["file_bytes"] > 1000
    # --against: a second server, of another checkout (here the same one), measured in turn.
    paired = tmp_path / "paired.json"
    result = bench("stow_cpu.py", "--corpus", str(tmp_path / "corpus"), "--modality", modality, "--requests", "3",
                   "--rounds", "2", "--warmup", "1", "--against", str(Path(__file__).resolve().parents[2]),
                   "--out", str(paired))
    assert result.returncode == 0, result.stderr
    figures = json.loads(paired.read_text())
    assert len(figures["against"]["worker_cpu_ms_per_request"]) == 2 and figures["against"]["min_ms"] > 0
    pairs = zip(figures["difference_ms_per_round"], figures["worker_cpu_ms_per_request"],
                figures["against"]["worker_cpu_ms_per_request"], strict=True)
    assert all(abs(difference - (a - b)) < 0.002 for difference, a, b in pairs)  # each figure rounded to 3 places
    profiled = bench("stow_cpu.py", "--corpus", str(tmp_path / "corpus"), "--modality", modality,
                     "--profile", "3", "--top", "30")
    assert profiled.returncode == 0, profiled.stderr
    assert "ms per request" in profiled.stdout and "xdsi/web/stow_rs.py" in profiled.stdout
