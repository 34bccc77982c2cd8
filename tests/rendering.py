"""An independent numpy rendering of DICOM pixels, written from PS3.3 C.7.6.3 and C.11 alone, for
golden tests of xdsi's renderer: only the decoding of stored pixels is left to pydicom."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal to noise ratio of two 8-bit images, in dB (inf when identical)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def decoded(path: str, frame: int = 0) -> np.ndarray:
    """The stored values of one frame (0-based), colour left in its stored space."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(dcmread(path), index=frame, as_rgb=False)


def image_of(data: bytes) -> np.ndarray:
    """An encoded image's pixels: L as 2-D, anything else as RGB."""
    image = Image.open(io.BytesIO(data))
    return np.asarray(image if image.mode == "L" else image.convert("RGB"))


def window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID) onto 0..255."""
    if function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        low, high = center - width / 2, center + width / 2
        inside = ((x - center) / width + 0.5) * 255.0
    else:
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):  # width 1: no value lies inside
            inside = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.select([x <= low, x > high], [0.0, 255.0], np.nan_to_num(inside))


def lut(x: np.ndarray, descriptor: list[int], data: list[int] | np.ndarray) -> np.ndarray:
    """PS3.3 C.11.1.1 / C.11.2.1.1: a LUT lookup, clamped at both ends."""
    entries = descriptor[0] or 65536
    table = np.asarray(data, dtype=np.float64)[:entries]
    return table[np.clip(np.rint(x).astype(np.int64) - descriptor[1], 0, len(table) - 1)]


def expected(ds: Dataset, stored: np.ndarray, *, frame_window: tuple[float, float, str] | None = None) -> np.ndarray:
    """The 8-bit display image of a decoded frame ``stored`` of ``ds``."""
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        channels = []
        for colour in ("Red", "Green", "Blue"):
            descriptor = list(ds[f"{colour}PaletteColorLookupTableDescriptor"].value)
            words = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
            channels.append(lut(stored, descriptor, words) / 65535.0 * 255.0)
        return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
    if photometric.startswith("YBR_FULL"):
        y, cb, cr = (stored[..., i].astype(np.float64) for i in range(3))
        # PS3.3 C.7.6.3.1.2: YBR_FULL to RGB
        rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                        y + 1.772 * (cb - 128)], axis=-1)
        return np.rint(np.clip(rgb, 0, 255)).astype(np.uint8)
    if photometric == "RGB":
        bits = int(ds.BitsStored)
        top = float((1 << bits) - 1)
        return np.rint(stored.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    x = stored.astype(np.float64)
    if "ModalityLUTSequence" in ds:
        item = ds.ModalityLUTSequence[0]
        x = lut(x, list(item.LUTDescriptor), item.LUTData)
    elif "RescaleSlope" in ds:
        x = x * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    if frame_window is None and ds.get("WindowCenter") is not None:
        centers, widths = ds.WindowCenter, ds.WindowWidth
        first_center = float(centers[0]) if isinstance(centers, list | tuple) or hasattr(centers, "append") else float(centers)
        first_width = float(widths[0]) if isinstance(widths, list | tuple) or hasattr(widths, "append") else float(widths)
        frame_window = (first_center, first_width, str(ds.get("VOILUTFunction") or "LINEAR"))
    if frame_window is not None:
        y = window(x, *frame_window)
    elif "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        descriptor = list(item.LUTDescriptor)
        y = lut(x, descriptor, item.LUTData) / ((1 << descriptor[2]) - 1) * 255.0
    else:
        y = (x - x.min()) / max(x.max() - x.min(), 1e-12) * 255.0
    if photometric == "MONOCHROME1":
        y = 255.0 - y
    return np.rint(np.clip(y, 0, 255)).astype(np.uint8)
