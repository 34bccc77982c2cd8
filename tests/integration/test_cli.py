"""The xdsi command as a user runs it: serve, import, init-db, check-config, --version, --help."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_instance, pydicom_files
from xdsi import __version__
from xdsi.repository import index
from xdsi.services.archive import Archive

PYDICOM_DATA_DIRS = sorted({str(path.parent) for path in pydicom_files()})


def run_xdsi(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdsi", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_clean_env(), **(env or {})},
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("XDSI_")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version() -> None:
    result = run_xdsi("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"xdsi {__version__}"


def test_help_explains_every_command() -> None:
    result = run_xdsi("--help")
    assert result.returncode == 0
    for command in ("serve", "import", "init-db", "check-config"):
        assert command in result.stdout
    assert "XDSI_DATABASE_URL" in result.stdout
    import_help = run_xdsi("import", "--help").stdout
    assert "DICOMDIR" in import_help and "exit status is 1" in import_help


# Every protocol name a user might look for; --help may name one only if the server serves it.
PROTOCOL_NAMES = ("WADO-URI", "WADO-WS", "RAD-69", "WADO-RS", "STOW-RS", "QIDO-RS")


def test_help_names_only_the_protocols_the_server_serves(tmp_path: Path) -> None:
    from xdsi.app import create_app

    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store")
    archive = Archive.open(settings)
    try:
        archive.prepare()
        endpoints = create_app(settings, archive).config["XDSI_ENDPOINTS"]
        served = " ".join(endpoint.name for endpoint in endpoints)
    finally:
        archive.close()
    helps = run_xdsi("--help").stdout + run_xdsi("serve", "--help").stdout
    named = {name for name in PROTOCOL_NAMES if name in helps}
    assert named, helps
    assert named <= {name for name in PROTOCOL_NAMES if name in served}, (named, served)


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    env = {"XDSI_DATABASE_URL": "postgresql://xdsi@db.example/xdsi", "XDSI_DATABASE_PASSWORD": "s3cret"}
    result = run_xdsi("check-config", env=env)
    assert result.returncode == 0
    assert "s3cret" not in result.stdout
    assert re.search(r"database_password\s+= \*{8}\s+\[environment\]", result.stdout)
    assert re.search(r"workers\s+= 2\s+\[default\]", result.stdout)


def test_check_config_names_bad_keys(tmp_path: Path) -> None:
    result = run_xdsi("check-config", env={"XDSI_WORKERS": "lots", "XDSI_DUPLICATE_POLICY": "maybe"})
    assert result.returncode == 2
    assert "XDSI_WORKERS: 'lots' is not an integer" in result.stderr
    assert "XDSI_DUPLICATE_POLICY: 'maybe' is not one of" in result.stderr


def test_init_db_creates_the_schema(database_url: str, tmp_path: Path) -> None:
    result = run_xdsi("init-db", "--database-url", database_url, "--storage", str(tmp_path / "store"))
    assert result.returncode == 0, result.stderr
    assert "schema at revision" in result.stdout
    assert (tmp_path / "store" / "objects").is_dir()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_of_pydicom_files_stores_every_valid_file_and_names_every_invalid_one(
    database_url: str, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    result = run_xdsi("import", "--no-progress", "--database-url", database_url, "--storage", str(storage),
                      *PYDICOM_DATA_DIRS)
    assert result.returncode == 1, result.stderr  # pydicom ships invalid files on purpose
    failed = {}
    for line in result.stderr.splitlines():
        if line.startswith("failed: "):
            path, _, reason = line[len("failed: "):].partition(": ")
            assert reason.strip(), line
            failed[Path(path).resolve()] = reason
    summary = re.search(r"stored (\d+), duplicate (\d+), failed (\d+)", result.stdout)
    assert summary, result.stdout
    stored, duplicates, failures = map(int, summary.groups())
    discovered = re.search(r"found (\d+) files", result.stderr)
    assert discovered and stored + duplicates + failures == int(discovered.group(1))
    assert failures == len(failed)
    assert stored >= 120 and failures >= 20

    archive = Archive.open(make_settings(database_url, storage))
    try:
        assert assert_consistent(archive) == stored
        with archive.sessions() as session:
            for path in pydicom_files():
                resolved = path.resolve()
                if resolved in failed or path.name.upper() == "DICOMDIR":
                    continue
                digest = _sha256(path)
                rows = [row for row in index.all_blob_keys(session) if row[1] == digest]
                assert rows, f"{path} was neither stored nor reported as failed"
    finally:
        archive.close()
    reasons = " ".join(failed.values())
    for expected in ("DICM", "missing", "declares"):
        assert expected in reasons


def test_import_reports_missing_paths_and_dicomdir_references(tmp_path: Path) -> None:
    folder = tmp_path / "cd"
    folder.mkdir()
    (folder / "IMG1").write_bytes(make_instance())
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", "--no-progress", str(folder), str(tmp_path / "nope"), env=env)
    assert result.returncode == 1
    assert "stored 1, duplicate 0, failed 1" in result.stdout
    assert f"failed: {tmp_path / 'nope'}: no such file or folder" in result.stderr
    again = run_xdsi("import", "--no-progress", str(folder), env=env)
    assert again.returncode == 0 and "stored 0, duplicate 1, failed 0" in again.stdout


def test_import_shows_progress(tmp_path: Path) -> None:
    for number in range(5):
        (tmp_path / f"{number}.dcm").write_bytes(make_instance())
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", str(tmp_path), env=env)
    assert result.returncode == 0
    assert re.search(r"5/5 \[.*file/s\]", result.stderr), result.stderr


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``xdsi serve`` as a subprocess on a free loopback port; yields (base URL, banner)."""
    port = free_port()
    env = {**_clean_env(), "XDSI_DATABASE_URL": database_url, "XDSI_STORAGE": str(tmp_path / "store")}
    process = subprocess.Popen(
        [sys.executable, "-m", "xdsi", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    banner = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError("server exited: " + (process.stdout.read() if process.stdout else ""))
                time.sleep(0.2)
        else:
            raise AssertionError("server did not answer within 60 s")
        assert process.stdout is not None
        for line in process.stdout:
            banner.append(line)
            if "/healthz" in line:
                break
        yield base, "".join(banner)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_serve_answers_healthz_and_announces_its_urls(served: tuple[str, str]) -> None:
    base, banner = served
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        assert response.status == 200
        body = json.load(response)
    assert body == {"status": "ok", "database": "ok", "store": "ok"}
    assert f"xdsi {__version__} on {base}" in banner
    assert f"{base}/healthz" in banner


def test_unknown_path_is_a_plain_404(served: tuple[str, str]) -> None:
    base, _banner = served
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(base + "/nothing-here", timeout=5)
    with caught.value as error:
        assert error.code == 404
        assert error.headers["Content-Type"].startswith("text/plain")
        assert error.read().startswith(b"404 Not Found: ")
