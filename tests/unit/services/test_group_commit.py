"""Group commit: callers that arrive during a commit share the next one, each answered for its own work."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from xdsi.errors import RepositoryBusy
from xdsi.services.group_commit import GroupCommit

WAIT = 10.0


class Recorder:
    """A commit that records its groups; the first one can be held open until ``release``."""

    def __init__(self, hold_first: bool = False, failing: Sequence[str] = ()) -> None:
        self.groups: list[list[str]] = []
        self.committed: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.failing = set(failing)
        self.lock = threading.Lock()

    def __call__(self, works: Sequence[str]) -> None:
        with self.lock:
            self.groups.append(list(works))
            first = len(self.groups) == 1
        if first:
            self.entered.set()
            assert self.release.wait(WAIT)
        bad = self.failing.intersection(works)
        if bad:
            raise ValueError(f"cannot commit {sorted(bad)}")
        with self.lock:
            self.committed.update(works)


def submit_all(group: GroupCommit[str], names: Sequence[str]) -> tuple[dict[str, BaseException | None], list[threading.Thread]]:
    results: dict[str, BaseException | None] = {}

    def run(name: str) -> None:
        try:
            group.submit(name)
            results[name] = None
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to look at
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    return results, threads


def wait_queued(group: GroupCommit[str], count: int) -> None:
    """Until ``count`` submissions wait behind the running commit."""
    for _ in range(int(WAIT / 0.005)):
        with group._lock:
            if len(group._queue) >= count:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{count} submissions never queued")


def test_a_lone_caller_commits_at_once() -> None:
    commit = Recorder()
    group: GroupCommit[str] = GroupCommit(commit)
    group.submit("a")
    group.submit("b")
    assert commit.groups == [["a"], ["b"]]


def test_callers_arriving_during_a_commit_share_the_next_one_and_wait_for_it() -> None:
    commit = Recorder(hold_first=True)
    group: GroupCommit[str] = GroupCommit(commit)
    first, first_threads = submit_all(group, ["lead"])
    assert commit.entered.wait(WAIT)
    later, threads = submit_all(group, [f"w{n}" for n in range(7)])
    wait_queued(group, 7)
    # Nobody is answered while their work is not committed.
    assert first == {} and later == {}
    assert all(thread.is_alive() for thread in threads + first_threads)
    commit.release.set()
    for thread in first_threads + threads:
        thread.join(WAIT)
    assert first == {"lead": None}
    assert later == {f"w{n}": None for n in range(7)}
    assert commit.groups[0] == ["lead"]
    assert sorted(commit.groups[1]) == [f"w{n}" for n in range(7)]
    assert len(commit.groups) == 2
    assert commit.committed == {"lead", *later}


def test_a_failed_group_is_committed_again_one_by_one_so_only_the_bad_work_fails() -> None:
    commit = Recorder(hold_first=True, failing=["bad"])
    group: GroupCommit[str] = GroupCommit(commit)
    _, lead = submit_all(group, ["lead"])
    assert commit.entered.wait(WAIT)
    results, threads = submit_all(group, ["x", "bad", "y"])
    wait_queued(group, 3)
    commit.release.set()
    for thread in lead + threads:
        thread.join(WAIT)
    assert results["x"] is None and results["y"] is None
    assert isinstance(results["bad"], ValueError)
    assert commit.committed == {"lead", "x", "y"}
    assert sorted(commit.groups[1]) == ["bad", "x", "y"]  # the group, then each alone
    assert sorted(map(tuple, commit.groups[2:])) == [("bad",), ("x",), ("y",)]


def test_a_lone_failure_is_its_callers_error_and_the_next_caller_still_commits() -> None:
    group: GroupCommit[str] = GroupCommit(Recorder(failing=["bad"]))
    with pytest.raises(ValueError, match="bad"):
        group.submit("bad")
    group.submit("good")


def test_an_interrupted_leader_leaves_its_followers_an_error_not_a_false_success() -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def commit(works: Sequence[str]) -> None:
        calls.append(list(works))
        if len(calls) == 2:  # the followers' group: its leader's thread is interrupted
            raise KeyboardInterrupt
        if len(calls) == 1:
            entered.set()
            assert release.wait(WAIT)

    group: GroupCommit[str] = GroupCommit(commit)
    _, lead = submit_all(group, ["lead"])
    assert entered.wait(WAIT)
    results, threads = submit_all(group, ["a", "b"])
    wait_queued(group, 2)
    release.set()
    for thread in lead + threads:
        thread.join(WAIT)
    outcomes = sorted(type(error).__name__ for error in results.values())
    assert outcomes == ["KeyboardInterrupt", "RepositoryBusy"]
    assert any(isinstance(error, RepositoryBusy) for error in results.values())
    group.submit("after")  # the next caller leads: nothing stays stuck
    assert calls[-1] == ["after"]
