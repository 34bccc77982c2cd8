"""The metadata answer read in batches: complete and in order across batches, and its weak ETag changes
whenever what it would send changes (an overwrite, a new instance, another public URL)."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.uid import generate_uid

from tests.conftest import make_settings, store_all
from tests.dicomfiles import make_instance
from xdsi.services import retrieve
from xdsi.services.archive import Archive
from xdsi.services.retrieve import Target

ROOT = "https://pacs.example/dicom-web"


def _answer(archive: Archive, target: Target, root: str = ROOT) -> retrieve.Metadata:
    with archive.sessions() as session:
        return retrieve.metadata(session, archive.sessions, target, root)


def test_batches_join_into_one_array_in_order_and_the_etag_follows_every_change(database_url: str,
                                                                               tmp_path: Path) -> None:
    archive = Archive.open(make_settings(database_url, tmp_path / "store", duplicate_policy="overwrite"))
    archive.prepare()
    try:
        study, series = generate_uid(), generate_uid()
        uids = [generate_uid() for _ in range(retrieve.METADATA_BATCH + 5)]  # two batches
        store_all(archive, *(make_instance(study_uid=study, series_uid=series, sop_uid=uid, InstanceNumber=n)
                             for n, uid in enumerate(uids, 1)))
        target = Target(study)
        first = _answer(archive, target)
        sent = json.loads(b"".join(first.json_chunks()))
        assert [item["00080018"]["Value"][0] for item in sent] == uids
        assert _answer(archive, target).etag == first.etag
        assert _answer(archive, target, "https://elsewhere.example/dicom-web").etag != first.etag
        store_all(archive, make_instance(study_uid=study, series_uid=series, sop_uid=uids[0], InstanceNumber=1,
                                         patient_name="Other^Name"))
        overwritten = _answer(archive, target)
        assert overwritten.etag != first.etag
        assert b"Other^Name" in b"".join(overwritten.json_chunks())
        store_all(archive, make_instance(study_uid=study, series_uid=series, InstanceNumber=999))
        assert len(_answer(archive, target).instance_ids) == len(uids) + 1 != len(overwritten.instance_ids)
    finally:
        archive.close()
