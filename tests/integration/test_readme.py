"""The README's tour, run as a newcomer runs it: `make serve` in one terminal, the rest in another.

The commands are read from README.md itself, so a change to the README that breaks a command
breaks this test. Only the address changes (a free port instead of 8080, chosen with
``XDSI_BIND`` as the README says), and the data goes to a temporary folder instead of ``./var``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from tests.live import clean_env, free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ADDRESS = "127.0.0.1:8080"


def tour_blocks() -> list[str]:
    """The ```sh blocks of the README section "A short tour", in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## A short tour\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## A short tour' section"
    return re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)


@pytest.fixture
def served_by_make(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The tour's first terminal: its block run by bash in the repository, on a free port."""
    blocks = tour_blocks()
    assert blocks and blocks[0].strip() == "make serve", blocks[:1]
    address = f"127.0.0.1:{free_port()}"
    env = {
        **clean_env(),
        "XDSI_DATABASE_URL": f"sqlite:///{tmp_path / 'xdsi.db'}",
        "XDSI_STORAGE": str(tmp_path / "store"),
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(["bash", "-c", blocks[0]], cwd=REPO, env={**env, "XDSI_BIND": address},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/healthz", timeout=2).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("make serve did not answer: " + (tmp_path / "serve.log").read_text()) from exc
                time.sleep(0.2)
        yield address, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def test_the_tour_runs_top_to_bottom(served_by_make: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    address, env = served_by_make
    work = tmp_path / "second-terminal"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    script = "\n".join(tour_blocks()[1:]).replace(DEFAULT_ADDRESS, address)
    assert address in script
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"status":"ok"' in result.stdout
    assert "stored " in result.stdout and ", failed " in result.stdout

    original = Path(get_testdata_file("CT_small.dcm"))
    assert (work / "ct.dcm").read_bytes() == original.read_bytes()
    assert (work / "wado.dcm").read_bytes() == original.read_bytes()
    with Image.open(work / "wado.jpg") as rendered:
        assert (rendered.format, rendered.height) == ("JPEG", 64)
    anonymized = pydicom.dcmread(work / "anonymized.dcm")
    assert anonymized.PatientName == "" and anonymized.PixelData == pydicom.dcmread(original).PixelData
    report = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    meaning = str(report.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning)
    assert (work / "report.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    assert meaning in (work / "report.html").read_text("utf-8") and meaning in (work / "report.txt").read_text("latin-1")
    assert original.read_bytes() in (work / "rad69.mtom").read_bytes()
    pixels = pydicom.dcmread(original).PixelData
    assert (work / "first-kilobyte").read_bytes() == pixels[:1024]
    assert pixels in (work / "frame.multipart").read_bytes()
    with zipfile.ZipFile(work / "study.zip") as archive:
        assert archive.namelist(), "the study ZIP is empty"
    with Image.open(work / "ct.png") as rendered:
        assert rendered.format == "PNG" and rendered.size == (256, 256)
    with Image.open(work / "thumbnail.jpg") as thumbnail:
        assert thumbnail.format == "JPEG"
