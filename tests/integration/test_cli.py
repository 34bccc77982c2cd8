"""The xdsi command as a user runs it: serve, import, init-db, check-config, --version, --help."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import PIL.Image
import pydicom
import pydicom.filewriter
import pydicom.uid
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import make_settings
from tests.consistency import assert_consistent, indexed_blobs
from tests.dicomfiles import make_dataset, make_instance, pydicom_files
from xdsi import __version__
from xdsi.services.archive import Archive

PYDICOM_DATA_DIRS = sorted({str(path.parent) for path in pydicom_files()})
TINY_ALPHA = Path(get_testdata_file("DICOMDIR", read=False)).parent / "TINY_ALPHA"


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
    import_help = " ".join(run_xdsi("import", "--help").stdout.split())
    for told in ("DICOMDIRs, recognised by their content", "without File Meta Information",
                 'counted as "skipped (not DICOM)" and do not fail the import', "named on the command line",
                 "exit status is 1 when any file failed"):
        assert told in import_help


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
    summary = re.search(r"stored (\d+), duplicate (\d+), failed (\d+), skipped \(not DICOM\) (\d+)", result.stdout)
    assert summary, result.stdout
    stored, duplicates, failures, skipped = map(int, summary.groups())
    discovered = re.search(r"found (\d+) files \((\d+) DICOMDIRs expanded, (\d+) not DICOM skipped\)", result.stderr)
    assert discovered and stored + duplicates + failures == int(discovered.group(1))
    assert failures == len(failed)
    assert stored >= 120 and failures >= 20
    kinds = {path: _kind_by_pydicom(path) for path in pydicom_files()}
    assert skipped == int(discovered.group(3)) == sum(kind == "not DICOM" for kind in kinds.values())
    assert int(discovered.group(2)) == sum(kind == "DICOMDIR" for kind in kinds.values()) >= 8

    archive = Archive.open(make_settings(database_url, storage))
    try:
        assert assert_consistent(archive) == stored
        with archive.sessions() as session:
            blobs = indexed_blobs(session)
            for path in pydicom_files():
                if path.resolve() in failed or kinds[path] in ("DICOMDIR", "not DICOM"):
                    continue
                if kinds[path] == "bare":  # stored behind the File Meta Information xdsi wrote
                    sent = path.read_bytes()
                    rows = [row for row in blobs if (storage / "objects" / row[0]).read_bytes().endswith(sent)]
                else:
                    rows = [row for row in blobs if row[1] == _sha256(path)]
                assert rows, f"{path} was neither stored nor reported as failed"
    finally:
        archive.close()
    reasons = " ".join(failed.values())
    for expected in ("missing", "declares"):  # files that are not DICOM at all were skipped
        assert expected in reasons


def _kind_by_pydicom(path: Path) -> str:
    """What pydicom makes of a file: DICOMDIR, PS3.10 file, bare data set, or not DICOM."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - whatever pydicom cannot read is not DICOM to this check
        return "not DICOM"
    if ds.preamble is not None:  # 'DICM' found after it
        return "DICOMDIR" if ds.file_meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10" else "file"
    return "bare" if "SOPInstanceUID" in ds and "SOPClassUID" in ds else "not DICOM"


def test_import_reports_missing_paths_and_dicomdir_references(tmp_path: Path) -> None:
    folder = tmp_path / "cd"
    folder.mkdir()
    (folder / "IMG1").write_bytes(make_instance())
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", "--no-progress", str(folder), str(tmp_path / "nope"), env=env)
    assert result.returncode == 1
    assert "stored 1, duplicate 0, failed 1, skipped (not DICOM) 0" in result.stdout
    assert f"failed: {tmp_path / 'nope'}: no such file or folder" in result.stderr
    again = run_xdsi("import", "--no-progress", str(folder), env=env)
    assert again.returncode == 0 and "stored 0, duplicate 1, failed 0" in again.stdout


def _png() -> bytes:
    image = io.BytesIO()
    PIL.Image.new("RGB", (8, 8), (200, 30, 30)).save(image, format="PNG")
    return image.getvalue()


def _bare(ds: pydicom.Dataset) -> bytes:
    """The data set alone, Implicit VR Little Endian, without preamble, 'DICM' or File Meta Information."""
    out = io.BytesIO()
    del ds.file_meta
    pydicom.filewriter.dcmwrite(out, ds, implicit_vr=True, little_endian=True)
    return out.getvalue()


@pytest.fixture
def cd_export(tmp_path: Path) -> Path:
    """A folder as found on an old CD: DICOM files, a DICOMDIR under another name, a viewer's leftovers."""
    folder = tmp_path / "cd"
    (folder / "viewer").mkdir(parents=True)
    (folder / "IMG1").write_bytes(make_instance())
    (folder / "viewer" / "readme.txt").write_text("Insert the CD and run VIEWER.EXE\n")
    (folder / "viewer" / "logo.png").write_bytes(_png())
    (folder / "OLD_EXPORT").write_bytes(_bare(make_dataset()))
    shutil.copytree(TINY_ALPHA, folder / "dir")  # a DICOMDIR, the 50 images it lists and a README
    (folder / "dir" / "DICOMDIR").rename(folder / "dir" / "INDEX")
    return folder


def test_import_of_a_folder_skips_what_is_not_dicom(cd_export: Path, tmp_path: Path) -> None:
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", "--no-progress", str(cd_export), env=env)
    assert result.returncode == 0, result.stderr
    assert "found 52 files (1 DICOMDIRs expanded, 3 not DICOM skipped)" in result.stderr
    assert "stored 52, duplicate 0, failed 0, skipped (not DICOM) 3" in result.stdout
    assert "failed:" not in result.stderr


@pytest.mark.parametrize("name", ["viewer/readme.txt", "viewer/logo.png"])
def test_import_of_a_named_file_that_is_not_dicom_fails(cd_export: Path, tmp_path: Path, name: str) -> None:
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", "--no-progress", str(cd_export / name), env=env)
    assert result.returncode == 1
    assert f"failed: {cd_export / name}: not a DICOM PS3.10 file" in result.stderr
    assert "stored 0, duplicate 0, failed 1, skipped (not DICOM) 0" in result.stdout


def _in_terminal(*args: str, env: dict[str, str]) -> str:
    """Run xdsi with a pseudo-terminal as its standard streams; return what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    process = subprocess.Popen([sys.executable, "-m", "xdsi", *args], stdin=follower, stdout=follower,
                               stderr=follower, env={**_clean_env(), **env})
    os.close(follower)
    received = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program ended and the terminal closed
            break
        if not chunk:
            break
        received.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    return b"".join(received).decode(errors="replace")


def test_log_lines_do_not_break_the_progress_bar(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    study = pydicom.uid.generate_uid()
    for number, name in enumerate(("Doe^John", "Roe^Jane", "Poe^Jim")):
        (folder / f"{number}.dcm").write_bytes(make_instance(study_uid=study, patient_name=name))
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    screen = _in_terminal("import", "--batch", "1", str(folder), env=env)
    # What stays on each line is what follows its last carriage return (the terminal sends "\r\n"
    # for a newline), without terminal controls.
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.removesuffix("\r").rsplit("\r", 1)[-1])
             for line in screen.split("\n")]
    logged = [line for line in lines if "stored " in line and "with a difference" in line]
    assert len(logged) == 2, screen
    for line in logged:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", line), line
    assert any(re.search(r"100%\|.*\| 3/3 ", line) for line in lines), screen


def test_import_shows_progress(tmp_path: Path) -> None:
    for number in range(5):
        (tmp_path / f"{number}.dcm").write_bytes(make_instance())
    env = {"XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "XDSI_STORAGE": str(tmp_path / "store")}
    result = run_xdsi("import", str(tmp_path), env=env)
    assert result.returncode == 0
    assert re.search(r"5/5 \[.*(file/s|s/file)\]", result.stderr), result.stderr  # the rate as the load allows


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
            except OSError as exc:
                if process.poll() is not None:
                    raise AssertionError("server exited: " + (process.stdout.read() if process.stdout else "")) from exc
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
