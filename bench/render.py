"""Rendering cost: a 2k x 2k CR rendered whole and as a thumbnail, through the rendering service
(index lookup, frame read, decode, LUT, scaling, encoding), cold (cache off) and warm, with the
time of each pipeline step measured on its own so the figure says what bounds it.

The CR is generated (seeded): 2048 x 2048, 12 of 16 bits, MONOCHROME1 with a window, stored once
as Explicit VR Little Endian and once as JPEG 2000 lossless, the two forms CR archives hold.

Usage:
  .venv/bin/python bench/render.py [--trials 30] [--out bench/results/xdsi-DATE-render-engine.json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filewriter import dcmwrite
from pydicom.uid import JPEG2000Lossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdsi import __version__
from xdsi.config import Settings
from xdsi.dicom import imaging
from xdsi.dicom.luts import grayscale
from xdsi.dicom.render import RenderParams, Size, encode, render_frame
from xdsi.dicom.transcode import PixelDescription, transcode
from xdsi.services.archive import Archive
from xdsi.services.render import JPEG, Purpose, RenderRequest
from xdsi.services.retrieve import Target

SIDE = 2048


def computed_radiograph() -> Dataset:
    """A chest-sized CR: smooth anatomy-like structure plus noise, 12 bits stored."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    body = 2600 * np.exp(-((x - 0.5) ** 2 / 0.08 + (y - 0.5) ** 2 / 0.12))
    ribs = 300 * np.sin(y * 60) * (np.abs(x - 0.5) > 0.1)
    pixels = np.clip(body + ribs + 500 + rng.normal(0, 40, (SIDE, SIDE)), 0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BENCH-CR", "Bench^CR", "CR"
    ds.Rows = ds.Columns = SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    ds.PixelData = pixels.tobytes()
    return ds


def median_ms(work: Callable[[], object], trials: int) -> float:
    work()  # warm-up: imports, first allocations
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def steps(ds: Dataset, frame: bytes, syntax: str, trials: int) -> dict[str, float]:
    """Each step of one full-size render on its own, in ms."""
    pixel = PixelDescription.from_dataset(ds)
    decoded = imaging.decode(frame, pixel, syntax, ds, max_pixel_bytes=1 << 30)
    mapping = grayscale(ds, 0, "MONOCHROME1")
    display = mapping.to_display(decoded.array)
    params = RenderParams(media_type=JPEG)
    from PIL import Image

    image = Image.fromarray(display, "L")
    return {
        "decode": median_ms(lambda: imaging.decode(frame, pixel, syntax, ds, max_pixel_bytes=1 << 30), trials),
        "lut": median_ms(lambda: mapping.to_display(decoded.array), trials),
        "thumbnail_scale": median_ms(lambda: image.resize((128, 128), Image.Resampling.BILINEAR, reducing_gap=2.0),
                                     trials),
        "encode_jpeg_full": median_ms(lambda: encode([image], params, None, 100), trials),
        "pipeline_full": median_ms(lambda: render_frame(decoded, ds, 1, params), trials),
        "pipeline_thumbnail": median_ms(lambda: render_frame(decoded, ds, 1, RenderParams(size=Size(128, 128))),
                                        trials),
    }


def through_service(archive: Archive, ds: Dataset, purpose: Purpose, trials: int) -> tuple[float, int]:
    """Median ms of one JPEG answer of the stored ``ds`` (plan lookup included), and its size."""
    target = Target(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    def once() -> bytes:
        with archive.sessions() as session:
            prepared = archive.renderer.prepare(session, target, purpose=purpose)
        return archive.renderer.render(prepared, RenderRequest(media_type=JPEG)).data

    return median_ms(once, trials), len(once())


def measure(trials: int) -> dict[str, object]:
    results: dict[str, object] = {}
    native = computed_radiograph()
    j2k = transcode(computed_radiograph(), JPEG2000Lossless, max_pixel_bytes=1 << 30)  # same pixels, own UIDs
    with tempfile.TemporaryDirectory(prefix="xdsi-bench-render-") as folder:
        for cache, cache_bytes in (("cold", 0), ("warm", 64 << 20)):
            settings = Settings.load(environ={}, database_url=f"sqlite:///{folder}/{cache}.db",
                                     storage=f"{folder}/{cache}-store", render_cache_bytes=cache_bytes)
            archive = Archive.open(settings)
            archive.prepare()
            try:
                for name, ds in (("native", native), ("jpeg2000_lossless", j2k)):
                    buffer = io.BytesIO()
                    dcmwrite(buffer, ds, enforce_file_format=True)
                    [outcome] = archive.store.store(iter([io.BytesIO(buffer.getvalue())]))
                    assert outcome.status.succeeded, outcome.reason
                    for purpose in ("rendered", "thumbnail"):
                        milliseconds, size = through_service(archive, ds, purpose, trials)
                        results[f"{cache}/{name}/{purpose}_ms"] = milliseconds
                        results[f"{cache}/{name}/{purpose}_bytes"] = size
            finally:
                archive.close()
    frame = native.PixelData
    results["steps_native_ms"] = steps(native, frame, "1.2.840.10008.1.2.1", trials)
    j2k_frame = next(generate_frames(j2k.PixelData, number_of_frames=1))
    results["steps_jpeg2000_lossless_ms"] = steps(native, j2k_frame, JPEG2000Lossless, trials)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = measure(args.trials)
    record = {"benchmark": "render", "xdsi": __version__, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "host": platform.node(), "python": platform.python_version(), "image": f"CR {SIDE}x{SIDE}, 12 bits",
              "trials": args.trials, "results": results}
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
