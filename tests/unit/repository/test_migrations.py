"""Schema and data migrations: revision 0003 turns the DS and IS strings of cached metadata into numbers."""

from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from pydicom.data import get_testdata_file
from sqlalchemy import select

from tests.dicomfiles import pydicom_files
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.encoding import dicom_json
from xdsi.errors import XdsiError
from xdsi.repository import db
from xdsi.repository.models import InstanceMetadata, Series
from xdsi.services.archive import Archive
from xdsi.services.metadata import encode_parsed, fragment

LIMITS = Limits(max_bytes=1 << 31, max_inflated_bytes=1 << 29, max_deflate_ratio=200, defer_size=1024)


def _revision(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, db.MIGRATIONS / "versions" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NUMBERS = _revision("0003_ds_is_json_numbers")


def _with_strings(obj: Any) -> Any:
    """The data with every DS and IS number as a string of its text: the form older revisions cached."""
    if isinstance(obj, list):
        return [_with_strings(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("vr") in ("DS", "IS") and "Value" in obj:
        return {**obj, "Value": [v.text if isinstance(v, dicom_json.Number) else v for v in obj["Value"]]}
    return {key: _with_strings(value) for key, value in obj.items()}


def _fragment(path: Path | str) -> bytes | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_instance(path, LIMITS) as parsed:
                return fragment(encode_parsed(parsed, 1024))
        except XdsiError:
            return None


@pytest.mark.parametrize("path", pydicom_files(), ids=[p.name for p in pydicom_files()])
def test_an_all_strings_fragment_becomes_what_the_encoder_writes_now(path: Path) -> None:
    now = _fragment(path)
    if now is None:
        return
    before = dicom_json.dumps(_with_strings(dicom_json.loads_fragment(now)))
    assert NUMBERS.as_numbers(before) == now
    assert NUMBERS.as_strings(now) == before
    assert NUMBERS.as_numbers(now) == now


@pytest.mark.parametrize(("before", "after"), [
    (b'{"00180050":{"vr":"DS","Value":["5.000000"]}}', b'{"00180050":{"vr":"DS","Value":[5.000000]}}'),
    (b'{"00280030":{"vr":"DS","Value":["1",null,"+3",".5","1e999",2.5,"-0"]}}',
     b'{"00280030":{"vr":"DS","Value":[1,null,"+3",".5","1e999",2.5,-0]}}'),
    (b'{"00200013":{"vr":"IS","Value":["12","1.5","05"]}}', b'{"00200013":{"vr":"IS","Value":[12,"1.5","05"]}}'),
    (b'{"00081030":{"vr":"LO","Value":["5"]},"00204000":{"vr":"LT","Value":["\\"vr\\":\\"DS\\",\\"Value\\":[\\"5\\"]"]}}',
     b'{"00081030":{"vr":"LO","Value":["5"]},"00204000":{"vr":"LT","Value":["\\"vr\\":\\"DS\\",\\"Value\\":[\\"5\\"]"]}}'),
    (b'{"00189219":{"vr":"DS","Value":["a\\"]b","7"]}}', b'{"00189219":{"vr":"DS","Value":["a\\"]b",7]}}'),
])
def test_only_ds_and_is_strings_that_are_json_numbers_change(before: bytes, after: bytes) -> None:
    assert NUMBERS.as_numbers(before) == after


def _to_revision(archive: Archive, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with archive.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_an_existing_archive_gets_numbers_at_upgrade(archive: Archive) -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    [outcome] = archive.store.store([io.BytesIO(data)])
    assert outcome.status.succeeded, outcome.reason
    with archive.sessions() as session:
        cached = session.scalar(select(InstanceMetadata.json))
        stamped = session.scalar(select(Series.updated_at))
    assert cached is not None and b'"00180050":{"vr":"DS","Value":[5.000000]}' in cached
    _to_revision(archive, "0002")
    with archive.sessions() as session:
        old = session.scalar(select(InstanceMetadata.json))
    assert old is not None and b'"00180050":{"vr":"DS","Value":["5.000000"]}' in old
    db.upgrade(archive.engine)
    with archive.sessions() as session:
        assert session.scalar(select(InstanceMetadata.json)) == cached
        renewed = session.scalar(select(Series.updated_at))
    assert stamped is not None and renewed is not None and renewed > stamped
    assert db.current_revision(archive.engine) != "0002"
