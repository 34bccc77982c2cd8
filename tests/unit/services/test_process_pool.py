"""The worker process pool: answers reach their own tickets, and no failure hangs or misroutes one."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.processes import running
from xdsi.services import process_pool
from xdsi.services.process_pool import PoolBroken, ProcessPool


class TwoArgumentError(Exception):
    """Pickles with its message only, so unpickling it in the owner fails (TypeError)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code)
        self.detail = detail


def job(kind: str, value: int = 0) -> int:
    """What the workers run in these tests (imported by them, so module-level)."""
    if kind == "echo":
        return value
    if kind == "sleep":
        time.sleep(value)
        return value
    if kind == "no-space":
        raise OSError(errno.ENOSPC, "No space left on device")
    if kind == "unreadable":
        raise TwoArgumentError(value, "detail")
    if kind == "die":
        os._exit(3)
    raise ValueError(kind)


def within(seconds: float, action) -> None:  # type: ignore[no-untyped-def]
    """Run ``action`` in a thread and fail if it has not returned in time (a hang is the bug)."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), f"still blocked after {seconds} s"
    if errors:
        raise errors[0]


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    opened = ProcessPool(2, job)
    yield opened
    opened.close()


def test_every_ticket_gets_its_own_answer_whatever_the_reading_order(pool: ProcessPool) -> None:
    tickets = [pool.submit("echo", n) for n in range(40)]
    assert {ticket.worker for ticket in tickets} == {0, 1}
    assert [pool.result(ticket) for ticket in reversed(tickets)] == list(reversed(range(40)))


def test_threads_sharing_a_pool_get_their_own_answers(pool: ProcessPool) -> None:
    wrong: list[tuple[int, int]] = []

    def client(base: int) -> None:
        for n in range(base, base + 50):
            answer = pool.result(pool.submit("echo", n))
            if answer != n:
                wrong.append((n, answer))

    threads = [threading.Thread(target=client, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_a_job_that_raises_fails_its_ticket_alone_and_forgetting_the_rest_returns(pool: ProcessPool) -> None:
    tickets = [pool.submit("echo", 1), pool.submit("no-space"), pool.submit("echo", 3), pool.submit("echo", 4)]
    assert pool.result(tickets[0]) == 1
    with pytest.raises(OSError) as raised:
        pool.result(tickets[1])
    assert raised.value.errno == errno.ENOSPC
    # The owner gives up: answered tickets among those it forgets must not be waited for again.
    within(10, lambda: pool.forget(tickets))
    with pytest.raises(LookupError):
        pool.result(tickets[0])
    assert pool.result(pool.submit("echo", 5)) == 5
    assert not pool.broken


def test_an_answer_that_cannot_be_read_fails_its_ticket_and_shifts_no_other(pool: ProcessPool) -> None:
    tickets = [pool.submit(kind, n) for n, kind in enumerate(["echo", "unreadable", "echo", "echo", "echo"])]
    answers = []
    for ticket in tickets:
        try:
            answers.append(pool.result(ticket))
        except PoolBroken as exc:
            answers.append(str(exc))
    assert answers[0] == 0 and answers[2:] == [2, 3, 4]
    assert "cannot be read" in answers[1]
    assert not pool.broken


def test_a_worker_dying_with_jobs_open_breaks_the_pool_and_wakes_every_waiter(pool: ProcessPool) -> None:
    tickets = [pool.submit("sleep", 1), pool.submit("die"), pool.submit("echo", 7), pool.submit("echo", 8)]
    outcomes: list[object] = []

    def collect() -> None:
        for ticket in tickets:
            try:
                outcomes.append(pool.result(ticket))
            except PoolBroken:
                outcomes.append(PoolBroken)

    within(20, collect)
    assert PoolBroken in outcomes and pool.broken
    # Every worker was killed and reaped: none lingers, none is left a zombie.
    assert not any(running(pid) for pid in pool.pids)
    with pytest.raises(PoolBroken):
        pool.submit("echo", 1)


def test_a_hung_worker_is_given_up_after_the_answer_timeout() -> None:
    pool = ProcessPool(1, job, answer_timeout=1.0)
    ticket = pool.submit("sleep", 60)
    started = time.monotonic()
    with pytest.raises(PoolBroken, match="no answer"):
        within(20, lambda: pool.result(ticket))
    assert time.monotonic() - started < 15
    assert not any(running(pid) for pid in pool.pids)


def test_shared_pools_are_replaced_after_a_loss_and_given_up_if_they_never_answered() -> None:
    first = process_pool.shared(2, job)
    assert process_pool.shared(2, job) is first
    assert first.result(first.submit("echo", 1)) == 1
    with pytest.raises(PoolBroken):
        first.result(first.submit("die"))
    second = process_pool.shared(2, job)
    assert second is not first and not set(second.pids) & set(first.pids)
    assert second.result(second.submit("echo", 2)) == 2
    with pytest.raises(PoolBroken):
        second.result(second.submit("die"))
    third = process_pool.shared(2, job)
    # Broken before answering anything: workers cannot run here, parse in-process from now on.
    with pytest.raises(PoolBroken):
        third.result(third.submit("die"))
    with pytest.raises(OSError, match="before their first answer"):
        process_pool.shared(2, job)
