"""STOW-RS metadata parts under a memory bound: the worker's peak memory stays a small multiple of
a large DICOM JSON or XML part and is returned afterwards, and concurrent parts past the worker's
budget are refused whole (503, Retry-After, 0xA700) while the others are stored."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from bench.stow_metadata import memory_kib, workers_of, write_body
from tests.integration.test_stow_rs import values
from tests.live import LiveServer, Reply
from xdsi.repository import index
from xdsi.services.archive import Archive

MB = 1_000_000
# Parsed whole, a part cost 31 (XML) to 36 (JSON) times its size at the peak, and 16 to 29 times
# its size stayed resident after the answer.
PEAK_BOUND = 6
KEPT_BOUND = 5


def _store_file(server: LiveServer, body: Path, content_type: str) -> Reply:
    return server.request("POST", "/dicom-web/studies", body.read_bytes(),
                          {"Content-Type": content_type, "Accept": "application/dicom+json"})


def _stored_uids(reply: Reply) -> list[str]:
    return [values(item, "00081155")[0] for item in values(json.loads(reply.body), "00081199")]


def _indexed(server: LiveServer, uids: list[str]) -> int:
    archive = Archive.open(server.settings)
    try:
        with archive.sessions() as session:
            return sum(index.find_instance(session, uid) is not None for uid in uids)
    finally:
        archive.close()


@pytest.mark.parametrize(("kind", "megabytes", "instances"), [("json", 24, 100), ("json", 24, 1), ("xml", 24, 1)])
def test_a_large_metadata_part_costs_a_small_multiple_of_its_size(
    database_url: str, tmp_path: Path, kind: str, megabytes: int, instances: int
) -> None:
    server = LiveServer(database_url, tmp_path / "store", workers=1)
    try:
        warm_type, _, _ = write_body(tmp_path / "warm", kind, 0.05, 2)
        assert _store_file(server, tmp_path / "warm", warm_type).status == 200
        [worker] = workers_of(server.process.pid)
        content_type, size, _ = write_body(tmp_path / "body", kind, megabytes, instances)
        before = memory_kib(worker)
        reply = _store_file(server, tmp_path / "body", content_type)
        time.sleep(0.5)
        after = memory_kib(worker)
        assert reply.status == 200, reply.body[:2000]
        assert len(_stored_uids(reply)) == instances
        peak, kept = (after["VmHWM"] - before["VmRSS"]) * 1024, (after["VmRSS"] - before["VmRSS"]) * 1024
        assert peak < PEAK_BOUND * size, f"peak {peak / size:.1f} times the {size}-byte part"
        assert kept < KEPT_BOUND * size, f"kept {kept / size:.1f} times the {size}-byte part"
        # What stays is the allocators' working set (it varies from one request to the next: 10 to
        # 103 MB over six 24 MB XML parts), not the requests' data: it does not add up.
        assert _store_file(server, tmp_path / "body", content_type).status == 200
        time.sleep(0.5)
        again = (memory_kib(worker)["VmRSS"] - before["VmRSS"]) * 1024
        assert again < KEPT_BOUND * size, f"kept {again / size:.1f} times the part after two of them"
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["json", "xml"])
def test_parts_beyond_the_budget_are_refused_whole_and_the_rest_stored(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    """Four parts of 8 MB at once against a budget of 12 MB: one is held at a time (each takes
    seconds to store), the others answer 503 with Retry-After and 0xA700 and leave nothing; sent
    again once the budget is free, they are stored."""
    server = LiveServer(database_url, tmp_path / "store", workers=1, max_metadata_bytes=str(12 * MB),
                        stow_metadata_budget_bytes=str(12 * MB))
    try:
        bodies = [write_body(tmp_path / f"body-{number}", kind, 8, 40 if kind == "json" else 1)
                  for number in range(4)]
        replies = _send_together(server, [tmp_path / f"body-{number}" for number in range(4)],
                                 [content_type for content_type, _, _ in bodies])
        statuses = sorted(reply.status for reply in replies)
        assert 200 in statuses and 503 in statuses, statuses
        assert set(statuses) == {200, 503}, statuses
        for number, reply in enumerate(replies):
            uids = bodies[number][2]
            if reply.status == 200:
                assert sorted(_stored_uids(reply)) == sorted(uids)
                assert _indexed(server, uids) == len(uids)
                continue
            assert reply.header("Retry-After").isdigit()
            assert "STOW-RS metadata" in reply.header("Warning")
            [failure] = values(json.loads(reply.body), "0008119A")
            assert values(failure, "00081197") == [0xA700]  # PS3.18 Table I.2-2: out of resources
            assert _indexed(server, uids) == 0  # nothing of a refused request is kept
        for number, reply in enumerate(replies):
            if reply.status == 503:
                content_type, _, uids = bodies[number]
                again = _store_file(server, tmp_path / f"body-{number}", content_type)
                assert again.status == 200, again.body[:2000]
                assert _indexed(server, uids) == len(uids)
        assert not list((tmp_path / "store" / "tmp").iterdir())
    finally:
        server.stop()


def test_a_refusal_answers_in_the_accepted_media_type(tmp_path: Path) -> None:
    """Asked for XML, the refusal is a PS3.19 Store Instances Response saying 0xA700."""
    from xdsi.encoding import native_xml

    server = LiveServer(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store", workers=1,
                        max_metadata_bytes=str(6 * MB), stow_metadata_budget_bytes=str(6 * MB))
    try:
        content_type, _, _ = write_body(tmp_path / "body", "json", 4, 20)
        replies = _send_together(server, [tmp_path / "body"] * 3, [content_type] * 3, "application/dicom+xml")
        refused = [reply for reply in replies if reply.status == 503]
        assert refused, [reply.status for reply in replies]
        assert refused[0].header("Content-Type").startswith("application/dicom+xml")
        ds = native_xml.loads_dataset(refused[0].body)
        assert ds.OtherFailuresSequence[0].FailureReason == 0xA700
    finally:
        server.stop()


def _send_together(server: LiveServer, bodies: list[Path], content_types: list[str],
                   accept: str = "application/dicom+json") -> list[Reply]:
    """Each body POSTed from its own thread, all released at once; the replies in order."""
    datas = [body.read_bytes() for body in bodies]
    replies: list[Reply | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(number: int) -> None:
        start.wait()
        replies[number] = server.request("POST", "/dicom-web/studies", datas[number],
                                         {"Content-Type": content_types[number], "Accept": accept})

    threads = [threading.Thread(target=send, args=(number,)) for number in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(reply is not None for reply in replies)
    return [reply for reply in replies if reply is not None]
