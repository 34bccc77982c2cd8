"""Fixtures for the interop tests: pydicom's storable files stored once through dicomweb-client, and a real Orthanc."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from tests.conftest import DATABASES
from tests.interop.corpus import Corpus, build_corpus
from tests.interop.orthanc import INSTALL, PLUGIN, Orthanc, orthanc_binary
from tests.live import LiveServer


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return build_corpus()


@pytest.fixture(scope="session", params=DATABASES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           corpus: Corpus) -> Iterator[tuple[DICOMwebClient, LiveServer]]:
    """A server holding the whole corpus, stored with dicomweb-client's store_instances."""
    folder = tmp_path_factory.mktemp(f"interop-{request.param}")
    url = f"sqlite:///{folder / 'xdsi.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres").new()
    # No base_url: dicomweb-client sends "Host: 127.0.0.1" without the port, and the URLs the
    # server names must still lead back to it.
    server = LiveServer(url, folder / "store")
    web = DICOMwebClient(url=server.root)
    try:
        for start in range(0, len(corpus.datasets), 40):
            batch = corpus.datasets[start:start + 40]
            for ds in batch:  # what store_instances is about to send, written the way it writes it
                buffer = io.BytesIO()
                pydicom.dcmwrite(buffer, ds)
                corpus.sent[ds.SOPInstanceUID] = buffer.getvalue()
            answer = web.store_instances(batch)
            stored = {item.ReferencedSOPInstanceUID for item in answer.get("ReferencedSOPSequence", [])}
            assert stored == {ds.SOPInstanceUID for ds in batch}, [
                (item.ReferencedSOPInstanceUID, item.FailureReason) for item in answer.get("FailedSOPSequence", [])]
        yield web, server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(served: tuple[DICOMwebClient, LiveServer]) -> DICOMwebClient:
    return served[0]


@pytest.fixture(scope="session")
def orthanc(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc whose DICOMweb client knows the live xdsi as server "xdsi"; stopped even if a test fails."""
    binary = orthanc_binary()
    if binary is None or not PLUGIN.is_file():
        pytest.fail(f"Orthanc or its DICOMweb plugin {PLUGIN} is missing: {INSTALL}", pytrace=False)
    peer = Orthanc(binary, tmp_path_factory.mktemp("orthanc"), {"xdsi": f"{live.root}/"})
    try:
        yield peer
    finally:
        peer.stop()
