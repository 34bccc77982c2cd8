"""The byte budget requests of one process share: claims grow, refuse past the limit, and are returned."""

from __future__ import annotations

import threading

import pytest

from xdsi.errors import Overloaded
from xdsi.services.memory_budget import MemoryBudget


def test_a_claim_takes_bytes_until_the_limit_and_returns_them_all() -> None:
    budget = MemoryBudget(100, "test data")
    with budget.claim() as claim:
        claim.take(60)
        claim.take(40)
        assert budget.used == 100
        with pytest.raises(Overloaded, match="test data"):
            claim.take(1)
        assert (budget.used, claim.held) == (100, 100)  # the refused piece is not held
    assert budget.used == 0


def test_a_claim_is_returned_when_its_request_fails() -> None:
    budget = MemoryBudget(100, "test data")
    with pytest.raises(ValueError), budget.claim() as claim:
        claim.take(70)
        raise ValueError
    assert budget.used == 0


def test_concurrent_claims_never_hold_more_than_the_limit() -> None:
    budget = MemoryBudget(1000, "test data")
    refused: list[bool] = []
    peak: list[int] = []
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        try:
            with budget.claim() as claim:
                for _ in range(10):
                    claim.take(30)
                    peak.append(budget.used)
        except Overloaded:
            refused.append(True)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(peak) <= 1000
    assert budget.used == 0
