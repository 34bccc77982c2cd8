"""The rendering service over a real archive: representative images, frames, the cache and its
invalidation by overwrite and delete, refusals by name."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.conftest import make_settings, store_all
from tests.dicomfiles import make_dataset, to_bytes
from xdsi.errors import AnonymizationUnavailable, InvalidRequest, NotAcceptable, NotFound
from xdsi.services.archive import Archive
from xdsi.services.render import GIF, JPEG, PNG, RenderRequest
from xdsi.services.render_cache import RenderCache
from xdsi.services.retrieve import Target


@contextmanager
def _opened(database_url: str, tmp_path: Path, **settings: object) -> Iterator[Archive]:
    archive = Archive.open(make_settings(database_url, tmp_path / "store", **settings))
    archive.prepare()
    try:
        yield archive
    finally:
        archive.close()


@pytest.fixture
def overwriting(database_url: str, tmp_path: Path) -> Iterator[Archive]:
    with _opened(database_url, tmp_path, duplicate_policy="overwrite") as archive:
        yield archive


def _image(value: int, **attributes: object) -> bytes:
    pixels = np.full((6, 6), value, dtype=np.uint16)
    pixels[0, 0] = 0
    pixels[5, 5] = 1000  # the same stored range whatever ``value``: the display differs with it alone
    return to_bytes(make_dataset(rows=6, columns=6, PixelData=pixels.tobytes(), **attributes))


def _stored_image(archive: Archive, value: int = 300, target: Target | None = None, **attributes: object) -> Target:
    """An image of ``value`` stored (as ``target``'s instance when given), and its target."""
    if target is None:
        ds = make_dataset()
        target = Target(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    store_all(archive, _image(value, study_uid=target.study_uid, series_uid=target.series_uid,
                           sop_uid=target.sop_instance_uid, **attributes))
    return target


def _render(archive: Archive, target: Target, request: RenderRequest | None = None, **prepare: object) -> bytes:
    with archive.sessions() as session:
        prepared = archive.renderer.prepare(session, target, **prepare)  # type: ignore[arg-type]
    return archive.renderer.render(prepared, request or RenderRequest(media_type=PNG)).data


def _pixel(data: bytes) -> int:
    return int(np.asarray(Image.open(io.BytesIO(data)))[2, 2])


def test_overwrite_never_serves_the_old_rendering(overwriting: Archive) -> None:
    target = _stored_image(overwriting, 200)
    first = _render(overwriting, target)
    assert _render(overwriting, target) is first  # the second answer came from the cache
    _stored_image(overwriting, 800, target)
    second = _render(overwriting, target)
    assert _pixel(first) == round(200 / 1000 * 255) and _pixel(second) == round(800 / 1000 * 255)


def test_overwrite_never_renders_from_the_old_header(database_url: str, tmp_path: Path) -> None:
    """Rendered images not cached, parsed headers cached: a new window in the new file is used."""
    with _opened(database_url, tmp_path, duplicate_policy="overwrite", render_cache_bytes=0) as archive:
        target = _stored_image(archive, 300)
        assert _pixel(_render(archive, target)) == round(300 / 1000 * 255)
        assert _pixel(_render(archive, target)) == round(300 / 1000 * 255) and len(archive.renderer.headers) == 1
        _stored_image(archive, 300, target, WindowCenter=100, WindowWidth=200)
        assert _pixel(_render(archive, target)) == 255  # 300 is above the new window
        assert len(archive.renderer.headers) == 2


def test_private_elements_are_left_out_of_the_kept_header(database_url: str, tmp_path: Path) -> None:
    """A vendor's private elements change nothing drawn; the kept header has none, and no element left
    in raw form for threads to convert at once."""
    with _opened(database_url, tmp_path, render_cache_bytes=0) as archive:
        plain = _stored_image(archive, 300, WindowCenter=100, WindowWidth=200)
        ds = make_dataset()
        vendor = Target(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        image = make_dataset(rows=6, columns=6, study_uid=vendor.study_uid, series_uid=vendor.series_uid,
                             sop_uid=vendor.sop_instance_uid, WindowCenter=100, WindowWidth=200)
        block = image.private_block(0x0029, "VENDOR 1.0", create=True)
        block.add_new(0x10, "DS", ["12.5", "3"])
        block.add_new(0x11, "SS", [-4, 7])
        block.add_new(0x12, "LO", "not drawn")
        pixels = np.full((6, 6), 300, dtype=np.uint16)
        pixels[0, 0], pixels[5, 5] = 0, 1000
        image.PixelData = pixels.tobytes()
        store_all(archive, to_bytes(image))
        assert _render(archive, vendor) == _render(archive, plain)
        [(kept, _)] = [entry for key, entry in archive.renderer.headers._entries.items()
                       if entry[0].ds.SOPInstanceUID == vendor.sop_instance_uid]
        assert not [tag for tag in kept.ds.keys() if tag.is_private]  # noqa: SIM118
        assert not [raw for raw in kept.ds._dict.values() if isinstance(raw, RawDataElement)]


def test_header_cache_can_be_turned_off(database_url: str, tmp_path: Path) -> None:
    with _opened(database_url, tmp_path, render_cache_bytes=0, render_header_cache_bytes=0) as archive:
        target = _stored_image(archive)
        assert _render(archive, target) == _render(archive, target) and len(archive.renderer.headers) == 0


def test_delete_never_serves_a_cached_rendering(database_url: str, tmp_path: Path) -> None:
    with _opened(database_url, tmp_path, delete_enabled=True) as archive:
        target = _stored_image(archive)
        _render(archive, target)
        assert len(archive.renderer.cache) == 1
        archive.deleter.delete(target)
        with pytest.raises(NotFound):
            _render(archive, target)


def test_cache_disabled_still_renders(database_url: str, tmp_path: Path) -> None:
    with _opened(database_url, tmp_path, render_cache_bytes=0) as archive:
        target = _stored_image(archive)
        first, second = _render(archive, target), _render(archive, target)
        assert first == second and first is not second and len(archive.renderer.cache) == 0


def test_every_parameter_is_part_of_the_key(archive: Archive) -> None:
    target = _stored_image(archive)
    answers = {_render(archive, target, RenderRequest(media_type=PNG, quality=q)) for q in (50, 60)}
    answers.add(_render(archive, target, RenderRequest(media_type=JPEG)))
    answers.add(_render(archive, target, purpose="thumbnail"))
    assert len(archive.renderer.cache) == 4
    assert len(answers) >= 3  # PNG ignores quality: same bytes, two entries


def test_representative_and_frames(archive: Archive) -> None:
    study = make_dataset().StudyInstanceUID
    made = [make_dataset(study_uid=study, series_uid="1.2.3.4", InstanceNumber=n) for n in (1, 2, 3)]
    store_all(archive, *(_image(100 * n, study_uid=study, series_uid="1.2.3.4", sop_uid=ds.SOPInstanceUID,
                                InstanceNumber=n) for n, ds in enumerate(made, 1)))
    with archive.sessions() as session:
        prepared = archive.renderer.prepare(session, Target(study))
        assert prepared.instance.sop_instance_uid == made[1].SOPInstanceUID
        assert prepared.media_types[0] == JPEG
        several = archive.renderer.prepare(session, Target(study, "1.2.3.4", made[0].SOPInstanceUID), frames=(1, 1))
        assert several.media_types == (GIF,)
    with pytest.raises(NotAcceptable, match="offered"):
        archive.renderer.render(several, RenderRequest(media_type=JPEG))


def test_frames_beyond_the_last_are_refused_by_name(archive: Archive) -> None:
    target = _stored_image(archive)
    with pytest.raises(NotFound, match="beyond the last frame"):
        _render(archive, target, RenderRequest(media_type=PNG, frames=(2,)))


def test_cache_is_bounded_by_bytes() -> None:
    cache: RenderCache[bytes] = RenderCache(1000)
    for n in range(10):
        cache.put(n, bytes(200), 200)
    assert cache.size <= 1000 and len(cache) == 5 and cache.get(0) is None and cache.get(9) is not None
    cache.get(5)
    cache.put(10, bytes(200), 200)
    assert cache.get(5) is not None and cache.get(6) is None  # least recently used goes first
    cache.put("big", bytes(300), 300)  # over a quarter of the capacity: not kept
    assert cache.get("big") is None
    assert RenderCache[bytes](0).get(1) is None


def test_anonymized_rendering(archive: Archive) -> None:
    """Anonymize: the same pixels; technique text without the study date (as an undated copy shows);
    patient annotation contradicts it; burned-in annotation cannot be de-identified."""
    dated, undated = make_dataset(rows=64, columns=64), make_dataset(rows=64, columns=64)
    del undated.StudyDate
    burned = make_dataset(rows=64, columns=64, BurnedInAnnotation="YES")
    store_all(archive, *(to_bytes(ds) for ds in (dated, undated, burned)))

    def target(ds: Dataset) -> Target:
        return Target(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    technique = RenderRequest(media_type=PNG, annotation=("technique",))
    anonymized = _render(archive, target(dated), replace(technique, anonymize=True))
    assert anonymized == _render(archive, target(undated), technique) != _render(archive, target(dated), technique)
    assert _render(archive, target(dated), RenderRequest(media_type=PNG, anonymize=True)) == \
        _render(archive, target(dated), RenderRequest(media_type=PNG))
    with pytest.raises(InvalidRequest, match="patient"):
        _render(archive, target(dated), RenderRequest(media_type=PNG, annotation=("patient",), anonymize=True))
    with pytest.raises(AnonymizationUnavailable, match="Burned In Annotation"):
        _render(archive, target(burned), RenderRequest(media_type=PNG, anonymize=True))
    assert _render(archive, target(burned), RenderRequest(media_type=PNG))  # without Anonymize it renders
