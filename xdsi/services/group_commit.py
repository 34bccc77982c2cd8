"""Group commit: what concurrent callers submit is committed together, each caller waiting for its own.

The durable part of a store (fsyncs of the files and folders, then the index commit) costs about
the same for one instance as for fifty: the time goes to the disk's flushes, not to the bytes.
Requests that each store one instance, several at once, would pay it once each, one after the
other, queued on the index's write lock. Here the first caller to arrive becomes the *leader*
and commits its own work; whoever arrives while that commit runs waits in a queue, and when the
leader is done the oldest waiter becomes the next leader and commits everything queued behind
it in one go. The group grows exactly as much as the load makes callers wait: one lone caller
never waits for anybody, and no timer delays a commit.

Every caller returns only once its own work is committed, or raises the error of its own work:
when the commit of a group of several fails, each submission is committed again on its own, so
one caller's bad data or a failure that only its work meets cannot fail the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from xdsi.errors import RepositoryBusy

Work = TypeVar("Work")


class _Submission(Generic[Work]):
    __slots__ = ("committed", "error", "leads", "settled", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.settled = threading.Event()  # committed, failed, or made the next leader
        self.leads = False
        self.committed = False
        self.error: Exception | None = None


class GroupCommit(Generic[Work]):
    """Commits submissions with ``commit`` (a sequence in, once per group), leader by leader."""

    def __init__(self, commit: Callable[[Sequence[Work]], None]) -> None:
        self._commit = commit
        self._lock = threading.Lock()
        self._queue: list[_Submission[Work]] = []
        self._busy = False  # a leader is committing

    def submit(self, work: Work) -> None:
        """Return once ``work`` is committed (with whatever else was waiting); raise its own error."""
        mine = _Submission(work)
        with self._lock:
            self._queue.append(mine)
            if not self._busy:
                self._busy = mine.leads = True
        if not mine.leads:
            mine.settled.wait()
        if mine.leads:
            self._lead()
        if mine.error is not None:
            error, mine.error = mine.error, None  # no reference cycle through the traceback
            raise error

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            self._commit_group(group)
        finally:
            for submission in group:
                if not submission.committed and submission.error is None:
                    # The leader's thread was interrupted (not an error of the commit): nothing
                    # says whether the work is in, so its callers answer "try again".
                    submission.error = RepositoryBusy("the index commit was interrupted; try again")
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.leads = True
            for submission in group:
                submission.settled.set()
            if successor is not None:
                successor.settled.set()

    def _commit_group(self, group: list[_Submission[Work]]) -> None:
        try:
            self._commit([submission.work for submission in group])
        except Exception as exc:  # noqa: BLE001 - any error is the submitters', delivered to them
            if len(group) == 1:
                group[0].error = exc
                return
        else:
            for submission in group:
                submission.committed = True
            return
        for submission in group:  # the group failed as a whole: each on its own now
            try:
                self._commit([submission.work])
                submission.committed = True
            except Exception as exc:  # noqa: BLE001 - this submitter's own error, raised in its thread
                submission.error = exc
