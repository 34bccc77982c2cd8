"""A real browser shows xdsi's images: headless Chromium (Debian ``chromium``) opens a page whose
``<img>`` elements point at a WADO-URI JPEG and at a WADO-RS thumbnail of the live server, and
the screenshot's pixels are read back."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicomfiles import make_two_halves, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer

DARK, LIGHT = 60, 190  # the stored values of the two halves; the window maps them 1:1 to gray levels
BACKGROUND = (255, 0, 255)  # the page's colour: where it shows, no image was drawn
SIZE = 64
SHOWN = 128  # each image is drawn this big, at x=0 and x=200
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian's chromium is needed: apt-get install chromium (.ci/run installs it)")
    return found


def _screenshot(chromium: str, page: Path, profile: Path) -> Image.Image:
    shot = profile.parent / "screenshot.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=400,200", "--virtual-time-budget=10000", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return Image.open(shot).convert("RGB")


def _mean(image: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    return image[top:bottom, left:right].reshape(-1, 3).mean(axis=0)


def test_a_browser_shows_a_wado_uri_jpeg_and_a_wado_rs_thumbnail(
        live: LiveServer, chromium: str, tmp_path: Path) -> None:
    data = to_bytes(make_two_halves(DARK, LIGHT, SIZE, study_uid=generate_uid()))
    assert post(live, dicom_parts(data)).status == 200
    ds = pydicom.dcmread(io.BytesIO(data))
    wado_uri = live.base + "/wado?" + urlencode({
        "requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID, "contentType": "image/jpeg"})
    thumbnail = (f"{live.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                 f"/instances/{ds.SOPInstanceUID}/thumbnail")
    style = f"position:absolute;top:0;width:{SHOWN}px;height:{SHOWN}px"
    page = tmp_path / "page.html"
    page.write_text(f"""<!DOCTYPE html>
<html><body style="margin:0;background:rgb{BACKGROUND}">
<img src="{wado_uri.replace('&', '&amp;')}" style="{style};left:0">
<img src="{thumbnail}" style="{style};left:200px">
</body></html>
""", encoding="utf-8")
    shot = np.asarray(_screenshot(chromium, page, tmp_path / "profile"), dtype=np.float64)
    assert np.allclose(_mean(shot, 150, 150, 400, 200), BACKGROUND, atol=2)  # the page itself
    for left in (0, 200):
        # Inside each half, away from the edge JPEG blurs: gray at the stored level, not the page colour.
        dark = _mean(shot, left + 8, 8, left + SHOWN // 2 - 8, SHOWN - 8)
        light = _mean(shot, left + SHOWN // 2 + 8, 8, left + SHOWN - 8, SHOWN - 8)
        assert np.allclose(dark, DARK, atol=8), (left, dark)
        assert np.allclose(light, LIGHT, atol=8), (left, light)
