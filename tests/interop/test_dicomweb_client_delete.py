"""dicomweb-client's delete_instance, delete_series and delete_study against xdsi under gunicorn."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid
from requests.exceptions import HTTPError

from tests.conftest import DATABASES
from tests.dicomfiles import make_dataset, to_bytes
from tests.live import LiveServer


@pytest.fixture(scope="module", params=DATABASES)
def deleting(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DICOMwebClient]:
    folder = tmp_path_factory.mktemp(f"interop-delete-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    server = LiveServer(url, folder / "store", announce_base_url=True, delete_enabled="true")
    try:
        yield DICOMwebClient(url=server.root)
    finally:
        server.stop()


def _status(call: object) -> int:
    with pytest.raises(HTTPError) as raised:
        call()  # type: ignore[operator]
    return raised.value.response.status_code


def test_delete_instance_series_and_study(deleting: DICOMwebClient) -> None:
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    # Read back from PS3.10 bytes, as from files: store_instances writes a dataset's own preamble.
    datasets = [dcmread(io.BytesIO(to_bytes(ds))) for ds in (
        make_dataset(study_uid=study, series_uid=ct, InstanceNumber=1),
        make_dataset(study_uid=study, series_uid=ct, InstanceNumber=2),
        make_dataset(study_uid=study, series_uid=mr, modality="MR", SeriesNumber=2))]
    deleting.store_instances(datasets)
    gone = datasets[0]

    deleting.delete_instance(study, ct, gone.SOPInstanceUID)
    assert _status(lambda: deleting.retrieve_instance(study, ct, gone.SOPInstanceUID)) == 404
    assert [item.SOPInstanceUID for item in deleting.retrieve_series(study, ct)] == [datasets[1].SOPInstanceUID]
    [found] = deleting.search_for_studies(search_filters={"StudyInstanceUID": study},
                                          fields=["NumberOfStudyRelatedInstances", "ModalitiesInStudy"])
    assert found["00201208"]["Value"] == [2] and found["00080061"]["Value"] == ["CT", "MR"]

    deleting.delete_series(study, mr)
    assert deleting.search_for_series(study, search_filters={"SeriesInstanceUID": mr}) == []
    assert _status(lambda: deleting.delete_series(study, mr)) == 404

    deleting.delete_study(study)
    assert deleting.search_for_studies(search_filters={"StudyInstanceUID": study}) == []
    assert _status(lambda: deleting.retrieve_study(study)) == 404
    assert _status(lambda: deleting.delete_study(study)) == 404

    deleting.store_instances(datasets)  # the same study again, after its delete
    assert sorted(item.SOPInstanceUID for item in deleting.retrieve_study(study)) == sorted(
        ds.SOPInstanceUID for ds in datasets)


def test_delete_is_refused_with_405_when_turned_off(client: DICOMwebClient) -> None:
    [study] = client.search_for_studies(limit=1)
    uid = study["0020000D"]["Value"][0]
    assert _status(lambda: client.delete_study(uid)) == 405
    assert client.search_for_studies(search_filters={"StudyInstanceUID": uid})
