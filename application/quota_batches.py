"""Prompt creations of one process in one organisation, counted and saved in batches (adr/0025).

Every creation counts on its organisation's prompt quota (domain.quota), one stream, so creations in
one organisation are serialised: on the quota's lock (`BaseApp.quota_lock`: in the process, and on
Postgres across processes). One at a time, each paid for its own quota load, lock round trips and
transaction, while the others waited. Here a creation that finds another one writing queues; the
next thread to write takes the quota's lock, then every creation of that organisation queued by
then, loads the quota once, counts each creation in turn (each count stamped with its own request's
actor and request id) and saves them all in ONE save: one transaction, one commit. The quota comes
with the lock (application.quota_reads: the one this process saved last, brought up to date in the
lock's round trip), and is kept again after a save that carried it.

Guarantees (tests/integration/test_quota_batches.py):
- the plan's limit stays exact: counts are decided one by one on the loaded quota; a creation past
  the limit gets PLAN_LIMIT_EXCEEDED and the others of the batch are saved;
- one creation's failure never fails another: if the combined save is refused (IntegrityError: a
  name claimed meanwhile by another process, say), nothing of it was committed, and every creation
  is counted and saved again on its own, so only the culprit gets the error (which `@command`
  retries as before); any other error of the combined save is every creation's error, as each alone
  would have met it;
- a writing thread interrupted mid-write (a BaseException) never leaves another creation believing
  it was saved: those not known saved get an OperationalError (outcome unknown), and the interrupted
  caller's own creation leaves the queue.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError

from domain.base import Metadata, acting, current_metadata
from domain.errors import DomainError
from domain.organisation import Organisation
from domain.quota import PromptQuota


class _Creation:
    __slots__ = ("prompt_id", "events", "metadata", "position", "error", "done", "saved")

    def __init__(self, prompt_id: UUID, events: Sequence[Any], metadata: Metadata):
        self.prompt_id = prompt_id
        #: The new prompt's and name index's events (collected: a failed save cannot lose them).
        self.events = events
        self.metadata = metadata
        self.position: int | None = None
        self.error: BaseException | None = None
        self.done = False
        self.saved = False


class _Org:
    __slots__ = ("queue", "writing")

    def __init__(self) -> None:
        self.queue: list[_Creation] = []
        self.writing = False


class QuotaBatches:
    def __init__(self, locked: Callable[[Organisation], Any], quota: Callable[[Organisation], PromptQuota],
                 save: Callable[..., int | None], keep: Callable[[PromptQuota], None] = lambda quota: None,
                 max_batch: int = 64):
        """`locked(org)`: a context manager holding the quota's lock, yielding the quota as of the
        grant (application.quota_reads); `quota(org)`: the quota loaded (or opened) for writing;
        `save(*aggregates_or_events)`: one atomic save, its last position; `keep(quota)`: told of a
        quota just saved, for the next holder of the lock."""
        self._locked = locked
        self._quota = quota
        self._save = save
        self._keep = keep
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._orgs: dict[UUID, _Org] = {}
        #: How many saves were written and how many creations they carried (for benchmarks).
        self.saves = 0
        self.creations = 0

    def count_and_save(self, org: Organisation, prompt_id: UUID, *aggregates: Any) -> int | None:
        """Count `prompt_id` on `org`'s quota and save it with `aggregates` (the new prompt and its
        name index); returns the position of the save that carried it. Runs inside the command's
        `acting` block: the count is stamped with its metadata."""
        mine = _Creation(prompt_id, [e for a in aggregates for e in a.collect_events()], current_metadata())
        with self._cond:
            state = self._orgs.get(org.id)
            if state is None:
                state = self._orgs[org.id] = _Org()
            state.queue.append(mine)
        try:
            self._until_done(org, state, mine)
        except BaseException:  # interrupted while writing others' creations: ours must not go in later
            with self._cond:
                if mine in state.queue:
                    state.queue.remove(mine)
            raise
        if mine.error is not None:
            raise mine.error
        return mine.position

    def _until_done(self, org: Organisation, state: _Org, mine: _Creation) -> None:
        while True:
            with self._cond:
                while state.writing and not mine.done:
                    self._cond.wait()
                if mine.done:
                    return
                state.writing = True
            try:
                self._write(org, state)
            finally:
                with self._cond:
                    state.writing = False
                    if not state.queue and self._orgs.get(org.id) is state:
                        del self._orgs[org.id]
                    self._cond.notify_all()

    def _write(self, org: Organisation, state: _Org) -> None:
        """Under the quota's lock, the queued creations (oldest first): what queued while the lock
        was awaited (another process holding it) goes in the same save."""
        batch: list[_Creation] = []
        try:
            with self._locked(org) as quota:
                with self._cond:
                    batch = state.queue[:self._max_batch]
                    del state.queue[:len(batch)]
                self._combined(org, quota, batch)
        except BaseException as exc:
            for creation in batch:
                if not creation.saved and creation.error is None:
                    creation.error = (exc if isinstance(exc, Exception)
                                      else OperationalError("the creation was interrupted; its outcome is unknown"))
            if not isinstance(exc, Exception) or not batch:
                raise  # an interruption, or the lock itself failed (nothing taken: each caller meets it)
        finally:
            for creation in batch:
                creation.done = True

    def _combined(self, org: Organisation, quota: PromptQuota, batch: list[_Creation]) -> None:
        counted = [c for c in batch if self._count(quota, c)]
        if not counted:
            self._keep(quota)  # nothing counted, nothing pending: still current
            return
        try:
            position = self._save(quota, *[e for c in counted for e in c.events])
        except IntegrityError:
            if len(counted) == 1:
                raise  # the caller's own (nothing else to tell apart): its command retries
            for creation in counted:  # nothing was committed: each on its own, so only the culprit fails
                self._one(org, creation)
            return
        for creation in counted:
            creation.position, creation.saved = position, True
        self._keep(quota)
        self.saves += 1
        self.creations += len(counted)

    def _one(self, org: Organisation, creation: _Creation) -> None:
        quota = self._quota(org)
        if not self._count(quota, creation):
            return
        try:
            creation.position = self._save(quota, *creation.events)
        except Exception as exc:  # an interruption (BaseException) is for the writing thread: see _write
            creation.error = exc
            return
        self._keep(quota)
        creation.saved = True
        self.saves += 1
        self.creations += 1

    @staticmethod
    def _count(quota: PromptQuota, creation: _Creation) -> bool:
        """Count the creation on the quota, under its own request's metadata; False if refused."""
        try:
            with acting(creation.metadata.actor, creation.metadata.request_id):
                quota.count_prompt(creation.prompt_id)
        except DomainError as exc:
            creation.error = exc
            return False
        return True
