"""Group commit: concurrent saves of one process written in one transaction of the event store.

Every save on Postgres takes the events table's lock (`LOCK TABLE ... IN EXCLUSIVE MODE`, held to
its commit: it keeps commit order equal to notification id order, which tailing readers rely on;
never dropped). Measured over HTTP, that lock is held ~90% of the time under concurrent revisions
(bench/results/http_writes.md), so saves queue on it one transaction at a time. This wraps the
recorder's `insert_events`: a save arriving while another thread's insert is in flight waits; the
next thread to write takes every waiting save's events and inserts them in ONE transaction (one
checkout, one lock, one commit), then hands each caller the notification ids of its own events.

Guarantees (tests/integration/test_save_coalescing.py):
- each caller's events are committed exactly once, with contiguous ids in the order it gave them;
  the lock and the commit order are the recorder's own, unchanged;
- one caller's failure never fails another: if the combined insert is refused (IntegrityError: two
  concurrent revisions of one prompt at the same version, a stale aggregate; or any value the
  database rejects), nothing of it was committed and every caller's events are inserted again on
  their own, so only the culprit gets the error (an IntegrityError is retried by `@command` as
  before). Even after a commit whose outcome was unknown, a redo cannot write an event twice: the
  store refuses a second event at the same (aggregate, version);
- a connection error (OperationalError, InterfaceError: the database gone) is raised to every caller
  in the insert, as it would have been to each of them alone;
- a writing thread interrupted mid-insert (a BaseException, e.g. a worker's time limit) never leaves
  another caller believing its save was written: those not known written get an OperationalError
  (outcome unknown), and the interrupted caller's own save leaves the queue.
Saves with tracking records or other arguments go straight to the recorder (PromptForge has none)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError


class _Save:
    __slots__ = ("events", "ids", "error", "done", "written")

    def __init__(self, events: Sequence[Any]):
        self.events = events
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.written = False


class SaveCoalescer:
    """Callable like the recorder's `insert_events` (see module docstring)."""

    def __init__(self, insert_events: Callable[..., Sequence[int] | None], max_events: int = 500):
        self._insert = insert_events
        self._max_events = max_events
        self._cond = threading.Condition()
        self._queue: list[_Save] = []
        self._writing = False
        #: How many inserts were written and how many saves they carried (for benchmarks).
        self.transactions = 0
        self.saves = 0

    def __call__(self, stored_events: Sequence[Any], **kwargs: Any) -> Sequence[int] | None:
        if any(v is not None for v in kwargs.values()):  # tracking records and the like: not ours to combine
            return self._insert(stored_events, **kwargs)  # (the event store always passes tracking=None)
        mine = _Save(stored_events)
        with self._cond:
            self._queue.append(mine)
        try:
            self._until_done(mine)
        except BaseException:  # interrupted while writing others' saves: ours must not go in later
            with self._cond:
                if mine in self._queue:
                    self._queue.remove(mine)
            raise
        if mine.error is not None:
            raise mine.error
        return mine.ids

    def _until_done(self, mine: _Save) -> None:
        """Wait for our save to be written, writing the queue (oldest first) whenever nobody is."""
        while True:
            with self._cond:
                while self._writing and not mine.done:
                    self._cond.wait()
                if mine.done:
                    break
                # Nobody is writing: write what has queued, oldest first (ours, or a batch before it).
                self._writing = True
                batch, size = [], 0
                while self._queue and (not batch or size + len(self._queue[0].events) <= self._max_events):
                    batch.append(self._queue.pop(0))
                    size += len(batch[-1].events)
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, batch: list[_Save]) -> None:
        try:
            self._combined(batch)
        except BaseException:  # the writing thread interrupted (not an error of the insert, which
            for save in batch:  # is caught below): no other caller may take its save for written
                if not save.written and save.error is None:
                    save.error = OperationalError("the save was interrupted; its outcome is unknown")
            raise
        finally:
            for save in batch:
                save.done = True

    def _combined(self, batch: list[_Save]) -> None:
        if len(batch) == 1:
            self._one(batch[0])
            return
        try:
            ids = self._insert([e for save in batch for e in save.events])
        except (OperationalError, InterfaceError) as exc:  # the connection: what each alone would get
            for save in batch:
                save.error = exc
            return
        except Exception:  # refused (a conflict, a value the database rejects): nothing was
            for save in batch:  # committed; each on its own, so only the culprit fails
                self._one(save)
            return
        start = 0
        for save in batch:
            save.ids = list(ids[start:start + len(save.events)]) if ids is not None else None
            save.written = True
            start += len(save.events)
        self.transactions += 1
        self.saves += len(batch)

    def _one(self, save: _Save) -> None:
        try:
            save.ids = self._insert(save.events)
        except Exception as exc:  # an interruption (BaseException) is for the writing thread: see _write
            save.error = exc
            return
        save.written = True
        self.transactions += 1
        self.saves += 1
